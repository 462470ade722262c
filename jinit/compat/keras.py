"""Keras 3's ``keras.initializers`` in pure JAX, with Keras's names, arguments and defaults.

Every function returns a jinit initializer ``(key, shape, dtype=None, out_sharding=None)``
that draws from the same distribution as the Keras initializer of the same (snake_case) name
on a weight of the same shape. Weights are read in Keras's layout ``(*k, in, out)`` by default,
which is also Flax's; pass ``layout="torch"`` for ``(out, in, *k)`` weights. Element-wise
initializers accept ``layout`` too (it has no effect there).

=========================== =============================== ====================================
jinit                       keras                           distribution
=========================== =============================== ====================================
random_normal(mean, stddev) ``RandomNormal(0.0, 0.05)``     ``N(mean, stddev²)``
random_uniform(min, max)    ``RandomUniform(-0.05, 0.05)``  ``U[minval, maxval)``
truncated_normal(mean, sd)  ``TruncatedNormal(0.0, 0.05)``  ``N(mean, sd²)`` cut at
                                                            ``mean ± 2·sd``, no correction
variance_scaling(...)       ``VarianceScaling(1.0,          var ``scale/max(1, n)``; "normal"
                            "fan_in", "truncated_normal",   **means truncated** (÷0.8796);
                            input_axes, output_axes)``      "untruncated_normal"; "uniform"
glorot_uniform()            ``GlorotUniform()``             VS(1, fan_avg, uniform)
glorot_normal()             ``GlorotNormal()``              VS(1, fan_avg, truncated_normal)
he_uniform(), he_normal()   ``HeUniform()``, ``HeNormal()`` VS(2, fan_in, ...)
lecun_uniform(), ..normal() ``LecunUniform()``, ...         VS(1, fan_in, ...)
orthogonal(gain)            ``Orthogonal(gain=1.0)``        Haar (semi-)orthogonal × gain
identity(gain)              ``Identity(gain=1.0)``          ``gain·eye`` (2-D only)
constant(value)             ``Constant(value=0.0)``         ``value``
stft(...)                   ``STFT("real", "hann",          Fourier conv kernel ``(T, 1, F)``,
                            "density", False)``             windowed and normalized
zeros, ones                 ``Zeros()``, ``Ones()``         0, 1
defaults()                  (layer defaults)                a tree initializer: Keras's per-layer
                                                            defaults on a Flax param tree
=========================== =============================== ====================================

Fans are Keras's: ``fan_in = in·∏k``, ``fan_out = out·∏k``; a 1-D shape ``(n,)`` has
``fan_in = fan_out = n`` and a 0-D shape fans 1, so ``variance_scaling`` also works on biases.
With ``input_axes`` and ``output_axes`` (Keras 3's ``EinsumDense``/``MultiHeadAttention``
kernels) the fans are the products of those axes and other axes are ignored.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jinit import _initializers as _core
from jinit._combinators import Shifted
from jinit._errors import (
    BackendUnavailableError,
    DTypeError,
    InitializerArgumentError,
    ShapeError,
)
from jinit._initializers import (
    Constant,
    Initializer,
    Orthogonal,
    TruncatedNormal,
    VarianceScaling,
    check_choice,
    check_real,
    place,
)
from jinit._structural import Identity
from jinit._typing import DTypeLike
from jinit.compat._common import (
    LayoutVarianceScaling,
    Native,
    check_layout,
    out_axis,
    shifted_normal,
    uniform_range,
)
from jinit.compat._defaults import keras_defaults as defaults

__all__ = [
    "constant", "defaults", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
    "identity", "lecun_normal", "lecun_uniform", "ones", "orthogonal", "random_normal",
    "random_uniform", "stft", "truncated_normal", "variance_scaling", "zeros",
    "AxesVarianceScaling", "STFT",
]

#: Initializers (not factories) returning zeros and ones, as ``jinit.zeros``/``jinit.ones``.
zeros = _core.zeros
ones = _core.ones

_NATIVE = "keras"
_MODES = ("fan_in", "fan_out", "fan_avg")
#: Keras distribution name -> core distribution name (Keras's "normal" is truncated).
_DISTRIBUTIONS = {"truncated_normal": "truncated_normal", "normal": "truncated_normal",
                  "untruncated_normal": "normal", "uniform": "uniform"}


def _owner(name: str) -> str:
    return f"jinit.compat.keras.{name}"


def random_normal(mean: Any = 0.0, stddev: Any = 0.05, *, layout: str = _NATIVE,
                  dtype: DTypeLike | None = None) -> Initializer:
    """``N(mean, stddev²)``, as ``keras.initializers.RandomNormal(mean, stddev)``.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.keras.random_normal()(jax.random.key(0), (256, 512))
      >>> round(float(w.std()), 3)
      0.05
    """
    check_layout(layout, _owner("random_normal"))
    return shifted_normal(mean, stddev, dtype, owner=_owner("random_normal"),
                          names=("mean", "stddev"))


def random_uniform(minval: Any = -0.05, maxval: Any = 0.05, *, layout: str = _NATIVE,
                   dtype: DTypeLike | None = None) -> Initializer:
    """``U[minval, maxval)``, as ``keras.initializers.RandomUniform(minval, maxval)``.

    Raises:
      InitializerArgumentError: for ``minval > maxval`` or non-finite bounds.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.keras.random_uniform()(jax.random.key(0), (256, 512))
      >>> bool(w.min() >= -0.05) and bool(w.max() < 0.05)
      True
    """
    check_layout(layout, _owner("random_uniform"))
    return uniform_range(minval, maxval, dtype, owner=_owner("random_uniform"))


def truncated_normal(mean: Any = 0.0, stddev: Any = 0.05, *, layout: str = _NATIVE,
                     dtype: DTypeLike | None = None) -> Initializer:
    """``N(mean, stddev²)`` cut at ``mean ± 2·stddev``, as ``keras.initializers.TruncatedNormal``.

    No variance correction: the std is ``0.8796·stddev``. (Keras's *variance_scaling*
    ``"truncated_normal"`` does correct; PyTorch's ``trunc_normal_`` takes absolute bounds.)

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.keras.truncated_normal(stddev=1.0)(jax.random.key(0), (256, 512))
      >>> round(float(w.std()), 2), bool(abs(w).max() < 2)
      (0.88, True)
    """
    owner = _owner("truncated_normal")
    check_layout(layout, owner)
    check_real("mean", mean, owner=owner)
    check_real("stddev", stddev, owner=owner, positive=True)
    base = TruncatedNormal(stddev, dtype)
    return base if mean == 0 else Shifted(base, mean)


def _axes_arg(name: str, axes: Any, owner: str) -> tuple[int, ...] | None:
    """``input_axes``/``output_axes`` as a tuple of ints (``None`` stays ``None``)."""
    if axes is None:
        return None
    try:
        out = tuple(operator.index(a) for a in (axes if isinstance(axes, Sequence) else (axes,)))
    except TypeError as e:
        raise InitializerArgumentError(
            f"{owner}: {name} must be a list of ints (axes of the weight); got {name}={axes!r}."
        ) from e
    if len(set(out)) != len(out):
        raise InitializerArgumentError(
            f"{owner}: {name}={axes!r} lists an axis twice; list each axis once.")
    return out


@dataclasses.dataclass(frozen=True)
class AxesVarianceScaling(Initializer):
    """Keras's ``VarianceScaling`` with explicit ``input_axes`` and ``output_axes``.

    ``fan_in = ∏shape[input_axes]`` and ``fan_out = ∏shape[output_axes]``; every other axis is
    ignored (no receptive-field factor), as ``keras.src.initializers.compute_fans`` does when
    both axes lists are given. This is how Keras 3's ``EinsumDense`` (and so
    ``MultiHeadAttention``) draws its kernels: the axes come from the einsum equation.
    ``distribution`` is the core name (``"truncated_normal"``, ``"normal"``, ``"uniform"``).
    """

    scale: Any
    mode: str
    distribution: str
    input_axes: tuple[int, ...]
    output_axes: tuple[int, ...]
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        VarianceScaling(self.scale, self.mode, self.distribution)  # validates the shared args

    def axes(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The input and output axes as non-negative ints, checked against ``shape``."""
        nd = len(shape)
        for name, axes in (("input_axes", self.input_axes), ("output_axes", self.output_axes)):
            bad = [a for a in axes if not -nd <= a < nd]
            if bad:
                raise ShapeError(f"{self!r}: {name}={list(axes)} is out of range for a {nd}-D "
                                 f"weight of shape {shape}; use axes in [-{nd}, {nd - 1}].")
        ins = tuple(a % nd for a in self.input_axes)
        outs = tuple(a % nd for a in self.output_axes)
        shared = sorted(set(ins) & set(outs))
        if shared:
            raise ShapeError(f"{self!r}: axis {shared[0]} of shape {shape} is both an input and "
                             "an output axis; an axis is one or the other.")
        return ins, outs

    def fans(self, shape: tuple[int, ...]) -> tuple[float, float]:
        """``(fan_in, fan_out)`` of ``shape``: the products of the input / output axis sizes."""
        ins, outs = self.axes(shape)
        return float(math.prod(shape[a] for a in ins)), float(math.prod(shape[a] for a in outs))

    def _sample(self, key, shape, dtype, out_sharding):
        ins, outs = self.axes(shape)
        if math.prod(shape) == 0:
            return jnp.zeros(shape, dtype, out_sharding=out_sharding)
        rest = tuple(a for a in range(len(shape)) if a not in ins + outs)
        vs = VarianceScaling(self.scale, self.mode, self.distribution, ins, outs, rest)
        return vs._sample(key, shape, dtype, out_sharding)


