"""MXNet 1.9's ``mxnet.init`` in pure JAX, with MXNet's names, arguments and defaults.

Every function returns a jinit initializer ``(key, shape, dtype=None, out_sharding=None)``
that draws from the same distribution as the MXNet initializer of the same (snake_case) name
on a weight of the same shape. Weights are read in MXNet's layout ``(out, in, *k)`` by
default; pass ``layout="flax"`` for Flax/JAX kernels ``(*k, in, out)``. Element-wise
initializers accept ``layout`` too (it has no effect there).

================================= ================================== ===========================
jinit                             mxnet                              distribution
================================= ================================== ===========================
uniform(scale)                    ``Uniform(scale=0.07)``            ``U(-scale, scale)``
normal(sigma)                     ``Normal(sigma=0.01)``             ``N(0, sigma²)``
xavier(rnd_type, factor_type,     ``Xavier("uniform", "avg", 3)``    ``s = √(magnitude/n)``:
magnitude)                                                           ``U(±s)`` or ``N(0, s²)``
msra_prelu(factor_type, slope)    ``MSRAPrelu("avg", 0.25)``         xavier gaussian with
                                                                     magnitude ``2/(1+slope²)``
orthogonal(scale, rand_type)      ``Orthogonal(1.414, "uniform")``   SVD of ``U(-1,1)`` (or
                                                                     ``N(0,1)``), × scale
bilinear()                        ``Bilinear()``                     upsampling kernel (4-D)
lstm_bias(forget_bias)            ``LSTMBias(forget_bias=1.0)``      0, ``forget_bias`` on
                                                                     ``[H, 2H)``
constant(value)                   ``Constant(value)``                ``value``
zero, one                         ``Zero()``, ``One()``              0, 1
defaults(init)                    (Gluon layer defaults)             a tree initializer: Gluon's
                                                                     defaults on a Flax param tree
================================= ================================== ===========================

Fans are MXNet's: ``fan_in = in·∏k``, ``fan_out = out·∏k``, ``n`` per ``factor_type``
(``"avg"``, ``"in"``, ``"out"``); weights need at least 2 dimensions. Note the magnitude
convention: ``"uniform"`` has variance ``magnitude/(3n)``, ``"gaussian"`` ``magnitude/n``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np

from jinit import _initializers as _core
from jinit import _random
from jinit._errors import DTypeError
from jinit._initializers import (
    Constant,
    Initializer,
    as_param,
    check_choice,
    check_real,
    derived,
    place,
)
from jinit._structural import lstm_forget_bias
from jinit._typing import DTypeLike
from jinit.compat._common import (
    LayoutVarianceScaling,
    Native,
    check_layout,
    shifted_normal,
    uniform_range,
)
from jinit.compat._defaults import mxnet_defaults as defaults

__all__ = [
    "bilinear", "constant", "defaults", "lstm_bias", "msra_prelu", "MXNetBilinear", "normal",
    "one", "orthogonal", "SVDOrthogonal", "uniform", "xavier", "zero",
]

#: Initializers (not factories) returning zeros and ones, as ``jinit.zeros``/``jinit.ones``.
zero = _core.zeros
one = _core.ones

_NATIVE = "mxnet"
_FACTOR_TYPES = {"avg": "fan_avg", "in": "fan_in", "out": "fan_out"}
#: rnd_type -> (core distribution, variance = magnitude / n times this)
_RND_TYPES = {"uniform": ("uniform", 1 / 3), "gaussian": ("normal", 1.0)}


def _owner(name: str) -> str:
    return f"jinit.compat.mxnet.{name}"


def uniform(scale: Any = 0.07, *, layout: str = _NATIVE,
            dtype: DTypeLike | None = None) -> Initializer:
    """``U(-scale, scale)``, as ``mxnet.init.Uniform(scale)`` (symmetric, unlike JAX's).

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.mxnet.uniform()(jax.random.key(0), (256, 512))
      >>> bool(w.min() >= -0.07) and bool(w.max() < 0.07)
      True
    """
    owner = _owner("uniform")
    check_layout(layout, owner)
    check_real("scale", scale, owner=owner, nonnegative=True)
    return uniform_range(-scale, scale, dtype, owner=owner, names=("-scale", "scale"))


def normal(sigma: Any = 0.01, *, layout: str = _NATIVE,
           dtype: DTypeLike | None = None) -> Initializer:
    """``N(0, sigma²)``, as ``mxnet.init.Normal(sigma)``.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.mxnet.normal()(jax.random.key(0), (256, 512))
      >>> round(float(w.std()), 3)
      0.01
    """
    check_layout(layout, _owner("normal"))
    return shifted_normal(0.0, sigma, dtype, owner=_owner("normal"), names=("mean", "sigma"))


def _xavier(rnd_type, factor_type, magnitude, layout, dtype, owner):
    check_choice("rnd_type", rnd_type, tuple(_RND_TYPES), owner=owner)
    check_choice("factor_type", factor_type, tuple(_FACTOR_TYPES), owner=owner)
    check_real("magnitude", magnitude, owner=owner, nonnegative=True)
    distribution, factor = _RND_TYPES[rnd_type]
    scale = derived(owner, {"magnitude": magnitude}, "the variance scale",
                    lambda: float(magnitude) * factor)
    return LayoutVarianceScaling(scale, _FACTOR_TYPES[factor_type],
                                 distribution, check_layout(layout, owner), False, dtype)


def xavier(rnd_type: str = "uniform", factor_type: str = "avg", magnitude: Any = 3, *,
           layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """Xavier, as ``mxnet.init.Xavier(rnd_type, factor_type, magnitude)``.

    With ``s = √(magnitude / n)`` (``n`` = ``(fan_in + fan_out)/2``, ``fan_in`` or
    ``fan_out`` for ``factor_type`` ``"avg"``, ``"in"``, ``"out"``): ``"uniform"`` draws
    ``U(-s, s)`` (variance ``magnitude/(3n)``), ``"gaussian"`` draws ``N(0, s²)`` (variance
    ``magnitude/n``, untruncated). So Glorot uniform is the default, Glorot normal is
    ``xavier("gaussian", "avg", 1)``, He normal ``xavier("gaussian", "in", 2)``.

    Args:
      rnd_type: ``"uniform"`` or ``"gaussian"``.
      factor_type: ``"avg"``, ``"in"`` or ``"out"``.
      magnitude: the scale (``>= 0``).
      layout: ``"mxnet"`` ``(out, in, *k)`` or ``"flax"`` ``(*k, in, out)``.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for an unknown rnd_type/factor_type or a negative magnitude.
      ShapeError: at call time for weights of fewer than 2 dimensions.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.mxnet.xavier()(jax.random.key(0), (256, 512))
      >>> round(float(abs(w).max() / (3 / 384) ** 0.5), 2)
      1.0
    """
    return _xavier(rnd_type, factor_type, magnitude, layout, dtype, _owner("xavier"))


def msra_prelu(factor_type: str = "avg", slope: Any = 0.25, *, layout: str = _NATIVE,
               dtype: DTypeLike | None = None) -> Initializer:
    """He/MSRA for PReLU, as ``mxnet.init.MSRAPrelu(factor_type, slope)``.

    :func:`xavier` with ``rnd_type="gaussian"`` and ``magnitude = 2 / (1 + slope²)``. Note the
    defaults: **fan_avg** and slope 0.25, so it is not He fan_in unless you say so.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.mxnet.msra_prelu("in", 0.0)(jax.random.key(0), (256, 512))
      >>> round(float(w.var() * 512), 1)
      2.0
    """
    owner = _owner("msra_prelu")
    check_real("slope", slope, owner=owner)
    magnitude = derived(owner, {"slope": slope}, "the magnitude 2 / (1 + slope**2)",
                        lambda: 2.0 / (1 + float(slope) ** 2))
    return _xavier("gaussian", factor_type, magnitude, layout, dtype, owner)


@dataclasses.dataclass(frozen=True)
class SVDOrthogonal(Initializer):
    """MXNet's orthogonal: the SVD factor of a ``U(-1, 1)`` (or ``N(0, 1)``) matrix, × scale.

    The weight ``(out, in, *k)`` is viewed as ``(out, in·∏k)``; the factor of that shape
    (``U`` when ``out >= in·∏k``, else ``Vᵀ``) is taken without a sign fix, as MXNet does.
    """

    scale: Any = 1.414
    rand_type: str = "uniform"
    dtype: DTypeLike | None = None
    min_ndim: ClassVar[int] = 2

    def __post_init__(self) -> None:
        owner = _owner("orthogonal")
        check_real("scale", self.scale, owner=owner)
        check_choice("rand_type", self.rand_type, ("uniform", "normal"), owner=owner)

    def _sample(self, key, shape, dtype, out_sharding):
        if not jnp.issubdtype(dtype, jnp.floating):
            raise DTypeError(f"{self!r} samples real matrices; got dtype {dtype}.")
        n_out, n_in = shape[0], math.prod(shape[1:])
        if n_out * n_in == 0:
            return jnp.zeros(shape, dtype, out_sharding=out_sharding)
        if self.rand_type == "uniform":
            tmp = _random.uniform(key, (n_out, n_in), dtype, -1.0, 1.0)
        else:
            tmp = _random.normal(key, (n_out, n_in), dtype)
        u, _, vt = jnp.linalg.svd(tmp, full_matrices=False)
        res = u if n_in <= n_out else vt
        return place(as_param(self, "scale", self.scale, dtype) * res.reshape(shape), out_sharding)


def orthogonal(scale: Any = 1.414, rand_type: str = "uniform", *, layout: str = _NATIVE,
               dtype: DTypeLike | None = None) -> Initializer:
    """MXNet's orthogonal init, as ``mxnet.init.Orthogonal(scale, rand_type)``.

    The (semi-)orthogonal SVD factor of a ``U(-1, 1)`` matrix (``rand_type="normal"``:
    ``N(0, 1)``) of shape ``(out, in·∏k)``, times ``scale`` (default 1.414 ≈ √2). This is not
    the Haar measure of :func:`jinit.orthogonal` when ``rand_type="uniform"``.

    Args:
      scale: the multiplier.
      rand_type: ``"uniform"`` or ``"normal"``.
      layout: ``"mxnet"`` ``(out, in, *k)`` or ``"flax"`` ``(*k, in, out)``.
      dtype: the default dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> w = jinit.compat.mxnet.orthogonal(scale=1.0)(jax.random.key(0), (8, 4, 3))
      >>> m = w.reshape(8, -1)
      >>> bool(jnp.allclose(m @ m.T, jnp.eye(8), atol=1e-5))
      True
    """
    owner = _owner("orthogonal")
    return Native(SVDOrthogonal(scale, rand_type, dtype), owner, _NATIVE,
                  check_layout(layout, owner))


@dataclasses.dataclass(frozen=True)
class MXNetBilinear(Initializer):
    """MXNet's ``Bilinear`` kernel ``(out, in, H, W)``, value for value.

    The ``(H, W)`` pattern is computed on the host in float64 and rounded once, as MXNet does
    (``jinit.bilinear`` computes on device in float32, which can differ in the last bit).
    """

    dtype: DTypeLike | None = None
    random: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 4

    def _sample(self, key, shape, dtype, out_sharding):
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise DTypeError(f"{self!r} produces fractional weights; got dtype {dtype}.")
        f = math.ceil(shape[3] / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        x = 1 - np.abs(np.arange(shape[3]) / f - c)
        y = 1 - np.abs(np.arange(shape[2]) / f - c)  # MXNet takes f and c from shape[3] here too
        kernel = jnp.asarray(np.outer(y, x).astype(dtype))
        return place(jnp.broadcast_to(kernel, shape), out_sharding)


def bilinear(*, layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """A bilinear-upsampling kernel, as ``mxnet.init.Bilinear()``: 4-D only.

    ``w[o, i, y, x] = (1 - |x/f - c|)·(1 - |y/f - c|)`` with ``f = ceil(W/2)`` and
    ``c = (2f - 1 - f % 2) / (2f)``, both taken from the kernel width ``W`` for both axes, as
    MXNet does; every (out, in) pair gets the same kernel. Equal to MXNet's array bit for bit
    (:func:`jinit.bilinear` with ``factor_from="last"`` is the general, float32 version).

    Raises:
      ShapeError: at call time for kernels that are not 4-D.
      DTypeError: at call time for integer dtypes.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.mxnet.bilinear()(jax.random.key(0), (1, 1, 4, 4))
      >>> w[0, 0, 0].tolist()
      [0.0625, 0.1875, 0.1875, 0.0625]
    """
    owner = _owner("bilinear")
    return Native(MXNetBilinear(dtype), owner, _NATIVE, check_layout(layout, owner), (4,))


def lstm_bias(forget_bias: Any = 1.0, *, layout: str = _NATIVE,
              dtype: DTypeLike | None = None) -> Initializer:
    """An LSTM bias ``(4H,)``, as ``mxnet.init.LSTMBias(forget_bias)``: 1-D only.

    Zeros, and ``forget_bias`` on ``[H, 2H)`` (MXNet's gate order is i, f, c, o).

    Raises:
      ShapeError: at call time for a shape that is not 1-D or not divisible by 4.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.mxnet.lstm_bias()(jax.random.key(0), (8,)).tolist()
      [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """
    owner = _owner("lstm_bias")
    check_real("forget_bias", forget_bias, owner=owner)
    layout = check_layout(layout, owner)
    return Native(lstm_forget_bias(forget_bias, "ifgo", dtype), owner, layout, layout, (1,))


def constant(value: Any, *, layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """Fills with ``value``, as ``mxnet.init.Constant(value)``.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.mxnet.constant(2)(jax.random.key(0), (2,)).tolist()
      [2.0, 2.0]
    """
    check_layout(layout, _owner("constant"))
    return Constant(value, dtype)

