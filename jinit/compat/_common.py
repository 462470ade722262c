"""Building blocks shared by the framework compat namespaces.

* :class:`LayoutVarianceScaling`: the core :class:`jinit.VarianceScaling` with the fans taken
  in a framework's kernel layout (and, optionally, Keras's fans of 0-D/1-D shapes).
* :class:`Native`: runs an initializer on the framework's native-layout shape and permutes
  the result to the requested layout; optionally restricts the rank, as the framework does.
* :func:`uniform_range` and :func:`shifted_normal`: ``U[minval, maxval)`` and
  ``N(mean, std²)`` from the core ``Uniform``/``Normal`` and the ``shifted`` combinator.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jinit._combinators import Shifted, Wrapper, _call
from jinit._errors import InitializerArgumentError, ShapeError
from jinit._fans import LAYOUTS, layout_axes
from jinit._initializers import (
    Initializer,
    Normal,
    Uniform,
    VarianceScaling,
    check_choice,
    check_real,
    derived,
    place,
)
from jinit._typing import DTypeLike, InitFn

#: Layout families: ``"oi"`` kernels are ``(out, in, *k)``, ``"io"`` kernels ``(*k, in, out)``.
_FAMILY = {"torch": "oi", "mxnet": "oi", "flax": "io", "jax": "io", "keras": "io"}


def check_layout(layout: Any, owner: str) -> str:
    """Validates a ``layout=`` argument at construction."""
    check_choice("layout", layout, LAYOUTS, owner=owner)
    return layout


def out_axis(layout: str) -> int:
    """The output-channel axis of a (>= 2-D) kernel in ``layout``: 0 or -1."""
    return layout_axes(layout, 2)[1]


def _is_traced(*values: Any) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in values)


@dataclasses.dataclass(frozen=True)
class LayoutVarianceScaling(Initializer):
    """:class:`jinit.VarianceScaling` with the fans of a framework's kernel layout.

    For shapes of 2 or more dimensions the fans are those of ``layout`` (see
    :func:`jinit.layout_axes`): ``"torch"``/``"mxnet"`` read ``(out, in, *k)``,
    ``"flax"``/``"jax"``/``"keras"`` read ``(*k, in, out)``; both give the same fans for the
    same layer. With ``vector_fans=True`` a 1-D shape ``(n,)`` has ``fan_in = fan_out = n``
    and a 0-D shape has fans 1 (Keras); otherwise shapes below 2-D raise, as in PyTorch and
    MXNet. Empty shapes give empty arrays (Keras's ``max(1, n)``, torch's no-op).
    """

    scale: Any
    mode: str
    distribution: str
    layout: str = "flax"
    vector_fans: bool = False
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        VarianceScaling(self.scale, self.mode, self.distribution)  # validates the shared args
        check_layout(self.layout, "variance_scaling")

    def _sample(self, key, shape, dtype, out_sharding):
        if math.prod(shape) == 0:
            return jnp.zeros(shape, dtype, out_sharding=out_sharding)
        mode = self.mode
        if len(shape) >= 2:
            in_axis, out_axis_ = layout_axes(self.layout, len(shape))
        elif self.vector_fans:
            # Keras: fan_in = fan_out = shape[0] for 1-D and 1 for 0-D, so every mode is the
            # size of the (possibly empty) axis tuple; express it as fan_in over those axes.
            in_axis, out_axis_, mode = tuple(range(len(shape))), (), "fan_in"
        else:
            raise ShapeError(
                f"{self!r} needs a weight of at least 2 dimensions to compute fans (as torch "
                f"and mxnet do); got shape {shape}. Use a constant or plain normal/uniform "
                "initializer for biases, or the keras compat functions (1-D fan = shape[0]).")
        vs = VarianceScaling(self.scale, mode, self.distribution, in_axis, out_axis_)
        return vs._sample(key, shape, dtype, out_sharding)


def _permutation(native: str, layout: str, ndim: int) -> tuple[int, ...]:
    """``perm`` with ``transpose(native_array, perm)`` in ``layout``."""
    if ndim < 2 or _FAMILY[native] == _FAMILY[layout]:
        return tuple(range(ndim))
    if _FAMILY[native] == "oi":  # (O, I, *k) -> (*k, I, O)
        return (*range(2, ndim), 1, 0)
    return (ndim - 1, ndim - 2, *range(ndim - 2))  # (*k, I, O) -> (O, I, *k)


@dataclasses.dataclass(frozen=True)
class Native(Wrapper):
    """``init`` run on the framework's native-layout shape, then permuted to ``layout``.

    ``ranks``, when given, lists the ranks the framework accepts (e.g. ``(2,)`` for
    ``torch.nn.init.eye_``); ``name`` is used in the error for other ranks.
    """

    init: InitFn
    name: str
    native: str
    layout: str
    ranks: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_layout(self.native, self.name)
        check_layout(self.layout, self.name)

    def _apply(self, key, shape, dtype, out_sharding):
        if self.ranks is not None and len(shape) not in self.ranks:
            allowed = " or ".join(f"{r}-D" for r in self.ranks)
            raise ShapeError(
                f"{self.name} needs a {allowed} weight; got shape {shape} ({len(shape)}-D).")
        perm = _permutation(self.native, self.layout, len(shape))
        native_shape = [0] * len(shape)
        for j, p in enumerate(perm):
            native_shape[p] = shape[j]
        out = _call(self.init, key, tuple(native_shape), dtype)
        if perm != tuple(range(len(shape))):
            out = jnp.transpose(out, perm)
        return place(out, out_sharding)


def uniform_range(minval: Any, maxval: Any, dtype: DTypeLike | None, *, owner: str,
                  names: tuple[str, str] = ("minval", "maxval")) -> Initializer:
    """``U[minval, maxval)``: the core one-sided ``Uniform(maxval - minval)`` shifted by ``minval``."""
    check_real(names[0], minval, owner=owner)
    check_real(names[1], maxval, owner=owner)
    if not _is_traced(minval, maxval) and not float(minval) <= float(maxval):
        raise InitializerArgumentError(
            f"{owner}: needs {names[0]} <= {names[1]}; got {names[0]}={minval!r}, "
            f"{names[1]}={maxval!r}. Swap them.")
    base = Uniform(derived(owner, {names[0]: minval, names[1]: maxval},
                           f"the width {names[1]} - {names[0]}", lambda: maxval - minval), dtype)
    return base if not _is_traced(minval) and minval == 0 else Shifted(base, minval)


def shifted_normal(mean: Any, std: Any, dtype: DTypeLike | None, *, owner: str,
                   names: tuple[str, str] = ("mean", "std")) -> Initializer:
    """``N(mean, std²)``: the core ``Normal(std)`` shifted by ``mean``."""
    check_real(names[0], mean, owner=owner)
    check_real(names[1], std, owner=owner, nonnegative=True)
    base = Normal(std, dtype)
    return base if not _is_traced(mean) and mean == 0 else Shifted(base, mean)