def variance_scaling(scale: Any = 1.0, mode: str = "fan_in",
                     distribution: str = "truncated_normal", *, input_axes: Any = None,
                     output_axes: Any = None, layout: str = _NATIVE,
                     dtype: DTypeLike | None = None) -> Initializer:
    """Variance ``scale / max(1, n)``, as ``keras.initializers.VarianceScaling``.

    ``n`` is ``fan_in``, ``fan_out`` or their average (``mode``). Distributions, with Keras's
    names: ``"truncated_normal"`` and ``"normal"`` (Keras maps it to truncated!) draw a
    normal truncated at 2 std and divided by 0.8796 (exact variance, bound
    ``±2.27·√(scale/n)``); ``"untruncated_normal"`` is a plain normal; ``"uniform"`` is
    ``U(±√(3·scale/n))``. Unlike JAX, 1-D shapes have ``fan_in = fan_out = shape[0]`` and
    0-D shapes fans 1.

    With ``input_axes`` and ``output_axes`` (Keras 3's arguments, used by ``EinsumDense`` and
    ``MultiHeadAttention``), ``fan_in = ∏shape[input_axes]``, ``fan_out =
    ∏shape[output_axes]`` and the other axes are ignored: a ``(32, 8, 16)`` attention query
    kernel (``input_axes=[0], output_axes=[1, 2]``) has ``fan_in = 32``, not the convolution
    rule's ``8·32``. They override ``layout``.

    Args:
      scale: the variance scale (``> 0``, as Keras requires).
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
      distribution: ``"truncated_normal"``, ``"normal"``, ``"untruncated_normal"`` or
        ``"uniform"`` (case-insensitive, as in Keras).
      input_axes, output_axes: the weight's input and output axes (lists of ints, negative
        counting from the end); give both or neither.
      layout: ``"keras"``/``"flax"`` ``(*k, in, out)`` or ``"torch"`` ``(out, in, *k)``.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for ``scale <= 0``, an unknown mode/distribution, only one
        of ``input_axes``/``output_axes`` (Keras would silently ignore it), or an axis listed
        twice.
      ShapeError: at call time, axes out of range or an axis both input and output.

    Examples:
      >>> import jax, jinit
      >>> init = jinit.compat.keras.variance_scaling(2.0, distribution="untruncated_normal")
      >>> w = init(jax.random.key(0), (512, 256))
      >>> round(float(w.var() * 512), 1)
      2.0
      >>> init(jax.random.key(0), (1000,)).shape  # 1-D: fan = 1000
      (1000,)
      >>> q = jinit.compat.keras.variance_scaling(input_axes=[0], output_axes=[1, 2])
      >>> round(float(q(jax.random.key(0), (512, 8, 64)).std() * 512 ** 0.5), 2)
      1.0
    """
    owner = _owner("variance_scaling")
    check_real("scale", scale, owner=owner, positive=True)
    check_choice("mode", mode, _MODES, owner=owner)
    name = distribution.lower() if isinstance(distribution, str) else distribution
    check_choice("distribution", name, tuple(_DISTRIBUTIONS), owner=owner)
    check_layout(layout, owner)
    ins = _axes_arg("input_axes", input_axes, owner)
    outs = _axes_arg("output_axes", output_axes, owner)
    if (ins is None) != (outs is None):
        raise InitializerArgumentError(
            f"{owner}: pass both input_axes and output_axes or neither; got "
            f"input_axes={input_axes!r}, output_axes={output_axes!r} (Keras ignores one alone "
            "and falls back to the convolution fans).")
    if ins is not None:
        return AxesVarianceScaling(scale, mode, _DISTRIBUTIONS[name], ins, outs, dtype)
    return LayoutVarianceScaling(scale, mode, _DISTRIBUTIONS[name], layout, True, dtype)


