"""PyTorch's ``torch.nn.init`` in pure JAX, with torch's names, arguments and defaults.

Every function returns a jinit initializer ``(key, shape, dtype=None, out_sharding=None)``
that draws from the same distribution as the torch function of the same name (without the
trailing underscore) on a weight of the same shape. Weights are read in torch's layout
``(out, in, *k)`` by default; pass ``layout="flax"`` for Flax/JAX kernels ``(*k, in, out)``:
the fans, orthogonal side, sparsity axis and Dirac taps then follow the transposed weight, so
``kaiming_uniform(layout="flax")`` on a ``Dense`` kernel ``(in, out)`` equals torch's
``kaiming_uniform_`` on the ``Linear`` weight ``(out, in)``. Element-wise initializers accept
``layout`` too (it has no effect there).

================== ======================================== ====================================
jinit              torch                                    distribution
================== ======================================== ====================================
uniform(a, b)      ``uniform_(w, a=0, b=1)``                ``U[a, b)``
normal(mean, std)  ``normal_(w, mean=0, std=1)``            ``N(mean, std²)``
trunc_normal(...)  ``trunc_normal_(w, 0, 1, a=-2, b=2)``    ``N(mean, std²)`` on ``[a, b]``
                                                            (absolute bounds, no correction)
constant(val)      ``constant_(w, val)``                    ``val``
ones, zeros        ``ones_``, ``zeros_``                    1, 0
eye()              ``eye_(w)``                              identity matrix (2-D only)
dirac(groups)      ``dirac_(w, groups=1)``                  conv identity, centre ``k // 2``
xavier_uniform     ``xavier_uniform_(w, gain=1)``           ``U(±gain·√(6/(fan_in+fan_out)))``
xavier_normal      ``xavier_normal_(w, gain=1)``            ``N(0, gain²·2/(fan_in+fan_out))``
kaiming_uniform    ``kaiming_uniform_(w, a=0, mode=...,``   ``U(±gain·√(3/fan))``
                   ``nonlinearity="leaky_relu")``
kaiming_normal     ``kaiming_normal_(...)``                 ``N(0, gain²/fan)`` (untruncated)
orthogonal(gain)   ``orthogonal_(w, gain=1)``               Haar (semi-)orthogonal × gain
sparse(sparsity)   ``sparse_(w, sparsity, std=0.01)``       ``N(0, std²)``, ``ceil(sparsity·out)``
                                                            zeros per input column
calculate_gain     ``calculate_gain(nonlinearity, param)``  torch's gain table
defaults()         (``nn.Linear``, ``nn.Conv*``, ...        a tree initializer: torch's per-layer
                   ``reset_parameters``)                    defaults on a Flax param tree
================== ======================================== ====================================

Fans are torch's: ``fan_in = in·∏k``, ``fan_out = out·∏k``; fan-based initializers need a
weight of at least 2 dimensions.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jinit import _initializers as _core
from jinit import _random
from jinit._errors import DTypeError, InitializerArgumentError
from jinit._gain import calculate_gain as calculate_gain
from jinit._gain import leaky_relu_gain
from jinit._initializers import (
    Constant,
    Initializer,
    Orthogonal,
    as_param,
    check_choice,
    check_real,
    derived,
    place,
)
from jinit._structural import Dirac, Identity, Sparse
from jinit._typing import DTypeLike
from jinit.compat._common import (
    LayoutVarianceScaling,
    Native,
    check_layout,
    out_axis,
    shifted_normal,
    uniform_range,
)
from jinit.compat._defaults import torch_defaults as defaults

__all__ = [
    "calculate_gain", "constant", "defaults", "dirac", "eye", "kaiming_normal", "kaiming_uniform",
    "normal", "ones", "orthogonal", "sparse", "trunc_normal", "TruncNormal", "uniform",
    "xavier_normal", "xavier_uniform", "zeros",
]

#: Initializers (not factories) returning zeros and ones, as ``jinit.zeros``/``jinit.ones``.
zeros = _core.zeros
ones = _core.ones

_NATIVE = "torch"
_ACCEPT_REDRAW = 0.3  # torch 2.13: redraw out-of-range normals when P(a <= x <= b) > 0.3


def _owner(name: str) -> str:
    return f"jinit.compat.torch.{name}"


def uniform(a: Any = 0.0, b: Any = 1.0, *, layout: str = _NATIVE,
            dtype: DTypeLike | None = None) -> Initializer:
    """``U[a, b)``, as ``torch.nn.init.uniform_(w, a, b)``.

    Args:
      a: the lower bound.
      b: the upper bound (``>= a``).
      layout: accepted for a uniform signature; element-wise, so it has no effect.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for non-finite bounds or ``a > b``.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.torch.uniform(-1.0, 3.0)(jax.random.key(0), (256, 512))
      >>> bool(w.min() >= -1) and bool(w.max() < 3), round(float(w.mean()), 1)
      (True, 1.0)
    """
    check_layout(layout, _owner("uniform"))
    return uniform_range(a, b, dtype, owner=_owner("uniform"), names=("a", "b"))


def normal(mean: Any = 0.0, std: Any = 1.0, *, layout: str = _NATIVE,
           dtype: DTypeLike | None = None) -> Initializer:
    """``N(mean, std²)``, as ``torch.nn.init.normal_(w, mean, std)``.

    Args:
      mean: the mean.
      std: the standard deviation (``>= 0``).
      layout: accepted for a uniform signature; element-wise, so it has no effect.
      dtype: the default dtype.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.torch.normal(1.0, 0.02)(jax.random.key(0), (256, 512))
      >>> round(float(w.mean()), 2), round(float(w.std()), 3)
      (1.0, 0.02)
    """
    check_layout(layout, _owner("normal"))
    return shifted_normal(mean, std, dtype, owner=_owner("normal"))


def _standardized(x: Any, mean: Any, std: Any) -> float:
    return (float(x) - float(mean)) / float(std)


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


@dataclasses.dataclass(frozen=True)
class TruncNormal(Initializer):
    """``N(mean, std²)`` conditioned on ``a <= x <= b``: absolute bounds, no variance correction.

    Sampled as torch 2.13 does when the interval holds more than 30% of the mass: draw normals
    and redraw those out of range until none is (a ``lax.while_loop``), which is exact and has
    none of the inverse-CDF outliers (``jax.random.truncated_normal`` with bounds ``±100σ``
    puts about one value in 8 million at ``-100σ`` in float32). Narrower intervals use the
    inverse CDF on the side of the interval nearer the mean, where float32 keeps its precision.
    """

    mean: Any = 0.0
    std: Any = 1.0
    a: Any = -2.0
    b: Any = 2.0
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        owner = _owner("trunc_normal")
        for name in ("mean", "a", "b"):
            check_real(name, getattr(self, name), owner=owner)
        check_real("std", self.std, owner=owner, positive=True)
        if not float(self.a) < float(self.b):
            raise InitializerArgumentError(
                f"{owner}: needs a < b (absolute bounds, not multiples of std); got "
                f"a={self.a!r}, b={self.b!r}.")
        for name, bound in (("a", self.a), ("b", self.b)):
            derived(owner, {name: bound, "mean": self.mean, "std": self.std},
                    f"the standardized bound ({name} - mean) / std",
                    functools.partial(_standardized, bound, self.mean, self.std))

    def _sample(self, key, shape, dtype, out_sharding):
        if not jnp.issubdtype(dtype, jnp.floating):
            raise DTypeError(f"{self!r} samples real numbers; got dtype {dtype}.")
        for name in ("mean", "std", "a", "b"):
            as_param(self, name, getattr(self, name), dtype)  # fits the dtype, or raises
        mean, std, a, b = (float(v) for v in (self.mean, self.std, self.a, self.b))
        lo, hi = (a - mean) / std, (b - mean) / std
        if _norm_cdf(hi) - _norm_cdf(lo) > _ACCEPT_REDRAW:
            x = self._redraw(key, shape, dtype, out_sharding)
        else:
            flip = lo + hi < 0  # sample the mirrored interval so the far bound maps to erf -> +1
            lower, upper = (-hi, -lo) if flip else (lo, hi)
            z = _random.truncated_normal(key, lower, upper, shape, dtype,
                                         out_sharding=out_sharding)
            x = (-z if flip else z) * jnp.asarray(std, dtype) + jnp.asarray(mean, dtype)
        return place(jnp.clip(x, jnp.asarray(a, dtype), jnp.asarray(b, dtype)), out_sharding)

    def _redraw(self, key, shape, dtype, out_sharding):
        lo, hi = jnp.asarray(self.a, dtype), jnp.asarray(self.b, dtype)
        first, rest = jax.random.split(key)

        def draw(k):
            return (_random.normal(k, shape, dtype, out_sharding=out_sharding)
                    * jnp.asarray(self.std, dtype) + jnp.asarray(self.mean, dtype))

        def outside(x):
            return (x < lo) | (x > hi)

        def body(state):
            i, x = state
            return i + 1, jnp.where(outside(x), draw(jax.random.fold_in(rest, i)), x)

        _, x = jax.lax.while_loop(lambda s: jnp.any(outside(s[1])), body, (0, draw(first)))
        return x


def trunc_normal(mean: Any = 0.0, std: Any = 1.0, a: Any = -2.0, b: Any = 2.0, *,
                 layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """``N(mean, std²)`` truncated to ``[a, b]``, as ``torch.nn.init.trunc_normal_``.

    ``a`` and ``b`` are **absolute** values, not multiples of ``std``, and there is no
    variance correction: with ``std=0.02`` and the default ``a=-2, b=2`` nothing is truncated
    (the cut sits at ±100σ), so this is a plain ``N(0, 0.02²)``. Compare
    :func:`jinit.truncated_normal` (bounds in std units) and Keras's ``truncated_normal``.

    Args:
      mean: the mean of the underlying normal.
      std: its standard deviation (``> 0``).
      a: the absolute lower bound.
      b: the absolute upper bound (``> a``).
      layout: accepted for a uniform signature; element-wise, so it has no effect.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for ``std <= 0``, ``a >= b`` or non-finite arguments.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.torch.trunc_normal(std=0.02)(jax.random.key(0), (256, 512))
      >>> round(float(w.std()), 3), bool(abs(w).max() < 0.2)
      (0.02, True)
      >>> w = jinit.compat.torch.trunc_normal()(jax.random.key(0), (256, 512))  # cut at ±2σ
      >>> round(float(w.std()), 2), bool(abs(w).max() <= 2)
      (0.88, True)
    """
    check_layout(layout, _owner("trunc_normal"))
    return TruncNormal(mean, std, a, b, dtype)


def constant(val: Any, *, layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """Fills with ``val``, as ``torch.nn.init.constant_(w, val)``.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.torch.constant(0.5)(jax.random.key(0), (2, 2)).tolist()
      [[0.5, 0.5], [0.5, 0.5]]
    """
    check_layout(layout, _owner("constant"))
    return Constant(val, dtype)


def eye(*, layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """The identity matrix, as ``torch.nn.init.eye_(w)``: 2-D weights only.

    Ones on the main diagonal of a possibly rectangular matrix (in either layout, since the
    transpose of ``eye(n, m)`` is ``eye(m, n)``).

    Raises:
      ShapeError: at call time for weights that are not 2-D.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.torch.eye()(jax.random.key(0), (2, 3)).tolist()
      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    return Native(Identity(1.0, dtype), _owner("eye"), _NATIVE,
                  check_layout(layout, _owner("eye")), (2,))


