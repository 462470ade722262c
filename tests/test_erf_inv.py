"""jinit's plain-arithmetic float32 ``erf_inv`` equals XLA's, bit for bit, where samplers use it.

The module was compared on every float32 in (-1, 1) when written; these tests re-check every
uniform draw ``normal`` can make, every draw of a (-2, 2) truncated normal, and a dense
random sample with the edge cases, at XLA's default and at the samplers' wide vector width.
"""

from __future__ import annotations

import platform

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import pytest
from jax import lax

import jinit
from jinit import _chunked, _erf_inv, _random

F32 = np.float32
WIDTHS = {"default": {}, "wide": _erf_inv.WIDE_VECTORS}


def _bits(x) -> np.ndarray:
    return np.asarray(x).view(np.uint32)


def _compiled(fn, n: int, options: dict):
    return jax.jit(fn).lower(jax.ShapeDtypeStruct((n,), F32)).compile(compiler_options=options)


def _units() -> np.ndarray:
    """Every float ``jax.random.uniform`` can draw in [0, 1) (all 2**23 of them)."""
    bits = (np.arange(2**23, dtype=np.uint32) << 9) >> 9 | np.uint32(0x3F800000)
    return bits.view(F32) - F32(1)


def _draws(lo: F32, hi: F32) -> np.ndarray:
    """Every value ``uniform(key, shape, float32, lo, hi)`` can take, as jax computes it."""
    units = jnp.asarray(_units())
    return np.asarray(jax.jit(lambda u: lax.max(lo, u * (hi - lo) + lo))(units))


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_every_normal_draw(width):
    u = _draws(np.nextafter(F32(-1), F32(0)), F32(1))
    want = _bits(_compiled(lax.erf_inv, u.size, {})(u))
    got = _compiled(lambda x: _erf_inv.erf_inv(x, edges=False), u.size, WIDTHS[width])(u)
    assert np.array_equal(_bits(got), want)


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_every_truncated_draw_within_two_sigma(width):
    u = _draws(*_chunked._erf_bounds(-2.0, 2.0))  # erf(+-2 / sqrt2), as the samplers get it
    want = _bits(_compiled(lax.erf_inv, u.size, {})(u))
    got = _compiled(lambda x: _erf_inv.erf_inv(x, edges=False, tail=False), u.size,
                    WIDTHS[width])(u)
    assert np.array_equal(_bits(got), want)


def _dense_sample() -> np.ndarray:
    """2**22 random floats in [-1, 1] plus the edge cases and NaN."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 0x3F800001, 2**22, dtype=np.uint32)
    bits[: 2**21] |= np.uint32(0x80000000)
    edges = np.array([0.0, -0.0, 1.0, -1.0, 1e-45, 1e-38, 0.9966, -0.9966, np.nan], F32)
    return np.concatenate([bits.view(F32), edges])


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_dense_sample_and_edges(width):
    u = _dense_sample()
    want = _bits(_compiled(lax.erf_inv, u.size, {})(u))
    got = _bits(_compiled(_erf_inv.erf_inv, u.size, WIDTHS[width])(u))
    nan = np.isnan(u)
    assert np.array_equal(got[~nan], want[~nan])
    assert np.isnan(got[nan].view(F32)).all()
    x = -np.abs(u[~nan])  # log1p's domain here: (-1, 0]
    x = x[x > -1]
    want = _bits(_compiled(lax.log1p, x.size, {})(x))
    assert np.array_equal(_bits(_compiled(_erf_inv.log1p, x.size, WIDTHS[width])(x)), want)


@pytest.mark.parametrize("bounds,guards", [
    ((-2.0, 2.0), (False, False)), ((-2.8, 1.0), (False, False)), ((-3.0, 3.0), (False, True)),
    ((-5.0, 0.0), (False, True)), ((-6.0, 6.0), (True, True)), ((-np.inf, np.inf), (True, True)),
    ((np.nan, 1.0), (True, True))])
def test_truncated_normal_guards_follow_the_bounds(bounds, guards):
    assert _random._guards(*bounds) == guards


def test_traced_bounds_keep_every_guard():
    seen = []
    jax.jit(lambda lo: seen.append(_random._guards(lo, 2.0)))(F32(-2))
    assert seen == [(True, True)]


@pytest.mark.parametrize("lower,upper", [(-2.0, 2.0), (-3.0, 2.5), (-6.0, 6.0),
                                         (-np.inf, np.inf), (-1e9, -0.5)])
def test_truncated_normal_matches_jax_for_any_bounds(lower, upper):
    key = jax.random.key(3)
    want = jax.random.truncated_normal(key, lower, upper, (64, 1024))
    for got in (_random.truncated_normal(key, lower, upper, (64, 1024)),
                jax.jit(lambda k: _random.truncated_normal(k, lower, upper, (64, 1024)))(key)):
        assert _bits(got).tobytes() == _bits(want).tobytes()


def test_wide_kernels_equal_the_default_jit():
    """The engine's eager kernels use the samplers' compile options; values do not change."""
    key = jax.random.key(5)
    init = jinit.truncated_normal(0.02, lower=-3.0, upper=3.0)
    tree = {"w": jax.ShapeDtypeStruct((300, 700), F32)}
    rules = jinit.rules((".*", init))
    first, second = rules(key, tree)["w"], rules(key, tree)["w"]  # chunk tier, per-shape tier
    want = jax.jit(lambda k: init(jinit.leaf_key(k, "w"), (300, 700), F32))(key)
    assert _bits(first).tobytes() == _bits(want).tobytes() == _bits(second).tobytes()


def test_probe_decides_where_unverified_and_falls_back_when_it_differs(monkeypatch):
    monkeypatch.setattr(_erf_inv, "VERIFIED", frozenset())
    _erf_inv._exact.cache_clear()
    try:
        assert _erf_inv.exact()  # the probe itself agrees on this machine
        assert _erf_inv._exact.cache_info().misses == 1
        _erf_inv._exact.cache_clear()
        monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
        monkeypatch.setattr(_erf_inv, "VERIFIED", _erf_inv.VERIFIED | {(
            jaxlib.__version__, platform.machine(), jax.default_backend(), _erf_inv._avx512())})
        monkeypatch.setattr(_erf_inv, "erf_inv", lambda u, **_: lax.erf_inv(u) * F32(1.0000001))
        assert not _erf_inv.exact()
        u = jnp.linspace(-0.99, 0.99, 101, dtype=F32)
        assert _bits(jax.jit(_erf_inv.for_sampler)(u)).tobytes() == _bits(
            jax.jit(lax.erf_inv)(u)).tobytes()
    finally:
        _erf_inv._exact.cache_clear()