def _preset(scale: float, mode: str, distribution: str, name: str, keras_name: str):
    def factory(*, input_axes: Any = None, output_axes: Any = None, layout: str = _NATIVE,
                dtype: DTypeLike | None = None) -> Initializer:
        return variance_scaling(scale, mode, distribution, input_axes=input_axes,
                                output_axes=output_axes, layout=layout, dtype=dtype)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"""``keras.initializers.{keras_name}()``.

    :func:`variance_scaling` with ``scale={scale}``, ``mode="{mode}"``,
    ``distribution="{distribution}"``.

    Args:
      input_axes, output_axes: explicit input / output axes (both or neither), as Keras 3's
        ``EinsumDense`` passes them; other axes are then ignored.
      layout: ``"keras"``/``"flax"`` ``(*k, in, out)`` or ``"torch"`` ``(out, in, *k)``.
      dtype: the default dtype.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.keras.{name}()(jax.random.key(0), (3, 3, 16, 32)).shape
      (3, 3, 16, 32)
      >>> jinit.compat.keras.{name}(input_axes=[0], output_axes=[1, 2])(
      ...     jax.random.key(0), (32, 8, 16)).shape
      (32, 8, 16)
    """
    return factory


glorot_uniform = _preset(1.0, "fan_avg", "uniform", "glorot_uniform", "GlorotUniform")
glorot_normal = _preset(1.0, "fan_avg", "truncated_normal", "glorot_normal", "GlorotNormal")
he_uniform = _preset(2.0, "fan_in", "uniform", "he_uniform", "HeUniform")
he_normal = _preset(2.0, "fan_in", "truncated_normal", "he_normal", "HeNormal")
lecun_uniform = _preset(1.0, "fan_in", "uniform", "lecun_uniform", "LecunUniform")
lecun_normal = _preset(1.0, "fan_in", "truncated_normal", "lecun_normal", "LecunNormal")