def dirac(groups: int = 1, *, layout: str = _NATIVE,
          dtype: DTypeLike | None = None) -> Initializer:
    """The Dirac delta (conv identity), as ``torch.nn.init.dirac_(w, groups)``.

    A 3-, 4- or 5-D conv kernel that is zero except ``w[g·(out/groups) + d, d, k//2, ...] = 1``
    for ``d < min(out/groups, in)``: the convolution passes its input channels through. The
    centre tap is torch's ``k // 2`` (for even ``k`` one past :func:`jinit.dirac`'s default).

    Args:
      groups: the convolution's groups; ``out`` must be divisible by it.
      layout: ``"torch"`` ``(out, in, *k)`` or ``"flax"`` ``(*k, in, out)``.
      dtype: the default dtype (integer dtypes allowed).

    Raises:
      InitializerArgumentError: for ``groups`` that is not a positive int.
      ShapeError: at call time for kernels that are not 3/4/5-D or ``out % groups != 0``.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.torch.dirac()(jax.random.key(0), (2, 2, 3))
      >>> w[:, :, 1].tolist(), float(w.sum())
      ([[1.0, 0.0], [0.0, 1.0]], 2.0)
    """
    layout = check_layout(layout, _owner("dirac"))
    return Native(Dirac(groups, "ceil", layout, 1.0, dtype), _owner("dirac"), layout, layout,
                  (3, 4, 5))


