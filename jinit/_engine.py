"""Executes leaf initializers: the single place where the compilation strategy is decided.

Tree initializers resolve their rules into a list of :class:`LeafTask` and call
:func:`init_leaves`. Values are the contract (DESIGN decision 11): for a given root key,
every strategy returns arrays bit-identical to ``task.init(leaf_key(key, task.path),
task.shape, task.dtype)``, eagerly, under ``jax.jit``, ``jax.vmap`` and with shardings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax

from jinit._paths import leaf_key
from jinit._typing import PRNGKey


@dataclasses.dataclass(frozen=True)
class LeafTask:
    """One leaf to initialize: its path string, initializer, shape, dtype and sharding."""

    path: str
    init: Any  # an InitFn
    shape: tuple[int, ...]
    dtype: Any
    sharding: Any = None  # a jax.sharding.Sharding, or None


def _run(key: PRNGKey, task: LeafTask) -> jax.Array:
    return task.init(leaf_key(key, task.path), task.shape, task.dtype)


def init_leaves(key: PRNGKey, tasks: Sequence[LeafTask]) -> list[jax.Array]:
    """Returns the value of every task, in order.

    Inside a trace (the caller is under ``jit``/``vmap``/``eval_shape``) the leaves are traced
    inline. Eagerly, with any shardings, everything runs as one jitted program with those
    ``out_shardings`` so each device materializes only its shard.
    """
    tasks = list(tasks)
    if isinstance(key, jax.core.Tracer):
        return [_run(key, t) for t in tasks]
    shardings = [t.sharding for t in tasks]
    fn = jax.jit(lambda k: [_run(k, t) for t in tasks],
                 out_shardings=shardings if any(s is not None for s in shardings) else None)
    return fn(key)
