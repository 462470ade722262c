"""Executes leaf initializers: the single place where the compilation strategy is decided.

Tree initializers resolve their rules into a list of :class:`LeafTask` and call
:func:`init_leaves`. Values are the contract: for a given root key, every strategy returns
arrays bit-identical to ``task.init(leaf_key(key, task.key_source), task.shape, task.dtype)``
under ``jax.jit``, eagerly, under ``jax.vmap`` and with shardings.

Strategy:

* **Under a trace** (the key is a tracer: ``jit``/``vmap``/``eval_shape``) every leaf is traced
  inline into the caller's program.
* **Eagerly, without a sharding, on CPU**, leaves that are zeros, ones or one of the standard
  samplers (``normal``, ``truncated_normal``, ``uniform``, ``variance_scaling`` and its
  presets) are filled without a per-shape kernel (:mod:`jinit._chunked`): constants in host
  memory, samples in flat chunks by one kernel per ``(sampler family, chunk size, dtype)``.
  The leaf keys are derived on the host. A process compiles a handful of small kernels
  whatever the tree, and :func:`jinit.set_kernel_cache` keeps them on disk for the next one.
* **Every other leaf** (orthogonal, custom initializers, sharded leaves, other backends) gets
  one compiled kernel ``(root_key, path_digest) -> leaf`` per distinct ``(initializer, shape,
  dtype, sharding)``, reused by every leaf of that kind in this call and later ones. A kernel
  with a sharding writes each shard on its own device and contains no collectives (the fused
  Threefry generator of :mod:`jinit._random` is partitionable). Initializers that cannot be
  hashed run together in one jitted program. These kernels survive the process with JAX's
  persistent compilation cache::

    jax.config.update("jax_compilation_cache_dir", "~/.cache/jax")
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from jinit import _chunked, _progress, _random, _threefry
from jinit._errors import LeafInitError
from jinit._paths import path_digest
from jinit._typing import PRNGKey


@dataclasses.dataclass(frozen=True)
class LeafTask:
    """One leaf to initialize: its path string, initializer, shape, dtype and sharding."""

    path: str
    init: Any  # an InitFn
    shape: tuple[int, ...]
    dtype: Any
    sharding: Any = None  # a jax.sharding.Sharding, or None
    #: The path whose digest keys the leaf (default: ``path``). Leaves that are blocks of one
    #: fused draw (e.g. the per-gate blocks of Keras's fused orthogonal LSTM matrix) share it.
    key_path: str | None = None

    @property
    def key_source(self) -> str:
        """The path the leaf's key derives from."""
        return self.path if self.key_path is None else self.key_path


@dataclasses.dataclass(frozen=True)
class _Kernel:
    """A kind's jitted kernel ``(root_key, path_digest) -> leaf``, twice: ``inline`` for use
    inside a trace, ``eager`` for eager calls, compiled with :func:`_random.kernel_options`
    when the initializer is one of jinit's own samplers (any other keeps XLA's defaults, so
    its values match the user's own ``jit``). Both give the same values."""

    inline: Callable[[PRNGKey, np.ndarray], jax.Array]
    eager: Callable[[PRNGKey, np.ndarray], jax.Array]


#: Most kernels kept; the least recently used beyond this are dropped.
CACHE_SIZE = 1024
_cache: collections.OrderedDict[Hashable, _Kernel] = collections.OrderedDict()
_lock = threading.Lock()
_stats = {"kernels": 0}


def _leaf(init: Any, key: PRNGKey, digest: jax.Array, *, shape, dtype) -> jax.Array:
    """The leaf value from the root key: ``leaf_key``'s two fold-ins, then the initializer."""
    leaf_key = jax.random.fold_in(jax.random.fold_in(key, digest[0]), digest[1])
    return init(leaf_key, shape, dtype)


def _digest(path: str) -> np.ndarray:
    return np.array(path_digest(path), np.uint32)


def _run_inline(key: PRNGKey, task: LeafTask) -> jax.Array:
    """One leaf inside the caller's trace.

    The leaf goes through its cached jitted kernel when it has one: under ``jit`` the kernel is
    inlined, and under an eager ``vmap`` it still runs as one compiled program, so its values
    equal the eager and jitted ones bit for bit (op-by-op execution can round differently
    from XLA's fused code, e.g. by one ulp for ``normal(key) * stddev``).
    """
    kind = _kind(task)
    if kind is not None:
        return _kernel(kind)[0].inline(key, _digest(task.key_source))
    out = _leaf(task.init, key, path_digest(task.key_source), shape=task.shape, dtype=task.dtype)
    if task.sharding is not None:
        out = jax.lax.with_sharding_constraint(out, task.sharding)
    return out


def _kind(task: LeafTask) -> Hashable | None:
    """The cache key of a task's kernel, or ``None`` if its initializer is unhashable."""
    kind = (task.init, tuple(task.shape), np.dtype(task.dtype), task.sharding)
    try:
        hash(kind)
    except TypeError:
        return None
    return kind


