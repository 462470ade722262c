"""XLA's float32 ``erf_inv`` restated as plain arithmetic, bit for bit, and cheaper.

A Gaussian sample is ``erf_inv`` of a uniform draw. XLA computes ``lax.erf_inv`` (float32,
CPU) as ``-log1p(-u * u)`` fed to one of two degree-8 polynomials, and ``log1p`` through an
intrinsic that evaluates both of its branches (a rational function for small arguments, a
``log`` for the others) with guards for zero, negatives, infinities and subnormals. The
intrinsic is only vectorized 8 lanes wide.

:func:`erf_inv` performs the same floating-point operations, in the same order, as elementwise
``jax.lax`` ops, minus the guards that cannot fire for the inputs a sampler produces. Because
the operations and their order are the same, LLVM contracts the same multiply-adds into FMAs,
so the values are XLA's to the bit; that was checked for every float32 in ``(-1, 1)``, at
256- and 512-bit vector widths (``tests/test_erf_inv.py`` re-checks a dense sample). The plain
ops also vectorize 16 lanes wide, which :data:`WIDE_VECTORS` asks for.

Two guards can be dropped statically by callers that know their inputs:

* ``edges``: ``|u| == 1`` (``erf_inv`` is infinite there). ``normal`` never draws it;
  ``truncated_normal`` does only when a bound is beyond about 5.3 standard deviations.
* ``tail``: the second polynomial, used where ``-log1p(-u * u) >= 5`` (``|u| > 0.9966``). A
  truncated normal with bounds within 2.8 standard deviations never reaches it.

The equality depends on how XLA lowers ``erf_inv`` and ``log1p`` for a backend (a GPU's
``log1p`` is another function altogether). :func:`exact` says whether it holds for the
running jaxlib, CPU and default backend: on the combinations it was verified on it is
``True`` outright; anywhere else a one-time probe compares the two on edge cases and a dense
sample, and the samplers fall back to ``lax.erf_inv`` if they differ.
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax

_F32 = np.dtype(np.float32)
#: ``(jaxlib version, machine, backend, AVX-512)`` on which every float32 in (-1, 1) was
#: compared, at both vector widths.
VERIFIED: frozenset[tuple[str, str, str, bool]] = frozenset({("0.10.2", "x86_64", "cpu", True)})
#: Largest truncation bound (in standard deviations) whose draws never reach the tail branch:
#: ``-log1p(-erf(2.8 / sqrt2) ** 2) = 4.59 < 5``.
NO_TAIL_BOUND = 2.8
#: Largest bound whose ``erf(bound / sqrt2)`` stays below 1 in float32 (1 - 9.6 ulp at 5).
NO_EDGE_BOUND = 5.0
#: XLA compile options for kernels built on :func:`erf_inv`: 16 float32 lanes per vector op
#: where the CPU has them (AVX-512); elsewhere LLVM keeps its widest vectors.
WIDE_VECTORS: dict[str, Any] = {"xla_cpu_prefer_vector_width": 512}


def _c(bits: int) -> np.float32:
    """A float32 constant from its bit pattern (as XLA's intrinsics spell them)."""
    return np.uint32(bits).view(_F32)[()]


# XLA's float32 log intrinsic (a Cephes-style reduction) and log1p's small-argument branch.
_LOG_P = ((0x3D9021BB, 0xBDEBD1B8, 0x3DEF251A), (0xBDFE5D4F, 0x3E11E9BF, 0xBE2AAE50),
          (0x3E4CCEAC, 0xBE7FFFFC, 0x3EAAAAAA))
_LOG1P_Q = (0x417101AD, 0x42A6185B, 0x435DC32D, 0x439A8CA3, 0x43586D8A, 0x42707982)
_LOG1P_P = (0x3EFF40C5, 0x40D284FA, 0x41EF4B9C, 0x4273CC76, 0x426473AD, 0x41A05101)
_LOG1P_P0 = np.float32(4.527e-05)
# erf_inv's two polynomials (Giles), highest degree first: w < 5, and the tail.
_CENTRAL = np.array([2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                     0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941],
                    _F32)
_TAIL = np.array([-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                  0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682], _F32)


def _log(y: jax.Array) -> jax.Array:
    """XLA's float32 ``log`` for normal, positive, finite ``y`` (its guards dropped)."""
    bits = lax.bitcast_convert_type(y, np.int32)
    mantissa = lax.bitcast_convert_type(
        (bits & np.int32(-0x7F800001)) | np.int32(0x3F000000), _F32)  # in [0.5, 1)
    exponent = lax.convert_element_type(
        lax.shift_right_logical(bits, np.int32(23)) + np.int32(-127), _F32) + _F32.type(1)
    low = mantissa < _c(0x3F3504F3)  # below sqrt(1/2): use 2 * mantissa
    exponent = exponent - jnp.where(low, _F32.type(1), _F32.type(0))
    z = (mantissa + _F32.type(-1)) + jnp.where(low, mantissa, _F32.type(0))
    z2 = z * z
    z3 = z2 * z
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = _LOG_P
    pa = (z * _c(a0) + _c(a1)) * z + _c(a2)
    pb = (z * _c(b0) + _c(b1)) * z + _c(b2)
    pc = (z * _c(c0) + _c(c1)) * z + _c(c2)
    r = (pc + (pb + pa * z3) * z3) * z3
    return ((z - z2 * _F32.type(0.5)) + (r + exponent * _c(0xB95E8083))
            + exponent * _c(0x3F318000))


def _log1p_small(x: jax.Array) -> jax.Array:
    """log1p's rational branch (``|x| < sqrt2 - 1``).

    XLA computes ``x + (-0.5 * x2 + x3 * (P/Q))`` with the ``x2`` product fused into the
    add; written as a plain sum, LLVM would fuse the other product instead. Subtracting the
    difference the other way round makes it fuse the same one (and rounding to nearest is
    symmetric, so the value is the same).
    """
    x2 = x * x
    q = x + _c(_LOG1P_Q[0])
    for c in _LOG1P_Q[1:]:
        q = q * x + _c(c)
    p = _LOG1P_P0 * x + _c(_LOG1P_P[0])
    for c in _LOG1P_P[1:]:
        p = p * x + _c(c)
    return x - (x2 * _F32.type(0.5) - (x * x2) * (p / q))


def log1p(x: jax.Array) -> jax.Array:
    """``lax.log1p(x)`` for float32 ``x`` in ``(-1, 0]``, bit for bit."""
    return jnp.where(lax.abs(x) < _c(0x3ED413CD), _log1p_small(x), _log(x + _F32.type(1)))


def erf_inv(u: jax.Array, *, edges: bool = True, tail: bool = True) -> jax.Array:
    """``lax.erf_inv(u)`` for float32 ``u`` in ``[-1, 1]`` (or NaN), bit for bit.

    Args:
      u: float32 values.
      edges: handle ``|u| == 1`` (``False`` only when no element can be +-1).
      tail: handle ``|u| > 0.9966`` (``False`` only when no element is that large).
    """
    w = -log1p(u * -u)
    if tail:
        central = w < _F32.type(5)
        coef = [jnp.where(central, a, b) for a, b in zip(_CENTRAL, _TAIL, strict=True)]
        w = jnp.where(central, w + _F32.type(-2.5), lax.sqrt(w) + _F32.type(-3))
    else:
        coef = list(_CENTRAL)
        w = w + _F32.type(-2.5)
    p = coef[0]
    for c in coef[1:]:
        p = c + p * w
    out = p * u
    if edges:
        out = jnp.where(lax.abs(u) == _F32.type(1), u * _F32.type(np.inf), out)
    return out


def _probe_values() -> np.ndarray:
    """Edge cases, the branch boundaries' neighbourhoods, and a dense spread over (-1, 1)."""
    one = _F32.type(1)
    marks = np.array([0, 1e-30, 1e-7, 0.5, 0.6435942, 0.9966, 0.99999994, 1], _F32)
    near = [marks]
    for _ in range(64):
        near.append(np.nextafter(near[-1], one))
        near.insert(0, np.nextafter(near[0], -one))
    bits = np.linspace(0, 0x3F800000, 1 << 14, dtype=np.uint32)
    pos = np.concatenate([np.concatenate(near).clip(0, 1), bits.view(_F32)])
    return np.concatenate([pos, -pos])


def exact() -> bool:
    """Whether :func:`erf_inv` equals ``lax.erf_inv`` on the default backend (cached).

    XLA CPU flags in ``XLA_FLAGS`` (fast math, say) can change how either is compiled, so
    with any of them set the probe decides even on a verified combination.
    """
    cpu_flags = "--xla_cpu" in os.environ.get("XLA_FLAGS", "")
    return _exact(jax.default_backend(), cpu_flags)


@functools.cache
def _avx512() -> bool:
    """Whether the host CPU has AVX-512 (Linux; ``False`` where that cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


@functools.cache
def _exact(backend: str, cpu_flags: bool) -> bool:
    here = (jaxlib.__version__, platform.machine(), backend, _avx512())
    if not cpu_flags and here in VERIFIED:
        return True
    u = _probe_values()
    spec = jax.ShapeDtypeStruct(u.shape, _F32)
    # Each compiled alone: in one program XLA could share their common subexpressions, and a
    # product with two uses is not fused into an FMA, which would hide a difference.
    want = np.asarray(jax.jit(lax.erf_inv).lower(spec).compile()(u)).view(np.uint32)
    for options in [{}] + ([WIDE_VECTORS] if backend == "cpu" else []):
        got = jax.jit(erf_inv).lower(spec).compile(compiler_options=options)(u)
        if not np.array_equal(np.asarray(got).view(np.uint32), want):
            return False
    return True


def for_sampler(u: jax.Array, *, edges: bool = True, tail: bool = True) -> Any:
    """:func:`erf_inv` where it applies (float32, :func:`exact`), else ``lax.erf_inv``."""
    if np.dtype(u.dtype) == _F32 and exact():
        return erf_inv(u, edges=edges, tail=tail)
    return lax.erf_inv(u)
