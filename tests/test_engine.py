"""jinit._engine: cached per-kind kernels, bit-identical to the reference path everywhere."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit
from jinit import _chunked, _engine, _progress
from jinit._engine import LeafTask, init_leaves
from jinit._paths import leaf_key

_LOWERINGS = [0]


def _count(event: str, duration: float, **_: object) -> None:
    if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
        _LOWERINGS[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count)


class Unhashable:
    """A callable initializer that cannot be hashed (eq without hash)."""

    def __eq__(self, other):
        return isinstance(other, Unhashable)

    __hash__ = None  # type: ignore[assignment]

    def __call__(self, key, shape, dtype=None):
        return jax.random.uniform(key, shape, dtype)


def tasks_for(n_blocks: int, prefix: str = "") -> list[LeafTask]:
    """A small transformer-like list: 3 distinct kinds, repeated ``n_blocks`` times."""
    out = []
    for i in range(n_blocks):
        p = f"{prefix}h/{i}/"
        out += [LeafTask(p + "kernel", jinit.lecun_normal(), (16, 24), jnp.float32),
                LeafTask(p + "bias", jinit.zeros, (24,), jnp.float32),
                LeafTask(p + "scale", jinit.normal(0.5), (24,), jnp.float32)]
    return out


def reference(key, tasks):
    return [jax.jit(lambda k, t=t: t.init(leaf_key(k, t.path), t.shape, t.dtype))(key)
            for t in tasks]


def same_bits(xs, ys) -> bool:
    return all(np.asarray(x).dtype == np.asarray(y).dtype
               and np.asarray(x).tobytes() == np.asarray(y).tobytes() for x, y in zip(xs, ys, strict=False))


MIXED = [
    LeafTask("emb", jinit.normal(0.02), (50, 8), jnp.float32),
    LeafTask("a/kernel", jinit.glorot_uniform(), (8, 12), jnp.float32),
    LeafTask("a/bias", jinit.zeros, (12,), jnp.float32),
    LeafTask("b/kernel", jinit.he_normal(), (3, 3, 4, 6), jnp.bfloat16),
    LeafTask("rnn/kernel", jinit.orthogonal(), (12, 12), jnp.float32),
    LeafTask("flax_style", jax.nn.initializers.lecun_normal(), (12, 5), jnp.float32),
    LeafTask("odd", Unhashable(), (7,), jnp.float32),  # op-by-op under vmap: exact ops only
    LeafTask("empty", jinit.normal(), (0, 3), jnp.float32),
]


@pytest.mark.parametrize("key", [jax.random.key(0), jax.random.PRNGKey(0)],
                         ids=["typed", "raw"])
def test_values_equal_reference(key):
    assert same_bits(init_leaves(key, MIXED), reference(key, MIXED))


def test_eager_jit_vmap_agree():
    key = jax.random.key(1)
    eager = init_leaves(key, MIXED)
    jitted = jax.jit(lambda k: init_leaves(k, MIXED))(key)
    assert same_bits(eager, jitted)
    keys = jax.random.split(key, 3)
    batched = jax.vmap(lambda k: init_leaves(k, MIXED))(keys)
    for j in range(3):
        assert same_bits([b[j] for b in batched], init_leaves(keys[j], MIXED))
    shapes = jax.eval_shape(lambda k: init_leaves(k, MIXED), key)
    assert [s.shape for s in shapes] == [t.shape for t in MIXED]


FLAX_LECUN = jax.nn.initializers.lecun_normal()
FLAX_NORMAL = jax.nn.initializers.normal(0.5)


def kernel_tasks(n_blocks: int, prefix: str = "") -> list[LeafTask]:
    """Leaves that need per-shape kernels: 3 distinct kinds, repeated ``n_blocks`` times."""
    out = []
    for i in range(n_blocks):
        p = f"{prefix}h/{i}/"
        out += [LeafTask(p + "kernel", FLAX_LECUN, (16, 24), jnp.float32),
                LeafTask(p + "rec", jinit.orthogonal(), (24, 24), jnp.float32),
                LeafTask(p + "scale", FLAX_NORMAL, (24,), jnp.float32)]
    return out


def test_per_shape_kernels_compile_once_per_kind_independent_of_leaf_count():
    key = jax.random.key(2)
    counts = []
    for n_blocks in (2, 12):
        _engine.clear_cache()
        before = _LOWERINGS[0]
        init_leaves(key, kernel_tasks(n_blocks))
        counts.append(_LOWERINGS[0] - before)
    kinds = _engine.kernel_count(kernel_tasks(12))
    assert kinds == 3
    assert counts == [kinds, kinds]
    before = _LOWERINGS[0]  # a second call, other paths: nothing new is compiled
    init_leaves(key, kernel_tasks(5, prefix="other/"))
    assert _LOWERINGS[0] == before
    assert _engine.cache_info()["cached"] == 3


def distinct_shapes(n: int, start: int) -> list[LeafTask]:
    """``n`` leaves of distinct shapes and the standard samplers: no two share a shape."""
    inits = [jinit.lecun_normal(), jinit.normal(0.02), jinit.he_uniform(), jinit.zeros,
             jinit.ones, jinit.truncated_normal(0.1)]
    return [LeafTask(f"s{start + i}", inits[i % len(inits)], (start + i, 3), jnp.float32)
            for i in range(n)]


def test_compiles_do_not_grow_with_distinct_shapes():
    _engine.clear_cache()
    key = jax.random.key(4)
    before = _LOWERINGS[0]
    init_leaves(key, distinct_shapes(30, 5))
    first = _LOWERINGS[0] - before
    # small chunk kernels of two families (normal draws truncated normals too); truncated
    # bounds (2) are one tiny constant program each
    assert first <= 2 + 2, first
    assert _engine.kernel_count(distinct_shapes(30, 5)) == 2
    before = _LOWERINGS[0]
    init_leaves(key, distinct_shapes(40, 100))
    assert _LOWERINGS[0] == before
    assert _engine.cache_info()["cached"] == 0


def test_large_gaussian_leaves_share_one_kernel():
    """Normal and truncated-normal leaves of any size above ``BIG // 2`` (a transformer's)
    compile one chunk kernel per dtype: the remainder of a leaf is an overlapping large chunk."""
    inits = [jinit.normal(0.02), jinit.lecun_normal(), jinit.truncated_normal(0.3, -1.5, 1.0)]
    tasks = [LeafTask(f"g{i}", inits[i % 3], (_chunked.BIG // 2 + 1 + 977 * i, 1), jnp.float32)
             for i in range(6)]
    assert _engine.kernel_count(tasks) == 1
    tasks.append(LeafTask("u", jinit.he_uniform(), (_chunked.BIG + 5, 1), jnp.float32))
    assert _engine.kernel_count(tasks) == 2


def test_zeros_and_ones_compile_nothing():
    _engine.clear_cache()
    tasks = [LeafTask(f"c{i}", init, (i + 1, 7), dt)
             for i, (init, dt) in enumerate([(jinit.zeros, jnp.float32), (jinit.ones, jnp.bfloat16),
                                             (jinit.zeros, jnp.int32), (jinit.ones, jnp.bool_),
                                             (jinit.constant(-0.0), jnp.float32)])]
    before = _LOWERINGS[0]
    out = init_leaves(jax.random.key(0), tasks)
    assert _LOWERINGS[0] == before
    assert same_bits(out, reference(jax.random.key(0), tasks))
    assert _engine.kernel_count(tasks) == 0


B, S = _chunked.BIG, _chunked.SMALL
BOUNDARY_SHAPES = [(), (0,), (1,), (7,), (S - 1,), (S,), (S + 1,), (B // 2,), (B // 2 + 1,),
                   (B - 1,), (B,), (B + 1,), (2 * B + S + 3,), (5, 0, 3), (3, 5, 7)]
SAMPLERS = [jinit.normal(0.02), jinit.truncated_normal(0.3, lower=-1.5, upper=1.0),
            jinit.uniform(0.7)]


@pytest.mark.parametrize(("key", "dtype"), [
    (jax.random.key(3), jnp.float32), (jax.random.PRNGKey(5), jnp.float32),
    (jax.random.key(6), jnp.bfloat16), (jax.random.PRNGKey(7), jnp.float16)],
    ids=["typed-f32", "raw-f32", "typed-bf16", "raw-f16"])
@pytest.mark.parametrize("init", SAMPLERS, ids=["normal", "truncated", "uniform"])
def test_chunked_leaves_bit_identical_at_boundaries(init, key, dtype):
    """Every size around the chunk boundaries equals the reference, flat index by flat index.

    The leaves share one key (``key_path``), so each is a prefix of one reference leaf of the
    largest size: a value depends only on the key and the flat index.
    """
    tasks = [LeafTask(f"n{j}", init, shape, dtype, key_path="w")
             for j, shape in enumerate(BOUNDARY_SHAPES)]
    assert all(_chunked.recipe(t.init, t.shape, t.dtype) is not None for t in tasks)
    n = max(math.prod(s) for s in BOUNDARY_SHAPES)
    full = np.asarray(reference(key, [LeafTask("w", init, (n,), dtype)])[0])
    for t, x in zip(tasks, init_leaves(key, tasks), strict=True):
        x = np.asarray(x)
        assert x.shape == t.shape and x.dtype == full.dtype
        assert x.reshape(-1).tobytes() == full[:x.size].tobytes(), t.shape


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_chunked_variance_scaling_bit_identical(dtype):
    inits = [jinit.lecun_normal(), jinit.he_uniform(in_axis=0, out_axis=-1),
             jinit.variance_scaling(0.5, "fan_avg", "normal"),
             jinit.variance_scaling(3.0, "fan_geo_avg", "uniform")]
    shapes = [(B // 8 + 3, 9), (3, 3, 5, 7)]
    tasks = [LeafTask(f"v{i}/{j}", init, shape, dtype)
             for i, init in enumerate(inits) for j, shape in enumerate(shapes)]
    assert all(_chunked.recipe(t.init, t.shape, t.dtype) is not None for t in tasks)
    assert same_bits(init_leaves(jax.random.key(9), tasks), reference(jax.random.key(9), tasks))


def test_leaves_are_aligned_host_memory_without_copies():
    """A chunked leaf is its own 64-byte-aligned buffer (no copy into XLA)."""
    out = init_leaves(jax.random.key(0), distinct_shapes(6, 1000))
    for x in out:
        assert x.unsafe_buffer_pointer() % _chunked.ALIGN == 0
        assert np.asarray(x).ctypes.data == x.unsafe_buffer_pointer()


def test_prefault_never_writes_where_a_writer_has_waited(monkeypatch):
    """The helper maps pages ahead of the copies; a byte written after ``wait`` is never
    overwritten by it. The writer holds the helper's lock except inside ``wait``, so the
    helper can only advance while the writer waits: without a real ``wait`` the writer would
    fill everything first and the helper would then zero one byte per page behind it."""
    import threading

    monkeypatch.setattr(_chunked.Prefault, "BLOCK", 64 * 1024)
    monkeypatch.setattr(_chunked.Prefault, "MIN_BYTES", 8 * 1024)
    gate, run = threading.Event(), _chunked.Prefault._run
    monkeypatch.setattr(_chunked.Prefault, "_run", lambda self: (gate.wait(), run(self)))
    sizes = [100, 8 * 1024, 300_001, 3 * 2**20 + 5, 2**20 + 7]
    bufs = [_chunked.aligned((n,), np.dtype(np.uint8)) for n in sizes]
    prefault = _chunked.Prefault(bufs)
    try:
        with prefault._cond:
            gate.set()
            for i, buf in enumerate(bufs):
                for lo in range(0, buf.size, 10_007):
                    hi = min(buf.size, lo + 10_007)
                    prefault.wait(i, hi)
                    buf[lo:hi] = 0xAB
        prefault._thread.join(timeout=120)  # the helper finishes: it must not write anymore
    finally:
        gate.set()
        prefault.close()
    assert all((buf == 0xAB).all() for buf in bufs)


def test_memory_does_not_grow_with_distinct_shapes():
    """Distinct random-leaf shapes used to keep a compiled kernel each alive (~190 KB)."""
    import gc

    def rss() -> int:
        gc.collect()
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS")).split()[1])

    _engine.clear_cache()  # shapes drawn by earlier tests would be drawn a second time here
    key = jax.random.key(1)
    for x in init_leaves(key, distinct_shapes(60, 2000)):
        del x
    before = rss()
    for start in range(3000, 3600, 60):
        out = init_leaves(key, distinct_shapes(60, start))
        del out
    grown_kb = rss() - before
    assert grown_kb < 600 * 40, f"RSS grew {grown_kb} KB over 600 distinct shapes"
    assert _engine.cache_info()["cached"] == 0


def test_a_kind_drawn_again_gets_its_own_kernel_with_the_same_bits():
    """Tiers: the first draw of a kind uses the chunk kernels (no compile), the next one a
    per-shape kernel (the faster warm path); both give the reference bits."""
    _engine.clear_cache()
    tasks = distinct_shapes(6, 5000)
    first = init_leaves(jax.random.key(3), tasks)
    assert _engine.cache_info()["cached"] == 0
    second = init_leaves(jax.random.key(3), tasks)
    promoted = _engine.cache_info()["cached"]
    assert promoted >= 3  # random samplers got kernels; zeros/ones stay fills
    third = init_leaves(jax.random.key(3), tasks)
    assert _engine.cache_info()["cached"] == promoted
    for t, a, b, c in zip(tasks, first, second, third, strict=True):
        want = jax.jit(t.init, static_argnums=(1, 2))(
            leaf_key(jax.random.key(3), t.path), t.shape, t.dtype)
        for got in (a, b, c):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_engine, "CACHE_SIZE", 2)
    _engine.clear_cache()
    init_leaves(jax.random.key(0), kernel_tasks(1))
    assert _engine.cache_info()["cached"] == 2


def test_initializer_errors_propagate_unchanged():
    bad = [LeafTask("w", jinit.orthogonal(), (4,), jnp.float32)]
    with pytest.raises(jinit.ShapeError, match="at least 2 dimensions"):
        init_leaves(jax.random.key(0), bad)


def test_progress_bar_draws_and_keeps_values(capsys):
    if _progress.backend() is None:
        pytest.skip("neither rich nor tqdm is installed")
    key = jax.random.key(3)
    tasks = tasks_for(2)
    shown = init_leaves(key, tasks, progress=True)
    assert "jinit init" in capsys.readouterr().err
    assert same_bits(shown, init_leaves(key, tasks, progress=False))
    assert capsys.readouterr().err == ""


def test_progress_switches(monkeypatch):
    monkeypatch.delenv("JINIT_PROGRESS", raising=False)
    assert not _progress.enabled(10)
    assert _progress.enabled(10, requested=True)
    monkeypatch.setenv("JINIT_PROGRESS", "1")
    assert _progress.enabled(10)
    monkeypatch.setenv("JINIT_PROGRESS", "0")
    assert not _progress.enabled(10**12)


@pytest.mark.slow
def test_sharded_kernels_generate_shards_without_collectives():
    """8 simulated devices: shards are 1/8, values equal the unsharded init, no collectives."""
    code = textwrap.dedent("""
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
        import jax, jax.numpy as jnp, numpy as np, jinit, re
        from jax.sharding import NamedSharding, PartitionSpec as P
        from jinit import _engine
        from jinit._engine import LeafTask, init_leaves
        mesh = jax.make_mesh((2, 4), ("d", "m"))
        specs = [("emb", jinit.normal(0.02), (64, 16), P("m", None)),
                 ("qkv", jinit.lecun_normal(), (16, 48), P("d", "m")),
                 ("fc", jinit.he_uniform(), (16, 64), P(None, ("d", "m"))),
                 ("orth", jinit.orthogonal(), (32, 32), P(None, "m")),
                 ("bias", jinit.zeros, (48,), P("m"))]
        sharded = [LeafTask(p, i, s, jnp.float32, NamedSharding(mesh, sp))
                   for p, i, s, sp in specs]
        plain = [LeafTask(p, i, s, jnp.float32) for p, i, s, _ in specs]
        key = jax.random.key(0)
        a, b = init_leaves(key, sharded), init_leaves(key, plain)
        for t, x, y in zip(sharded, a, b):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), t.path
            n = t.sharding.num_devices // len(set(map(str, t.sharding.devices_indices_map(
                t.shape).values())))
            assert x.addressable_shards[0].data.size * (8 // n) == x.size, t.path
            hlo = _engine._kernel(_engine._kind(t))[0].eager.lower(
                key, _engine._digest(t.path)).compile().as_text()
            found = re.findall(r"all-gather|all-reduce|collective-permute|all-to-all", hlo)
            if t.path != "orth":
                assert not found, (t.path, found)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_out_of_memory_is_a_leaf_init_error_naming_the_leaf():
    """Host allocation (zeros, chunked samplers) and XLA's RESOURCE_EXHAUSTED, under a 6 GiB cap."""
    code = textwrap.dedent("""
        import resource, jax, jinit, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))
        for name, ini in [("zeros", jinit.zeros), ("normal", jinit.normal()),
                          ("flax", jax.nn.initializers.normal())]:
            spec = {"ok": jax.ShapeDtypeStruct((3,), np.float32),
                    name: jax.ShapeDtypeStruct((2**31 - 1,), np.float32)}
            try:
                jinit.rules((".*", ini))(jax.random.key(0), spec)
            except jinit.LeafInitError as e:
                assert e.path == name and "out of memory" in str(e), (name, str(e))
                assert isinstance(e.__cause__, (MemoryError, jax.errors.JaxRuntimeError)), name
            else:
                raise AssertionError(name + ": no error")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