def orthogonal(gain: Any = 1.0, *, layout: str = _NATIVE,
               dtype: DTypeLike | None = None) -> Initializer:
    """A Haar-random (semi-)orthogonal matrix times ``gain``, as ``keras.initializers.Orthogonal``.

    The weight is viewed as ``(∏shape[:-1], shape[-1])`` (Keras layout); the smaller side is
    orthonormal. This is the core :class:`jinit.Orthogonal` with the output axis as columns.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> w = jinit.compat.keras.orthogonal(2.0)(jax.random.key(0), (3, 8, 16))
      >>> m = w.reshape(-1, 16)
      >>> bool(jnp.allclose(m.T @ m, 4 * jnp.eye(16), atol=1e-4))
      True
    """
    owner = _owner("orthogonal")
    check_real("gain", gain, owner=owner)
    return Orthogonal(gain, out_axis(check_layout(layout, owner)), dtype)


def identity(gain: Any = 1.0, *, layout: str = _NATIVE,
             dtype: DTypeLike | None = None) -> Initializer:
    """``gain · eye(rows, cols)``, as ``keras.initializers.Identity(gain)``: 2-D only.

    Raises:
      ShapeError: at call time for weights that are not 2-D.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.keras.identity(0.5)(jax.random.key(0), (2, 3)).tolist()
      [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]
    """
    owner = _owner("identity")
    check_real("gain", gain, owner=owner)
    return Native(Identity(gain, dtype), owner, _NATIVE, check_layout(layout, owner), (2,))