def xavier_uniform(gain: Any = 1.0, *, layout: str = _NATIVE,
                   dtype: DTypeLike | None = None) -> Initializer:
    """Glorot uniform ``U(±gain·√(6/(fan_in + fan_out)))``, as ``torch.nn.init.xavier_uniform_``.

    Args:
      gain: the multiplier (e.g. :func:`calculate_gain`).
      layout: ``"torch"`` ``(out, in, *k)`` or ``"flax"`` ``(*k, in, out)``.
      dtype: the default dtype.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.torch.xavier_uniform()(jax.random.key(0), (256, 512))
      >>> round(float(abs(w).max() / (6 / (256 + 512)) ** 0.5), 2)
      1.0
    """
    return _scaled_gain(gain, "fan_avg", "uniform", layout, dtype, "xavier_uniform")


def xavier_normal(gain: Any = 1.0, *, layout: str = _NATIVE,
                  dtype: DTypeLike | None = None) -> Initializer:
    """Glorot normal ``N(0, gain²·2/(fan_in + fan_out))``, untruncated, as ``xavier_normal_``.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.torch.xavier_normal()(jax.random.key(0), (256, 512))
      >>> round(float(w.std() / (2 / (256 + 512)) ** 0.5), 2)
      1.0
    """
    return _scaled_gain(gain, "fan_avg", "normal", layout, dtype, "xavier_normal")


