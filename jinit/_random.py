"""Random sampling primitives used by every jinit initializer.

Same signatures and bit-identical values as the ``jax.random`` functions of the same name.
This module is the single place where the sampling strategy is chosen: callers never import
``jax.random`` samplers directly.

Strategy: where it is faster (CPU), random bits come from :mod:`jinit._threefry`, Threefry-2x32
written as fusible elementwise ops; the bits-to-float transforms below repeat
``jax.random``'s operations in the same order, so the values are identical. Everywhere else
(GPU/TPU, a non-threefry key, ``jax_threefry_partitionable=False``, 2**32+ elements, tracers
of unknown kind) the call goes to ``jax.random`` unchanged. ``JINIT_FAST_RNG=0`` (or
:func:`set_fast_rng`) turns the fast path off; ``=1`` forces it on every backend.
"""

from __future__ import annotations

import functools
import math
import operator
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random

from jinit import _erf_inv, _threefry

#: Backends where the fused generator was measured faster than ``jax.random``.
FAST_BACKENDS: frozenset[str] = frozenset({"cpu"})
_override: bool | None = None


def set_fast_rng(enabled: bool | None) -> None:
    """Forces the fused generator on (``True``) or off (``False``); ``None`` restores auto.

    Values never depend on this choice, only speed does.

    Examples:
      >>> from jinit import _random
      >>> _random.set_fast_rng(False); _random.set_fast_rng(None)
    """
    global _override
    _override = enabled


def _wanted() -> bool:
    if _override is not None:
        return _override
    env = os.environ.get("JINIT_FAST_RNG", "").strip().lower()
    if env in ("0", "false", "off", "no"):
        return False
    if env in ("1", "true", "on", "yes"):
        return True
    return jax.default_backend() in FAST_BACKENDS


def _key_data(key: Any) -> jax.Array | None:
    """The ``uint32[2]`` threefry data of ``key``, or ``None`` when the fast path must not run."""
    if not jax.config.jax_threefry_partitionable:
        return None
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return None
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if np.shape(key) != () or str(random.key_impl(key)) != "threefry2x32":
            return None
        return random.key_data(key)
    if (np.shape(key) == (2,) and dtype == np.uint32
            and str(jax.config.jax_default_prng_impl) == "threefry2x32"):
        return jnp.asarray(key)
    return None


def _plan(key: Any, shape: Any, dtype: Any, need_float: bool = True):
    """Returns ``(key_data, shape, dtype)`` for the fast path, or ``None`` to use jax.random."""
    if not _wanted():
        return None
    try:
        shape = tuple(operator.index(d) for d in shape)
        dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    except TypeError:
        return None
    if any(d < 0 for d in shape) or math.prod(shape) >= _threefry.MAX_SIZE:
        return None
    if need_float and not jnp.issubdtype(dtype, jnp.floating):
        return None
    if jnp.finfo(dtype).bits not in (16, 32, 64):
        return None
    data = _key_data(key)
    return None if data is None else (data, shape, np.dtype(dtype))


def _bits_to_unit(bits: jax.Array, dtype: np.dtype, rng_bits: int, nbits: int,
                  nmant: int) -> jax.Array:
    """Random bits -> floats in [0, 1), exactly as ``jax.random._uniform``."""
    uint_dtype = np.dtype(f"uint{nbits}")
    if rng_bits != nbits:
        bits = lax.convert_element_type(bits, uint_dtype)
    float_bits = lax.shift_right_logical(bits, jnp.array(rng_bits - nmant, uint_dtype))
    float_bits = lax.bitwise_or(
        float_bits, jnp.asarray(np.array(1.0, dtype).view(uint_dtype), dtype=uint_dtype))
    return lax.bitcast_convert_type(float_bits, dtype) - jnp.array(1.0, dtype)


def _uniform_impl(key_data, minval, maxval, shape, dtype):
    minval = lax.convert_element_type(minval, dtype)
    maxval = lax.convert_element_type(maxval, dtype)
    minval = lax.broadcast_to_rank(minval, len(shape))
    maxval = lax.broadcast_to_rank(maxval, len(shape))
    finfo = jnp.finfo(dtype)
    nbits, nmant = finfo.bits, finfo.nmant
    rng_bits = 8 if nmant < 8 else nbits
    bits = _threefry.random_bits(key_data, rng_bits, shape)
    floats = _bits_to_unit(bits, dtype, rng_bits, nbits, nmant)
    return lax.max(minval, lax.reshape(floats * (maxval - minval) + minval, shape))


