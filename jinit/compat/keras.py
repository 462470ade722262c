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
                            "fan_in", "truncated_normal")`` **means truncated** (÷0.8796);
                                                            "untruncated_normal"; "uniform"
glorot_uniform()            ``GlorotUniform()``             VS(1, fan_avg, uniform)
glorot_normal()             ``GlorotNormal()``              VS(1, fan_avg, truncated_normal)
he_uniform(), he_normal()   ``HeUniform()``, ``HeNormal()`` VS(2, fan_in, ...)
lecun_uniform(), ..normal() ``LecunUniform()``, ...         VS(1, fan_in, ...)
orthogonal(gain)            ``Orthogonal(gain=1.0)``        Haar (semi-)orthogonal × gain
identity(gain)              ``Identity(gain=1.0)``          ``gain·eye`` (2-D only)
constant(value)             ``Constant(value=0.0)``         ``value``
zeros, ones                 ``Zeros()``, ``Ones()``         0, 1
defaults()                  (layer defaults)                a tree initializer: Keras's per-layer
                                                            defaults on a Flax param tree
=========================== =============================== ====================================

Fans are Keras's: ``fan_in = in·∏k``, ``fan_out = out·∏k``; a 1-D shape ``(n,)`` has
``fan_in = fan_out = n`` and a 0-D shape fans 1, so ``variance_scaling`` also works on biases.
"""

from __future__ import annotations

from typing import Any

from jinit import _initializers as _core
from jinit._combinators import Shifted
from jinit._initializers import (
    Constant,
    Initializer,
    Orthogonal,
    TruncatedNormal,
    check_choice,
    check_real,
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
    "random_uniform", "truncated_normal", "variance_scaling", "zeros",
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


def variance_scaling(scale: Any = 1.0, mode: str = "fan_in",
                     distribution: str = "truncated_normal", *, layout: str = _NATIVE,
                     dtype: DTypeLike | None = None) -> Initializer:
    """Variance ``scale / max(1, n)``, as ``keras.initializers.VarianceScaling``.

    ``n`` is ``fan_in``, ``fan_out`` or their average (``mode``). Distributions, with Keras's
    names: ``"truncated_normal"`` and ``"normal"`` (Keras maps it to truncated!) draw a
    normal truncated at 2 std and divided by 0.8796 (exact variance, bound
    ``±2.27·√(scale/n)``); ``"untruncated_normal"`` is a plain normal; ``"uniform"`` is
    ``U(±√(3·scale/n))``. Unlike JAX, 1-D shapes have ``fan_in = fan_out = shape[0]`` and
    0-D shapes fans 1.

    Args:
      scale: the variance scale (``> 0``, as Keras requires).
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
      distribution: ``"truncated_normal"``, ``"normal"``, ``"untruncated_normal"`` or
        ``"uniform"`` (case-insensitive, as in Keras).
      layout: ``"keras"``/``"flax"`` ``(*k, in, out)`` or ``"torch"`` ``(out, in, *k)``.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for ``scale <= 0`` or an unknown mode/distribution.

    Examples:
      >>> import jax, jinit
      >>> init = jinit.compat.keras.variance_scaling(2.0, distribution="untruncated_normal")
      >>> w = init(jax.random.key(0), (512, 256))
      >>> round(float(w.var() * 512), 1)
      2.0
      >>> init(jax.random.key(0), (1000,)).shape  # 1-D: fan = 1000
      (1000,)
    """
    owner = _owner("variance_scaling")
    check_real("scale", scale, owner=owner, positive=True)
    check_choice("mode", mode, _MODES, owner=owner)
    name = distribution.lower() if isinstance(distribution, str) else distribution
    check_choice("distribution", name, tuple(_DISTRIBUTIONS), owner=owner)
    return LayoutVarianceScaling(scale, mode, _DISTRIBUTIONS[name],
                                 check_layout(layout, owner), True, dtype)


def _preset(scale: float, mode: str, distribution: str, name: str, keras_name: str):
    def factory(*, layout: str = _NATIVE, dtype: DTypeLike | None = None) -> Initializer:
        return variance_scaling(scale, mode, distribution, layout=layout, dtype=dtype)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"""``keras.initializers.{keras_name}()``.

    :func:`variance_scaling` with ``scale={scale}``, ``mode="{mode}"``,
    ``distribution="{distribution}"``.

    Args:
      layout: ``"keras"``/``"flax"`` ``(*k, in, out)`` or ``"torch"`` ``(out, in, *k)``.
      dtype: the default dtype.

    Examples:
      >>> import jax, jinit
      >>> jinit.compat.keras.{name}()(jax.random.key(0), (3, 3, 16, 32)).shape
      (3, 3, 16, 32)
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