def constant(value: Any = 0.0, *, layout: str = _NATIVE,
             dtype: DTypeLike | None = None) -> Initializer:
    """Fills with ``value``, as ``keras.initializers.Constant(value)``.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.keras.constant(3)(jax.random.key(0), (2,)).tolist()
      [3.0, 3.0]
    """
    check_layout(layout, _owner("constant"))
    return Constant(value, dtype)



_SIDES = ("real", "imag")
_SCALINGS = (None, "density", "spectrum")


def _scipy_window(window: str, length: int, periodic: bool) -> np.ndarray:
    try:
        from scipy import signal
    except ImportError as e:
        raise BackendUnavailableError(
            f"jinit.compat.keras.stft: the named window {window!r} is computed by scipy "
            "(scipy.signal.get_window, as Keras does); install scipy (`pip install scipy`) or "
            "pass the window's values as an array.") from e
    try:
        return np.asarray(signal.get_window(window, length, periodic), np.float64)
    except ValueError as e:
        raise InitializerArgumentError(
            f"jinit.compat.keras.stft: unknown window {window!r} ({e}); use a name from "
            "scipy.signal.windows (e.g. 'hann', 'hamming'), an array of values, or None.") from e


@dataclasses.dataclass(frozen=True)
class STFT(Initializer):
    """Conv kernels computing a short-time Fourier transform: see :func:`stft`."""

    side: str = "real"
    window: str | tuple[float, ...] | None = "hann"
    scaling: str | None = "density"
    periodic: bool = False
    dtype: DTypeLike | None = None

    random = False

    def __post_init__(self) -> None:
        owner = _owner("stft")
        check_choice("side", self.side, _SIDES, owner=owner)
        check_choice("scaling", self.scaling, _SCALINGS, owner=owner)
        if not isinstance(self.periodic, (bool, np.bool_)):
            raise InitializerArgumentError(
                f"{owner}: periodic must be a bool; got periodic={self.periodic!r}.")
        if isinstance(self.window, str):
            _scipy_window(self.window, 1, bool(self.periodic))  # fails early, as Keras does
        elif self.window is not None:
            values = np.asarray(self.window, np.float64)
            if values.ndim != 1:
                raise InitializerArgumentError(
                    f"{owner}: window must be a name, None or a 1-D array of values; got an "
                    f"array of shape {values.shape}.")
            object.__setattr__(self, "window", tuple(float(v) for v in values))

    def _window(self, length: int) -> np.ndarray | None:
        if self.window is None:
            return None
        if isinstance(self.window, str):
            return _scipy_window(self.window, length, bool(self.periodic))
        if len(self.window) != length:
            raise ShapeError(
                f"{self!r}: the window has {len(self.window)} values but the kernel's frame "
                f"length (shape[0]) is {length}; give a window of {length} values.")
        return np.asarray(self.window, np.float64)

    def _sample(self, key, shape, dtype, out_sharding):
        if not jnp.issubdtype(dtype, jnp.floating):
            raise DTypeError(f"{self!r} computes cosines and sines: it needs a floating dtype; "
                             f"got {dtype}.")
        if len(shape) != 3 or shape[1] != 1 or shape[2] < 2:
            raise ShapeError(
                f"{self!r} makes kernels of shape (frame_length, 1, fft_length // 2 + 1) "
                f"with at least 2 frequency bins, as keras.initializers.STFT; got shape {shape}.")
        frames, _, bins = shape
        # Keras's operations, in Keras's order and dtype.
        freq = jnp.arange(bins, dtype=dtype).reshape(1, 1, bins) / ((bins - 1) * 2)
        time = jnp.arange(frames, dtype=dtype).reshape(frames, 1, 1)
        args = (-2 * time) * freq * jnp.arccos(jnp.asarray(-1, dtype))
        kernel = (jnp.cos if self.side == "real" else jnp.sin)(args).astype(dtype)
        window = self._window(frames)
        if window is not None:
            win = jnp.asarray(window, dtype).reshape(frames, 1, 1)
            if self.scaling == "density":
                norm = jnp.sqrt(jnp.sum(jnp.square(win)))
            elif self.scaling == "spectrum":
                norm = jnp.sum(jnp.abs(win))
            else:
                norm = jnp.asarray(1, dtype)
            kernel = kernel * win / norm
        return place(kernel, out_sharding)