def _replicated(sharding: Any) -> Any:
    """Replicated input sharding on the same mesh as ``sharding`` (or ``None``)."""
    if isinstance(sharding, jax.sharding.NamedSharding):
        return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return None


def _make_kernel(kind: tuple) -> _Kernel:
    init, shape, dtype, sharding = kind
    rep = _replicated(sharding)
    jit = functools.partial(jax.jit, functools.partial(_leaf, init, shape=shape, dtype=dtype),
                            in_shardings=None if rep is None else (rep, rep),
                            out_shardings=sharding)
    options = (_random.kernel_options()
               if isinstance(_chunked.recipe(init, shape, dtype), _chunked.Draw) else {})
    inline = jit()
    return _Kernel(inline, jit(compiler_options=options) if options else inline)


def _kernel(kind: Hashable) -> tuple[_Kernel, bool]:
    """The cached jitted kernel of ``kind``, and whether it was created by this call."""
    with _lock:
        fn = _cache.get(kind)
        if fn is not None:
            _cache.move_to_end(kind)
            return fn, False
        fn = _cache[kind] = _make_kernel(kind)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        _stats["kernels"] += 1
        return fn, True


#: Kinds already drawn once through the shape-independent chunk kernels (least recent first).
_drawn: collections.OrderedDict[Hashable, None] = collections.OrderedDict()


def _tiers(tasks: Sequence[LeafTask], recipes: list[Any]) -> list[Any]:
    """Two tiers, like a tiered JIT: a kind's first call draws through the chunk kernels (no
    compile, so a fresh process gets its parameters fast, however many leaves share the kind);
    a kind seen again in a later call gets its own per-shape kernel (one compile, then the
    fastest warm path: XLA writes the leaf directly, without a copy out of chunks). Both tiers
    give the same bits. ``None`` in the result means "use a per-shape kernel"."""
    out, fresh = [], []
    with _lock:
        for task, recipe in zip(tasks, recipes, strict=True):
            kind = _kind(task) if isinstance(recipe, _chunked.Draw) else None
            if kind is not None and (kind in _cache or kind in _drawn):
                _drawn.pop(kind, None)
                recipe = None
            elif kind is not None:
                fresh.append(kind)
            out.append(recipe)
        for kind in fresh:
            _drawn[kind] = None
        while len(_drawn) > CACHE_SIZE:
            _drawn.popitem(last=False)
    return out


def clear_cache() -> None:
    """Drops every cached kernel, per-shape and chunk (on-disk caches are kept)."""
    with _lock:
        _cache.clear()
        _drawn.clear()
    _chunked.clear()


def cache_info() -> dict[str, int]:
    """``{"cached": per-shape kernels in the cache, "created": per-shape kernels created in
    this process, "chunk": compiled chunk kernels}``."""
    with _lock:
        return {"cached": len(_cache), "created": _stats["kernels"],
                "chunk": _chunked.kernel_count()}


def _run_unhashable(key: PRNGKey, tasks: Sequence[LeafTask]) -> list[jax.Array]:
    shardings = [t.sharding for t in tasks]
    fn = jax.jit(lambda k: [_run_inline(k, t) for t in tasks],
                 out_shardings=shardings if any(s is not None for s in shardings) else None)
    return fn(key)


def _nbytes(task: LeafTask) -> int:
    return math.prod(task.shape) * np.dtype(task.dtype).itemsize


def _host_key_data(key: PRNGKey) -> np.ndarray | None:
    """The root key's ``uint32[2]`` threefry data on the host, or ``None``.

    ``None`` when the fused generator does not apply (another PRNG implementation,
    ``jax_threefry_partitionable=False``, the fast path switched off, not a CPU backend).
    """
    if not _random._wanted() or jax.default_backend() != "cpu":
        return None
    data = _random._key_data(key)
    return None if data is None else np.asarray(data)


def _leaf_key_data(data: np.ndarray, tasks: Sequence[LeafTask]) -> np.ndarray:
    """``uint32[n, 2]``: the key data of every task's leaf key, from the root's, on the host."""
    digests = np.array([path_digest(t.key_source) for t in tasks], np.uint32).reshape(-1, 2)
    return _threefry.fold_in_host(_threefry.fold_in_host(data, digests[:, 0]), digests[:, 1])


@contextlib.contextmanager
def _leaf_errors(task: LeafTask) -> Iterator[None]:
    """Out-of-memory while making ``task``'s leaf -> :class:`LeafInitError` naming its path."""
    try:
        yield
    except MemoryError as e:
        raise _out_of_memory(task, e) from e
    except jax.errors.JaxRuntimeError as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        raise _out_of_memory(task, e) from e


