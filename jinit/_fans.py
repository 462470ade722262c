"""Fan-in / fan-out for every kernel layout.

JAX/Flax/Keras kernels are ``(*k, in, out)``; torch/MXNet kernels are ``(out, in, *k)``.
:func:`compute_fans` takes the axes explicitly (JAX semantics, bit for bit: the receptive
field is a float); :func:`layout_axes` maps a framework layout name to those axes.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Literal, TypeAlias

from jinit._errors import InitializerArgumentError, ShapeError
from jinit._typing import Axes

Layout: TypeAlias = Literal["flax", "jax", "keras", "torch", "mxnet"]
LAYOUTS: tuple[str, ...] = ("flax", "jax", "keras", "torch", "mxnet")


def _axes_tuple(axes: Axes, name: str = "axes") -> tuple[int, ...]:
    try:
        if isinstance(axes, Sequence):
            return tuple(operator.index(a) for a in axes)
        return (operator.index(axes),)
    except TypeError as e:
        raise InitializerArgumentError(
            f"{name} must be an int or a sequence of ints; got {name}={axes!r}.") from e


def _size(shape: tuple[int, ...], axes: Axes, name: str) -> int:
    ndim = len(shape)
    idx = _axes_tuple(axes, name)
    for a in idx:
        if not -ndim <= a < ndim:
            raise ShapeError(
                f"{name}={axes!r} is out of range for a {ndim}-D shape {shape}; "
                f"pass axes in [-{ndim}, {ndim - 1}].")
    return math.prod(shape[a] for a in idx)


def compute_fans(
    shape: Sequence[int],
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> tuple[float, float]:
    """Computes ``(fan_in, fan_out)`` of a weight, exactly as ``jax.nn.initializers`` does.

    Axes not named in ``in_axis``, ``out_axis`` or ``batch_axis`` form the receptive field
    (the kernel's spatial axes): ``fan_in = in * rf`` and ``fan_out = out * rf``.

    Args:
      shape: the weight's shape.
      in_axis: axis or axes holding the input dimension.
      out_axis: axis or axes holding the output dimension.
      batch_axis: axis or axes to ignore (neither fan nor receptive field).

    Returns:
      ``(fan_in, fan_out)`` as floats.

    Raises:
      ShapeError: for 0-D/1-D shapes with the default ``in_axis``, axes out of range,
        zero-sized fan axes, or a shape that is not a sequence of non-negative ints.
      InitializerArgumentError: for axes that are not ints or sequences of ints.

    Examples:
      >>> import jinit
      >>> jinit.compute_fans((3, 3, 64, 128))
      (576.0, 1152.0)
      >>> jinit.compute_fans((128, 64, 3, 3), in_axis=1, out_axis=0)  # torch OIHW
      (576.0, 1152.0)
    """
    try:
        shape = tuple(operator.index(d) for d in shape)
    except TypeError as e:
        raise ShapeError(f"compute_fans needs a shape that is a sequence of ints; got {shape!r}.") from e
    if any(d < 0 for d in shape):
        raise ShapeError(f"compute_fans got shape {shape} with a negative dimension.")
    if isinstance(in_axis, int) and in_axis == -2 and len(shape) <= 1:
        raise ShapeError(
            f"cannot compute fans of a {len(shape)}-D shape {shape} with the default in_axis=-2: "
            "fan-based initializers need a weight of at least 2 dimensions. Use a constant or "
            "a plain normal/uniform initializer for biases, or pass in_axis/out_axis explicitly.")
    in_size = _size(shape, in_axis, "in_axis")
    out_size = _size(shape, out_axis, "out_axis")
    batch_size = _size(shape, batch_axis, "batch_axis")
    if 0 in (in_size, out_size, batch_size):
        raise ShapeError(
            f"cannot compute fans of shape {shape}: the in/out/batch axes have size zero "
            f"(in={in_size}, out={out_size}, batch={batch_size}).")
    if math.prod(shape) == 0:
        raise ShapeError(
            f"cannot compute fans of shape {shape}: the receptive-field axes have size zero, so "
            "both fans are 0 (the array is empty).")
    receptive_field_size = math.prod(shape) / in_size / out_size / batch_size
    return in_size * receptive_field_size, out_size * receptive_field_size


def layout_axes(layout: str, ndim: int) -> tuple[int, int]:
    """Returns ``(in_axis, out_axis)`` of a kernel of rank ``ndim`` in a framework's layout.

    ``"flax"``, ``"jax"`` and ``"keras"`` kernels are ``(*k, in, out)``; ``"torch"`` and
    ``"mxnet"`` kernels are ``(out, in, *k)``.

    Examples:
      >>> import jinit
      >>> jinit.layout_axes("torch", 4), jinit.layout_axes("flax", 4)
      ((1, 0), (-2, -1))
    """
    if layout not in LAYOUTS:
        raise InitializerArgumentError(
            f"layout must be one of {LAYOUTS}; got layout={layout!r}.")
    if layout in ("torch", "mxnet"):
        return (1, 0) if ndim >= 2 else (0, 0)
    return (-2, -1)
