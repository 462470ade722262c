"""Combinators: mixture, masked, scaled, shifted, clipped, with_dtype, fused."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit

KEY = jax.random.key(0)
N = 200_000


def u(a: float, b: float) -> jinit.Initializer:
    """U[a, b) from the one-sided jinit.uniform."""
    return jinit.shifted(jinit.uniform(b - a), a)


TEXTBOOK_MIXTURE = jinit.mixture([(0.25, u(5, 10)), (0.5, jinit.zeros), (0.25, u(-10, -5))])
TEXTBOOK_MASKED = jinit.masked(u(-10, 10), lambda w: jnp.abs(w) < 5)


def binomial_tol(p: float, n: int) -> float:
    return 6 * math.sqrt(p * (1 - p) / n)  # 6 standard errors of a proportion


# --- mixture -----------------------------------------------------------------------------------


@pytest.mark.parametrize("init", [TEXTBOOK_MIXTURE, TEXTBOOK_MASKED], ids=["mixture", "masked"])
def test_textbook_distribution_proportions_and_ranges(init):
    w = np.asarray(init(KEY, (N,)))
    zero, hi, lo = w == 0, (w >= 5) & (w < 10), (w >= -10) & (w < -5)
    assert (zero | hi | lo).all()  # nothing outside {0} U [5, 10) U [-10, -5)
    for frac, p in ((zero.mean(), 0.5), (hi.mean(), 0.25), (lo.mean(), 0.25)):
        assert abs(frac - p) < binomial_tol(p, N)
    # Within each branch the values are uniform: mean of U[5, 10) is 7.5, std 5/sqrt(12).
    assert abs(w[hi].mean() - 7.5) < 6 * (5 / math.sqrt(12)) / math.sqrt(hi.sum())


def test_mixture_and_masked_forms_are_the_same_distribution():
    from scipy import stats

    a = np.asarray(TEXTBOOK_MIXTURE(jax.random.key(1), (N,)))
    b = np.asarray(TEXTBOOK_MASKED(jax.random.key(2), (N,)))
    # Two-sample KS on 200k each (an atom at 0 only makes KS conservative): p > 0.001.
    assert stats.ks_2samp(a, b).pvalue > 1e-3


def test_mixture_components_use_independent_keys():
    # Two copies of the same normal: if both got the same key the result would equal it.
    init = jinit.mixture([(0.5, jinit.normal(1.0)), (0.5, jinit.normal(1.0))])
    w = np.asarray(init(KEY, (N,)))
    assert not np.array_equal(w, np.asarray(jinit.normal(1.0)(KEY, (N,))))
    # Still N(0, 1): relative standard error of a sample std is 1/sqrt(2N).
    assert abs(w.std() - 1) < 6 / math.sqrt(2 * N)


def test_mixture_thirds_int_dtype_and_jax_components(variant):
    init = jinit.mixture([(1 / 3, jinit.constant(1)), (1 / 3, jinit.constant(2)),
                          (1 / 3, jax.nn.initializers.zeros)])
    w = np.asarray(variant(init)(KEY, (30_000,), jnp.int32))
    assert w.dtype == np.int32
    for v in (0, 1, 2):
        assert abs((w == v).mean() - 1 / 3) < binomial_tol(1 / 3, w.size)
    single = jinit.mixture([(1.0, jinit.normal())])
    assert single(KEY, (3,)).shape == (3,)


def test_mixture_bad_input():
    with pytest.raises(jinit.InitializerArgumentError, match=r"probability 0 must be >= 0"):
        jinit.mixture([(-0.5, jinit.zeros), (1.5, jinit.ones)])
    with pytest.raises(jinit.InitializerArgumentError, match=r"must sum to 1; got \[0.5, 0.4\]"):
        jinit.mixture([(0.5, jinit.zeros), (0.4, jinit.ones)])
    with pytest.raises(jinit.InitializerArgumentError, match="probability 1 must be finite"):
        jinit.mixture([(0.5, jinit.zeros), (float("nan"), jinit.ones)])
    with pytest.raises(jinit.InitializerArgumentError, match="at least one"):
        jinit.mixture([])
    with pytest.raises(jinit.InitializerArgumentError, match="component 1 must be an initializer"):
        jinit.mixture([(0.5, jinit.zeros), (0.5, 3.0)])
    with pytest.raises(jinit.InitializerArgumentError, match=r"\(probability, initializer\) pairs"):
        jinit.mixture([0.5, 0.5])
    mixed = jinit.mixture([(0.5, jinit.normal()), (0.5, jinit.with_dtype(jinit.zeros, "int32"))])
    with pytest.raises(jinit.DTypeError, match=r"different dtypes \['float32', 'int32'\]"):
        mixed(KEY, (3,))


# --- masked ------------------------------------------------------------------------------------


def test_masked_fill_and_bad_mask():
    w = jinit.masked(jinit.normal(1.0), lambda w: w < 0, fill=-1.0)(KEY, (1000,))
    assert float(w.min()) == -1.0 and bool(((w == -1.0) | (w >= 0)).all())
    with pytest.raises(jinit.DTypeError, match="must return a bool array; it returned dtype float32"):
        jinit.masked(jinit.normal(), lambda w: w * 2)(KEY, (3,))
    with pytest.raises(jinit.ShapeError, match=r"returned shape \(2,\).*values' shape \(3,\)"):
        jinit.masked(jinit.normal(), lambda w: jnp.array([True, False]))(KEY, (3,))
    with pytest.raises(jinit.InitializerArgumentError, match="mask_fn must be a callable"):
        jinit.masked(jinit.normal(), "abs(w) < 5")
    with pytest.raises(jinit.InitializerArgumentError, match="masked: init must be an initializer"):
        jinit.masked(0.5, lambda w: w < 0)
    with pytest.raises(jinit.InitializerArgumentError, match="fill must be a number"):
        jinit.masked(jinit.normal(), lambda w: w < 0, fill="zero")


# --- elementwise wrappers ----------------------------------------------------------------------


def test_scaled_shifted_exact_and_wrap_jax_initializers():
    base = jax.nn.initializers.normal(1.0)
    ref = np.asarray(base(KEY, (5, 4), jnp.float32))
    np.testing.assert_array_equal(np.asarray(jinit.scaled(base, 3.0)(KEY, (5, 4))), ref * 3)
    np.testing.assert_array_equal(np.asarray(jinit.shifted(base, -2.0)(KEY, (5, 4))),
                                  np.float32(ref) + np.float32(-2.0))
    with pytest.raises(jinit.InitializerArgumentError, match="scaled: factor must be finite"):
        jinit.scaled(base, float("inf"))
    with pytest.raises(jinit.InitializerArgumentError, match="shifted: offset must be a number"):
        jinit.shifted(base, "one")


def test_clipped_bounds_and_bad_input():
    w = jinit.clipped(jinit.normal(1.0), min=-0.5)(KEY, (1000,))
    assert float(w.min()) == -0.5 and float(w.max()) > 0.5
    with pytest.raises(jinit.InitializerArgumentError, match=r"min must be <= max; got min=1.0"):
        jinit.clipped(jinit.normal(), 1.0, -1.0)
    with pytest.raises(jinit.InitializerArgumentError, match="give min, max or both"):
        jinit.clipped(jinit.normal())


def test_dtype_passthrough_and_with_dtype():
    # A wrapper keeps the wrapped initializer's own default dtype when the call passes none.
    assert jinit.scaled(jinit.normal(dtype=jnp.bfloat16), 2.0)(KEY, (3,)).dtype == jnp.bfloat16
    assert jinit.scaled(jinit.normal(), 2.0)(KEY, (3,), jnp.float16).dtype == jnp.float16
    forced = jinit.with_dtype(jinit.normal(), jnp.bfloat16)
    assert forced(KEY, (3,), jnp.float32).dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(forced(KEY, (3,)), np.float32),
                                  np.asarray(jinit.normal()(KEY, (3,), jnp.bfloat16), np.float32))
    with pytest.raises(jinit.DTypeError, match="with_dtype.*not a dtype"):
        jinit.with_dtype(jinit.normal(), "float99")
    with pytest.raises(jinit.DTypeError, match="cannot produce dtype int32"):
        jinit.scaled(jinit.normal(), 2)(KEY, (3,), jnp.int32)  # the wrapped init checks dtypes


# --- fused -------------------------------------------------------------------------------------


def test_fused_blocks_equal_standalone_blocks():
    init = jinit.fused(jinit.orthogonal(), 4)
    w = np.asarray(init(KEY, (8, 32)))
    keys = jax.random.split(KEY, 4)
    for i, k in enumerate(keys):
        block = w[:, 8 * i:8 * (i + 1)]
        np.testing.assert_array_equal(block, np.asarray(jinit.orthogonal()(k, (8, 8))))
        np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-5)  # per-gate orthogonal


def test_fused_qkv_has_per_projection_xavier_std():
    e = 256
    w = np.asarray(jinit.fused(jinit.xavier_uniform(), 3)(KEY, (e, 3 * e)), np.float64)
    # Xavier of one (E, E) projection: var = 2 / (E + E); relative s.e. of the variance of a
    # uniform is sqrt(0.8 / N) (excess kurtosis -1.2); the packed fans would give var 2 / (4E).
    assert abs(w.var() * e - 1) < 6 * math.sqrt(0.8 / w.size)
    sizes = jinit.fused(jinit.normal(), (2, 3), axis=0)(KEY, (5, 4))
    assert sizes.shape == (5, 4)


def test_fused_bad_input():
    with pytest.raises(jinit.InitializerArgumentError, match="splits must be a positive int"):
        jinit.fused(jinit.normal(), 0)
    with pytest.raises(jinit.InitializerArgumentError, match="splits must be a positive int"):
        jinit.fused(jinit.normal(), ("a", 2))
    with pytest.raises(jinit.InitializerArgumentError, match="axis must be an int"):
        jinit.fused(jinit.normal(), 2, axis=1.0)
    with pytest.raises(jinit.ShapeError, match=r"\(10\) is not divisible into 4 equal blocks"):
        jinit.fused(jinit.normal(), 4)(KEY, (3, 10))
    with pytest.raises(jinit.ShapeError, match=r"sizes \(2, 3\) sum to 5.*has size 4"):
        jinit.fused(jinit.normal(), (2, 3))(KEY, (3, 4))
    with pytest.raises(jinit.ShapeError, match="axis=2 is out of range"):
        jinit.fused(jinit.normal(), 2, axis=2)(KEY, (3, 4))


# --- shared: jit/eager, vmap over keys, reprs -----------------------------------------------------

ALL = {
    "mixture": TEXTBOOK_MIXTURE,
    "masked": TEXTBOOK_MASKED,
    "scaled": jinit.scaled(jinit.normal(), 0.5),
    "shifted": jinit.shifted(jinit.normal(), 0.5),
    "clipped": jinit.clipped(jinit.normal(), -0.01, 0.01),
    "with_dtype": jinit.with_dtype(jinit.normal(), jnp.float16),
    "fused": jinit.fused(jinit.glorot_uniform(), 2),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_jit_equals_eager_and_vmap_equals_loop(name):
    init, shape = ALL[name], (4, 6)
    eager = init(KEY, shape, jnp.float32)
    jitted = jax.jit(init, static_argnums=(1, 2))(KEY, shape, jnp.float32)
    np.testing.assert_allclose(np.asarray(jitted, np.float32), np.asarray(eager, np.float32),
                               rtol=1e-6)
    keys = jax.random.split(KEY, 3)
    batched = jax.vmap(lambda k: init(k, shape, jnp.float32))(keys)
    for k, b in zip(keys, batched, strict=True):
        np.testing.assert_allclose(np.asarray(b, np.float32),
                                   np.asarray(init(k, shape, jnp.float32), np.float32), rtol=1e-6)


def test_reprs_are_readable():
    assert repr(jinit.scaled(jinit.normal(0.02), 0.5)) == (
        "Scaled(init=Normal(stddev=0.02, dtype=None), factor=0.5)")
    assert repr(jinit.mixture([(1, jinit.zeros)])) == "Mixture(components=((1.0, jinit.zeros),))"
    assert repr(jinit.fused(jinit.orthogonal(), 4)) == (
        "Fused(init=Orthogonal(scale=1.0, column_axis=-1, dtype=None), splits=4, axis=-1)")


def test_clipped_complex_is_a_dtype_error():
    # QA regression: jnp.clip's own ValueError leaked out for complex draws.
    with pytest.raises(jinit.DTypeError, match="complex values .* cannot be clipped"):
        jinit.clipped(jinit.normal(), -1, 1)(KEY, (4,), jnp.complex64)