def _out_of_memory(task: LeafTask, error: BaseException) -> LeafInitError:
    return LeafInitError(
        f"out of memory while initializing leaf {task.path!r} (shape={tuple(task.shape)}, "
        f"dtype={np.dtype(task.dtype)}, {_nbytes(task) / 2**20:,.1f} MiB) with {task.init!r}: "
        f"{type(error).__name__}: {str(error)[:300]}. Free memory, initialize the tree in "
        "parts (jinit.rules on sub-trees), or shard it across devices (mesh=, partition=).",
        path=task.path)


def init_leaves(key: PRNGKey, tasks: Sequence[LeafTask], *,
                progress: bool | None = None) -> list[jax.Array]:
    """Returns the value of every task, in order.

    Inside a trace (the key is a tracer under ``jit``/``vmap``/``eval_shape``) the leaves are
    traced inline. Eagerly, constants and the standard samplers are filled without a per-shape
    kernel (:mod:`jinit._chunked`), and every other leaf runs one cached jitted kernel per
    ``(init, shape, dtype, sharding)`` (see the module docstring); with a sharding, each device
    materializes only its shard.

    Args:
      key: the root PRNG key (typed or raw ``uint32[2]``).
      tasks: the leaves to compute.
      progress: show a progress bar (``None``: automatic, for large trees on a terminal; see
        :func:`jinit._progress.bar`).

    Returns:
      One array per task, bit-identical to ``task.init(leaf_key(key, task.key_source), task.shape,
      task.dtype)``.

    Raises:
      LeafInitError: when memory runs out while making a leaf (names its path).
    """
    tasks = list(tasks)
    if isinstance(key, jax.core.Tracer):
        return [_run_inline(key, t) for t in tasks]
    results: list[Any] = [None] * len(tasks)
    data = _host_key_data(key)
    recipes = _tiers(tasks, [None if data is None or t.sharding is not None
                             else _chunked.recipe(t.init, t.shape, t.dtype) for t in tasks])
    kinds = [_kind(t) if r is None else None for t, r in zip(tasks, recipes, strict=True)]
    odd = [i for i, (k, r) in enumerate(zip(kinds, recipes, strict=True))
           if k is None and r is None]
    if odd:
        for i, v in zip(odd, _run_unhashable(key, [tasks[i] for i in odd]), strict=True):
            results[i] = v
    skip = set(odd)
    total = sum(_nbytes(t) for i, t in enumerate(tasks) if i not in skip)
    with _progress.bar(total, len(tasks) - len(odd), progress) as bar:
        kernel_leaves = [i for i, k in enumerate(kinds) if k is not None]
        for i in kernel_leaves:  # dispatched first: they run while the chunks are filled
            with _leaf_errors(tasks[i]):
                results[i] = _kernel(kinds[i])[0].eager(key, _digest(tasks[i].key_source))
        draws, fills, bufs = [], [], []
        for i, r in enumerate(recipes):
            if isinstance(r, _chunked.Fill):
                with _leaf_errors(tasks[i]):
                    bufs.append(_chunked.fill(r.value, tasks[i].shape))
                fills.append(i)
            elif r is not None:
                draws.append(i)
        for i, leaf in zip(fills, jax.device_put(bufs), strict=True):  # one call for all
            results[i] = leaf
            bar.advance(_nbytes(tasks[i]))

        def done(j: int, leaf: jax.Array) -> None:
            results[draws[j]] = leaf
            bar.advance(_nbytes(tasks[draws[j]]))

        keys = _leaf_key_data(data, [tasks[i] for i in draws]) if draws else []
        jobs = [(k, recipes[i], tasks[i].shape, np.dtype(tasks[i].dtype))
                for k, i in zip(keys, draws, strict=True)]
        _chunked.draw_leaves(jobs, done, lambda j: _leaf_errors(tasks[draws[j]]))
        for i in kernel_leaves:
            with _leaf_errors(tasks[i]):
                jax.block_until_ready(results[i])
            bar.advance(_nbytes(tasks[i]))
    return results


def kernel_count(tasks: Sequence[LeafTask]) -> int:
    """How many kernels an eager call with ``tasks`` compiles in a fresh process.

    One per distinct ``(init, shape, dtype, sharding)`` among the leaves that need a per-shape
    kernel, plus one per ``(sampler family, chunk size, dtype)`` used by the others; zeros and
    ones need none. The count does not grow with the number of leaves, nor (for the standard
    samplers) with the number of distinct shapes.
    """
    fast = _random._wanted() and jax.default_backend() == "cpu"
    chunk, kinds = set(), set()
    for t in tasks:
        r = _chunked.recipe(t.init, t.shape, t.dtype) if fast and t.sharding is None else None
        if isinstance(r, _chunked.Draw):
            dtype = np.dtype(t.dtype)
            chunk.update((r.family, size, dtype) for size, *_ in _chunked.chunks(
                math.prod(t.shape)))
        elif r is None and (k := _kind(t)) is not None:
            kinds.add(k)
    return len(chunk) + len(kinds)
