"""jinit._random: the fused Threefry path is bit-identical to jax.random, and falls back safely."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from jinit import _random, _threefry

SAMPLERS = {
    "uniform": (lambda m, k, s, d: m.uniform(k, s, d, -1.5, 2.0)),
    "normal": (lambda m, k, s, d: m.normal(k, s, d)),
    "truncated_normal": (lambda m, k, s, d: m.truncated_normal(k, -2.0, 1.5, s, d)),
}
SHAPES = [(), (0,), (1,), (7,), (3, 5), (0, 4), (2, 3, 4, 5), (129, 65)]


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return (a.shape == b.shape and a.dtype == b.dtype
            and a.reshape(-1).view(np.uint8).tobytes() == b.reshape(-1).view(np.uint8).tobytes())


def both(name, key, shape, dtype, jit=True):
    f = SAMPLERS[name]
    ours = lambda k: f(_random, k, shape, dtype)  # noqa: E731
    ref = lambda k: f(jax.random, k, shape, dtype)  # noqa: E731
    if jit:
        ours, ref = jax.jit(ours), jax.jit(ref)
    return ours(key), ref(key)


@pytest.fixture(autouse=True)
def _auto_fast_path():
    _random.set_fast_rng(None)
    yield
    _random.set_fast_rng(None)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_bit_identical_shapes(name, shape):
    assert same_bits(*both(name, jax.random.key(7), shape, jnp.float32))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_bit_identical_16bit(name, dtype):
    assert same_bits(*both(name, jax.random.key(3), (33, 17), dtype))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_eager_and_raw_keys(name):
    # Eager calls: jax.random's own jit and ours see the same operations, bounds included.
    typed, raw = jax.random.key(11), jax.random.PRNGKey(11)
    for key in (typed, raw):
        assert same_bits(*both(name, key, (5, 9), jnp.float32, jit=False))
        assert same_bits(*both(name, key, (5, 9), jnp.float32, jit=True))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_vmap_over_keys(name):
    keys = jax.random.split(jax.random.key(0), 4)
    f = SAMPLERS[name]
    ours = jax.vmap(lambda k: f(_random, k, (6, 10), jnp.float32))(keys)
    ref = jax.vmap(lambda k: f(jax.random, k, (6, 10), jnp.float32))(keys)
    assert same_bits(ours, ref)
    raw = jax.random.key_data(keys)
    assert same_bits(jax.vmap(lambda k: f(_random, k, (6, 10), jnp.float32))(raw), ref)


def test_orthogonal_bit_identical():
    key = jax.random.key(5)
    for n, m, batch in [(6, 4, ()), (4, 6, ()), (5, 5, (2,))]:
        assert same_bits(_random.orthogonal(key, n, batch, jnp.float32, m),
                         jax.random.orthogonal(key, n, batch, jnp.float32, m))


def test_fast_path_is_used_on_cpu_and_can_be_turned_off():
    if jax.default_backend() != "cpu":
        pytest.skip("the fused generator is only chosen on CPU")
    key = jax.random.key(0)
    assert "random_bits" not in str(jax.make_jaxpr(lambda k: _random.normal(k, (8,)))(key))
    _random.set_fast_rng(False)
    assert "random_bits" in str(jax.make_jaxpr(lambda k: _random.normal(k, (8,)))(key))


def test_env_var_turns_it_off(monkeypatch):
    monkeypatch.setenv("JINIT_FAST_RNG", "0")
    assert not _random._wanted()
    monkeypatch.setenv("JINIT_FAST_RNG", "1")
    assert _random._wanted()


def test_falls_back_for_other_key_impls_and_non_partitionable():
    key = jax.random.key(0, impl="rbg")
    assert same_bits(_random.normal(key, (4, 5)), jax.random.normal(key, (4, 5)))
    key = jax.random.key(1)
    with jax.threefry_partitionable(False):
        assert _random._plan(key, (4, 5), jnp.float32) is None
        assert same_bits(_random.normal(key, (4, 5)), jax.random.normal(key, (4, 5)))


def test_out_sharding_named_explicit():
    mesh = jax.make_mesh((1,), ("x",), axis_types=(AxisType.Explicit,))
    sharding = NamedSharding(mesh, PartitionSpec("x"))
    key = jax.random.key(2)
    ours = _random.normal(key, (8, 4), out_sharding=sharding)
    ref = jax.random.normal(key, (8, 4), out_sharding=sharding)
    assert same_bits(ours, ref) and ours.sharding == ref.sharding
    with jax.set_mesh(mesh):  # a PartitionSpec resolves against the context mesh
        ours = _random.uniform(key, (8, 4), out_sharding=PartitionSpec("x"))
        assert same_bits(ours, jax.random.uniform(key, (8, 4), out_sharding=PartitionSpec("x")))


def test_errors_are_jax_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="float"):
        _random.normal(key, (3,), jnp.int32)
    with pytest.raises(ValueError, match="single key"):
        _random.uniform(jax.random.split(key, 2), (3,))


def test_counters_match_flat_index():
    lo = _threefry.counters((3, 4, 5))
    assert np.array_equal(np.asarray(lo).reshape(-1), np.arange(60, dtype=np.uint32))
    with pytest.raises(ValueError, match="2\\*\\*32"):
        _threefry.random_bits(jnp.zeros(2, jnp.uint32), 32, (2**16, 2**16))


def test_float64_under_x64_subprocess():
    """f64 needs jax_enable_x64, which is process-wide: check it in a fresh interpreter."""
    code = textwrap.dedent("""
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        from jinit import _random
        k = jax.random.key(4)
        for f in (lambda m: m.uniform(k, (7, 9), "float64", -1, 3),
                  lambda m: m.normal(k, (7, 9), "float64"),
                  lambda m: m.truncated_normal(k, -2, 2, (7, 9), "float64"),
                  lambda m: m.normal(k, (5,), "float32")):
            a, b = jax.jit(lambda: f(_random))(), jax.jit(lambda: f(jax.random))()
            assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