_uniform = jax.jit(_uniform_impl, static_argnums=(3, 4))


def kernel_options() -> dict[str, Any]:
    """XLA compile options for jinit's own sampler kernels (chunk and per-shape).

    Their Gaussian transform is plain arithmetic (:mod:`jinit._erf_inv`), which runs about
    1.5x faster with 16-lane vectors on CPUs that have them. Values do not depend on it.
    """
    return dict(_erf_inv.WIDE_VECTORS) if _wanted() and jax.default_backend() == "cpu" else {}


@functools.partial(jax.jit, static_argnums=(1, 2))
def _normal(key_data, shape, dtype):
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    hi = np.array(1.0, dtype)
    u = _uniform(key_data, lo, hi, shape, dtype)  # in (-1, 1): no edge case
    return lax.mul(np.array(np.sqrt(2), dtype), _erf_inv.for_sampler(u, edges=False))


def _guards(lower: Any, upper: Any) -> tuple[bool, bool]:
    """``(edges, tail)`` for :func:`jinit._erf_inv.erf_inv` of a truncated normal's draws.

    Both are needed unless the bounds are concrete and small enough to rule them out.
    """
    try:
        bound = max(abs(float(lower)), abs(float(upper)))
    except (TypeError, jax.errors.ConcretizationTypeError):
        return True, True
    return not bound <= _erf_inv.NO_EDGE_BOUND, not bound <= _erf_inv.NO_TAIL_BOUND


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _truncated_normal(key_data, lower, upper, shape, dtype, edges=True, tail=True):
    sqrt2 = np.array(np.sqrt(2), dtype)
    lower = lax.convert_element_type(lower, dtype)
    upper = lax.convert_element_type(upper, dtype)
    a = lax.erf(lower / sqrt2)
    b = lax.erf(upper / sqrt2)
    u = _uniform(key_data, a, b, shape, dtype)
    out = sqrt2 * _erf_inv.for_sampler(u, edges=edges, tail=tail)
    return jnp.clip(
        out,
        lax.nextafter(lax.stop_gradient(lower), np.array(np.inf, dtype=dtype)),
        lax.nextafter(lax.stop_gradient(upper), np.array(-np.inf, dtype=dtype)))


# --- flat chunks: one kernel per family and dtype fills any leaf in pieces ---------------------

#: Sampler families of :func:`flat_sample`, with the meaning of their ``float32[6]``
#: parameters. ``normal`` also draws truncated normals: the two differ only in parameters.
FLAT_FAMILIES: dict[str, str] = {
    "uniform": ("(minval, maxval, _, _, _, scale): uniform(key, shape, float32, minval, maxval) "
                "* scale"),
    "normal": (
        "(lo, hi, inner, clip_lo, clip_hi, outer): clip(erf_inv(uniform(key, shape, float32, lo, "
        "hi)) * inner, clip_lo, clip_hi) * outer. normal(key, shape, float32) * scale under jit "
        "is lo = nextafter(-1, 0), hi = 1, inner = sqrt2 * scale (XLA folds the two constant "
        "factors), clips -inf and inf, outer = 1; truncated_normal(key, lower, upper, shape, "
        "float32) * scale is lo = erf(lower / sqrt2), hi = erf(upper / sqrt2), inner = sqrt2, "
        "clips nextafter(lower, inf) and nextafter(upper, -inf), outer = scale"),
}


def flat_sample(family: str, key_data: jax.Array, offset: jax.Array, params: jax.Array,
                size: int, dtype: Any) -> jax.Array:
    """Elements ``offset, ..., offset + size - 1`` of a flattened float32 sample, cast to ``dtype``.

    ``params`` is ``float32[6]`` as described in :data:`FLAT_FAMILIES`; they are run-time
    values, so one compiled kernel per ``(family, size, dtype)`` serves every leaf shape,
    scale and truncation. Element ``j`` equals element ``offset + j`` of the flattened
    ``(sampler(key, shape, float32) * scale).astype(dtype)`` for any ``shape`` of more than
    ``offset + j`` elements: the operations are those of :func:`uniform`, :func:`normal` and
    :func:`truncated_normal`, elementwise and in the same order (a clip to infinite bounds
    leaves every value as it is).
    """
    f32 = np.dtype(np.float32)
    unit = _bits_to_unit(_threefry.flat_bits(key_data, offset, size), f32, 32, 32, 23)
    lo, hi = params[0], params[1]
    out = lax.max(lo, unit * (hi - lo) + lo)
    if family == "normal":
        out = jnp.clip(_erf_inv.for_sampler(out) * params[2], params[3], params[4])
    out = out * params[5]
    return out if np.dtype(dtype) == f32 else out.astype(dtype)