def stft(side: str = "real", window: Any = "hann", scaling: str | None = "density",
         periodic: bool = False, *, layout: str = _NATIVE,
         dtype: DTypeLike | None = None) -> Initializer:
    """STFT conv kernels, as ``keras.initializers.STFT(side, window, scaling, periodic)``.

    For a kernel of shape ``(T, 1, F)`` (``T`` the frame length, ``F = fft_length // 2 + 1``
    frequency bins), entry ``[t, 0, f]`` is ``cos`` (``side="real"``) or ``sin``
    (``"imag"``) of ``-2π·t·f / (2(F-1))``, times the window ``w[t]`` divided by
    ``√Σw²`` (``scaling="density"``), ``Σ|w|`` (``"spectrum"``) or 1 (``None``). Named
    windows are ``scipy.signal.get_window(window, T, periodic)`` (needs scipy); an array gives
    the values; ``None`` means no window and no scaling. Computed with Keras's operations in
    the target dtype, so the values match Keras's to float rounding. Deterministic: the key is
    ignored.

    Args:
      side: ``"real"`` or ``"imag"``.
      window: a window name of ``scipy.signal.windows``, its ``T`` values, or ``None``.
      scaling: ``"density"`` (L2), ``"spectrum"`` (L1) or ``None``.
      periodic: periodic (DFT-even) instead of symmetric named windows.
      layout: accepted for uniformity; the kernel is Keras's ``Conv1D`` layout.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: an unknown side, scaling or window name.
      ShapeError: at call time, a shape other than ``(T, 1, F)`` with ``F >= 2``, or a
        window of another length than ``T``.

    Examples:
      >>> import jax, jinit
      >>> k = jinit.compat.keras.stft("real", None)(jax.random.key(0), (4, 1, 3))
      >>> k[:, 0, :].round(3).tolist()
      [[1.0, 1.0, 1.0], [1.0, -0.0, -1.0], [1.0, -1.0, 1.0], [1.0, 0.0, -1.0]]
    """
    check_layout(layout, _owner("stft"))
    return STFT(side, window, scaling, periodic, dtype)
