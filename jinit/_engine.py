"""Executes leaf initializers: the single place where the compilation strategy is decided.

Tree initializers resolve their rules into a list of :class:`LeafTask` and call
:func:`init_leaves`. Values are the contract (DESIGN decision 11): for a given root key,
every strategy returns arrays bit-identical to ``task.init(leaf_key(key, task.key_source),
task.shape, task.dtype)``, eagerly, under ``jax.jit``, ``jax.vmap`` and with shardings.

Strategy:

* **Under a trace** (the key is a tracer: ``jit``/``vmap``/``eval_shape``) every leaf is traced
  inline into the caller's program.
* **Eagerly**, each distinct ``(initializer, shape, dtype, sharding)`` gets one compiled
  kernel ``(root_key, path_digest) -> leaf`` that derives the leaf key itself and is reused by
  every leaf of that kind, in this call and later ones. The number of XLA compilations is the
  number of distinct kinds, independent of the leaf count (a GPT-2 tree of 148 leaves has
  10). (Compiling them from threads was measured: XLA's CPU compiler gains nothing.) A kernel
  with a sharding writes each shard on its own device and contains no collectives (the fused Threefry
  generator of :mod:`jinit._random` is partitionable). Initializers that cannot be hashed
  (rare: jinit initializers are frozen dataclasses, and plain functions hash by identity) run
  together in one jitted program.

With JAX's persistent compilation cache the kernels also survive the process::

    jax.config.update("jax_compilation_cache_dir", "~/.cache/jax")
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import numpy as np

from jinit import _progress
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


#: Most kernels kept; the least recently used beyond this are dropped.
CACHE_SIZE = 1024
_cache: collections.OrderedDict[Hashable, Callable] = collections.OrderedDict()
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
        return _kernel(kind)[0](key, _digest(task.key_source))
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


def _make_kernel(kind: tuple) -> Callable[[PRNGKey, np.ndarray], jax.Array]:
    init, shape, dtype, sharding = kind
    rep = _replicated(sharding)
    return jax.jit(
        functools.partial(_leaf, init, shape=shape, dtype=dtype),
        in_shardings=None if rep is None else (rep, rep),
        out_shardings=sharding,
    )


def _kernel(kind: Hashable) -> tuple[Callable, bool]:
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


def clear_cache() -> None:
    """Drops every cached kernel (the persistent compilation cache, if any, is kept)."""
    with _lock:
        _cache.clear()


def cache_info() -> dict[str, int]:
    """``{"cached": kernels in the cache, "created": kernels created in this process}``."""
    with _lock:
        return {"cached": len(_cache), "created": _stats["kernels"]}


def _run_unhashable(key: PRNGKey, tasks: Sequence[LeafTask]) -> list[jax.Array]:
    shardings = [t.sharding for t in tasks]
    fn = jax.jit(lambda k: [_run_inline(k, t) for t in tasks],
                 out_shardings=shardings if any(s is not None for s in shardings) else None)
    return fn(key)


def _nbytes(task: LeafTask) -> int:
    return math.prod(task.shape) * np.dtype(task.dtype).itemsize


def init_leaves(key: PRNGKey, tasks: Sequence[LeafTask], *,
                progress: bool | None = None) -> list[jax.Array]:
    """Returns the value of every task, in order.

    Inside a trace (the key is a tracer under ``jit``/``vmap``/``eval_shape``) the leaves are
    traced inline. Eagerly, each distinct ``(init, shape, dtype, sharding)`` runs one cached
    jitted kernel (see the module docstring); with a sharding, each device materializes only its shard.

    Args:
      key: the root PRNG key (typed or raw ``uint32[2]``).
      tasks: the leaves to compute.
      progress: show a progress bar (``None``: automatic, for large trees on a terminal; see
        :func:`jinit._progress.bar`).

    Returns:
      One array per task, bit-identical to ``task.init(leaf_key(key, task.key_source), task.shape,
      task.dtype)``.
    """
    tasks = list(tasks)
    if isinstance(key, jax.core.Tracer):
        return [_run_inline(key, t) for t in tasks]
    kinds = [_kind(t) for t in tasks]
    results: list[Any] = [None] * len(tasks)
    odd = [i for i, k in enumerate(kinds) if k is None]
    if odd:
        for i, v in zip(odd, _run_unhashable(key, [tasks[i] for i in odd]), strict=False):
            results[i] = v
    todo = [i for i, k in enumerate(kinds) if k is not None]
    if not todo:
        return results
    with _progress.bar(sum(_nbytes(tasks[i]) for i in todo), len(todo), progress) as bar:
        for i in todo:
            results[i] = _kernel(kinds[i])[0](key, _digest(tasks[i].key_source))
            bar.advance(_nbytes(tasks[i]), results[i])
    return results


def kernel_count(tasks: Sequence[LeafTask]) -> int:
    """How many distinct kernels ``tasks`` need: one per ``(init, shape, dtype, sharding)``."""
    return len({k for k in map(_kind, tasks) if k is not None})