def _placed(fn, out_sharding):
    """Runs ``fn`` under ``auto_axes`` for ``out_sharding``, as ``jax.random`` samplers do."""
    if out_sharding is None:
        return fn()
    return jax.sharding.auto_axes(fn, out_sharding=out_sharding,
                                  axes=out_sharding.mesh.explicit_axes)()


def _simple_sharding(out_sharding: Any) -> bool:
    """Shardings the fast path handles itself: none, or a ``NamedSharding`` on explicit axes.

    Anything else (a ``PartitionSpec``, auto axes) goes to ``jax.random``, which resolves it
    against the context mesh or raises its own error.
    """
    if out_sharding is None:
        return True
    if not isinstance(out_sharding, jax.sharding.NamedSharding):
        return False
    mesh = out_sharding.mesh
    return set(mesh.explicit_axes) == set(mesh.axis_names)


def uniform(key, shape=(), dtype=None, minval=0.0, maxval=1.0, *, out_sharding=None):
    """``jax.random.uniform``, bit for bit (fast path on CPU)."""
    plan = _plan(key, shape, dtype) if _simple_sharding(out_sharding) else None
    if plan is None:
        return random.uniform(key, shape, dtype, minval, maxval, out_sharding=out_sharding)
    data, shape, dtype = plan
    if np.shape(minval) or np.shape(maxval):  # array bounds: keep jax's broadcasting checks
        return random.uniform(key, shape, dtype, minval, maxval, out_sharding=out_sharding)
    return _placed(lambda: _uniform(data, minval, maxval, shape, dtype), out_sharding)


def normal(key, shape=(), dtype=None, *, out_sharding=None):
    """``jax.random.normal``, bit for bit (fast path on CPU for real dtypes)."""
    plan = _plan(key, shape, dtype) if _simple_sharding(out_sharding) else None
    if plan is None:
        return random.normal(key, shape, dtype, out_sharding=out_sharding)
    data, shape, dtype = plan
    return _placed(lambda: _normal(data, shape, dtype), out_sharding)


def truncated_normal(key, lower, upper, shape=None, dtype=None, *, out_sharding=None):
    """``jax.random.truncated_normal``, bit for bit (fast path on CPU, scalar bounds)."""
    plan = None
    if shape is not None and not np.shape(lower) and not np.shape(upper) and _simple_sharding(
            out_sharding):
        plan = _plan(key, shape, dtype)
    if plan is None:
        return random.truncated_normal(key, lower, upper, shape, dtype,
                                       out_sharding=out_sharding)
    data, shape, dtype = plan
    return _placed(lambda: _truncated_normal(data, lower, upper, shape, dtype,
                                             *_guards(lower, upper)), out_sharding)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _orthogonal(key, n, m, shape, dtype):
    z = normal(key, (*shape, max(n, m), min(n, m)), dtype)
    q, r = jnp.linalg.qr(z)
    d = jnp.diagonal(r, axis1=-2, axis2=-1)
    x = q * jnp.expand_dims(jnp.sign(d), -2)
    return jnp.swapaxes(x, -1, -2) if n < m else x


def orthogonal(key, n, shape=(), dtype=None, m=None, *, out_sharding=None):
    """``jax.random.orthogonal``, bit for bit: its Gaussian comes from :func:`normal`.

    The QR runs in ``dtype`` (jinit initializers pass float32 for 16-bit dtypes).
    """
    m = n if m is None else m
    plan = _plan(key, (), dtype) if _simple_sharding(out_sharding) else None
    if plan is None:
        return random.orthogonal(key, n, shape, dtype, m, out_sharding=out_sharding)
    _, _, dtype = plan
    shape = tuple(operator.index(d) for d in shape)
    return _placed(lambda: _orthogonal(key, operator.index(n), operator.index(m), shape, dtype),
                   out_sharding)