def _kaiming(a, mode, nonlinearity, layout, dtype, distribution, name):
    owner = _owner(name)
    check_choice("mode", mode, ("fan_in", "fan_out"), owner=owner)
    if not isinstance(nonlinearity, str):
        raise InitializerArgumentError(
            f"{owner}: nonlinearity must be a torch.nn.functional name such as 'relu'; got "
            f"nonlinearity={nonlinearity!r}.")
    if nonlinearity == "leaky_relu":
        gain = leaky_relu_gain(a, name="a", owner=owner)
    else:
        try:
            gain = calculate_gain(nonlinearity, a)
        except InitializerArgumentError as e:
            raise InitializerArgumentError(f"{owner}: {e}") from e
    return _scaled_gain(gain, mode, distribution, layout, dtype, name)


def _scaled_gain(gain, mode, distribution, layout, dtype, name):
    owner = _owner(name)
    check_real("gain", gain, owner=owner)
    layout = check_layout(layout, owner)
    scale = derived(owner, {"gain": gain}, "the variance scale gain**2", lambda: float(gain) ** 2)
    return LayoutVarianceScaling(scale, mode, distribution, layout, False, dtype)


def kaiming_uniform(a: Any = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """He uniform ``U(±gain·√(3/fan))``, as ``torch.nn.init.kaiming_uniform_``.

    ``gain = calculate_gain(nonlinearity, a)``; the defaults give ``gain = √2`` (a=0).
    torch's ``nn.Linear``/``nn.Conv*`` default weight init is ``kaiming_uniform(a=5**0.5)``,
    i.e. ``U(±1/√fan_in)``.

    Args:
      a: the negative slope of the leaky ReLU after this layer (used only with
        ``"leaky_relu"``).
      mode: ``"fan_in"`` (forward variance) or ``"fan_out"`` (backward).
      nonlinearity: a :func:`calculate_gain` name.
      layout: ``"torch"`` ``(out, in, *k)`` or ``"flax"`` ``(*k, in, out)``.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for an unknown mode or nonlinearity, or a bool/non-number
        ``a`` with ``"leaky_relu"``.

    Examples:
      >>> import jax, jinit
      >>> init = jinit.compat.torch.kaiming_uniform(a=5 ** 0.5, layout="flax")
      >>> w = init(jax.random.key(0), (512, 256))  # a Flax Dense kernel (in, out)
      >>> round(float(abs(w).max() * 512 ** 0.5), 2)  # bound 1/sqrt(fan_in)
      1.0
    """
    return _kaiming(a, mode, nonlinearity, layout, dtype, "uniform", "kaiming_uniform")


def kaiming_normal(a: Any = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                   layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
    """He normal ``N(0, gain²/fan)``, untruncated, as ``torch.nn.init.kaiming_normal_``.

    Arguments as :func:`kaiming_uniform`.

    Examples:
      >>> import jax, jinit
      >>> init = jinit.compat.torch.kaiming_normal(mode="fan_out", nonlinearity="relu")
      >>> w = init(jax.random.key(0), (64, 32, 3, 3))  # fan_out = 64 * 9
      >>> round(float(w.std() * (64 * 9 / 2) ** 0.5), 1)
      1.0
    """
    return _kaiming(a, mode, nonlinearity, layout, dtype, "normal", "kaiming_normal")


def orthogonal(gain: Any = 1, *, layout: str = _NATIVE,
               dtype: DTypeLike | None = None) -> Initializer:
    """A Haar-random (semi-)orthogonal matrix times ``gain``, as ``torch.nn.init.orthogonal_``.

    The weight is viewed as ``(out, in·∏k)``; the smaller side is orthonormal. This is the
    core :class:`jinit.Orthogonal` with the output axis as columns (QR of a Gaussian with the
    sign fix; the Haar measure is invariant under the transpose and row permutation that
    relate the two layouts).

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> w = jinit.compat.torch.orthogonal()(jax.random.key(0), (16, 8, 3))
      >>> m = w.reshape(16, -1)
      >>> bool(jnp.allclose(m @ m.T, jnp.eye(16), atol=1e-5))
      True
    """
    owner = _owner("orthogonal")
    check_real("gain", gain, owner=owner)
    return Orthogonal(gain, out_axis(check_layout(layout, owner)), dtype)


def sparse(sparsity: Any, std: Any = 0.01, *, layout: str = _NATIVE,
           dtype: DTypeLike | None = None) -> Initializer:
    """Martens' sparse init, as ``torch.nn.init.sparse_(w, sparsity, std)``: 2-D only.

    ``N(0, std²)``, then in every column of the torch weight ``(out, in)`` (every input unit),
    ``ceil(sparsity·out)`` randomly chosen entries are zero. With ``layout="flax"`` the
    kernel ``(in, out)`` gets the same pattern transposed (zeros counted per row).

    Args:
      sparsity: the fraction of each column set to zero, in ``[0, 1)``.
      std: the std of the non-zero values (``>= 0``).
      layout: ``"torch"`` ``(out, in)`` or ``"flax"`` ``(in, out)``.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for sparsity outside ``[0, 1)`` or a negative std.
      ShapeError: at call time for weights that are not 2-D.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.compat.torch.sparse(0.3)(jax.random.key(0), (10, 4))
      >>> (w == 0).sum(axis=0).tolist()
      [3, 3, 3, 3]
    """
    owner = _owner("sparse")
    check_real("sparsity", sparsity, owner=owner, nonnegative=True)
    if not float(sparsity) < 1:
        raise InitializerArgumentError(
            f"{owner}: sparsity is the fraction of zeros per column and must be in [0, 1); got "
            f"sparsity={sparsity!r}. Use jinit.zeros for an all-zero weight.")
    check_real("std", std, owner=owner, nonnegative=True)
    return Native(Sparse(sparsity, std, dtype), owner, _NATIVE, check_layout(layout, owner), (2,))

