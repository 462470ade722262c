"""Samples a framework's *layers* and the jinit-initialized Flax equivalent, for the defaults tests.

``ours(tree_init, spec, *paths)``: ``reps`` independent initializations of the Flax spec (one
jitted ``vmap`` over keys), the values of ``paths`` pooled until >= ``N_MIN`` values.
``theirs(make)``: calls ``make(i)`` (build a fresh framework layer, return the parameter's
values) until >= ``N_MIN`` values. Both feed ``_stats.check_same_distribution`` (KS two-sample
p > 1e-4 at >= 100k values each, std within 6 standard errors, exact bounds).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import numpy as np
from _stats import N_MIN

from jinit._paths import flatten, leaf_key


def leaves_at(tree, *paths: str) -> list[np.ndarray]:
    """The leaves of ``tree`` at ``paths`` (the "/"-joined paths selectors see)."""
    flat = flatten(tree)
    index = dict(zip(flat.paths, range(len(flat.paths)), strict=True))
    missing = [p for p in paths if p not in index]
    assert not missing, f"{missing} not in {flat.paths}"
    return [np.asarray(flat.leaves[index[p]], np.float64) for p in paths]


def ours(tree_init, spec, *groups: str | tuple[str, ...], n_min: int = N_MIN, seed: int = 0):
    """Pooled values of each group of paths, over enough keys for ``n_min`` values per group.

    Each leaf is what ``tree_init(key, spec)`` gives it: the initializer its plan resolved
    (``tree_init.plan(spec)``), called with the leaf's key, exactly as the engine calls it;
    sampling only the leaves asked for keeps small biases of big layers cheap. One jitted
    program computes every group. Returns one array per group (an array for one group).
    """
    groups = [(g,) if isinstance(g, str) else tuple(g) for g in groups]
    plan = tree_init.plan(spec)
    counts = [math.ceil(n_min / sum(math.prod(plan[p].shape) for p in g)) for g in groups]

    def one(key, g):
        return [plan[p].init(leaf_key(key, p), plan[p].shape, plan[p].dtype) for p in g]

    def run(key):
        return [jax.lax.map(lambda k, g=g: one(k, g), jax.random.split(jax.random.fold_in(key, i), n))
                for i, (g, n) in enumerate(zip(groups, counts, strict=True))]

    out = jax.jit(run)(jax.random.key(seed))
    pooled = [np.concatenate([np.asarray(v, np.float64).ravel() for v in vals]) for vals in out]
    return pooled[0] if len(pooled) == 1 else pooled


def theirs(make: Callable[[int], np.ndarray | list[np.ndarray]], n_min: int = N_MIN
           ) -> np.ndarray:
    """Pooled framework values: ``make(i)`` for i = 0, 1, ... until ``n_min`` values."""
    chunks, total, i = [], 0, 0
    while total < n_min:
        got = make(i)
        for x in got if isinstance(got, list) else [got]:
            x = np.asarray(x, np.float64).ravel()
            chunks.append(x)
            total += x.size
        i += 1
    return np.concatenate(chunks)


def linen_spec(module, *shapes: tuple[int, ...], dtype=np.float32, collection: str = "params"):
    """The abstract variables of a linen module for inputs of ``shapes`` (nothing computed)."""
    inputs = [jax.ShapeDtypeStruct(s, np.int32 if dtype is int else dtype) for s in shapes]
    variables = jax.eval_shape(module.init, jax.random.key(0), *inputs)
    return variables if collection is None else variables[collection]


def nnx_spec(factory):
    """The abstract ``nnx.State`` of ``factory()`` (nothing computed)."""
    from flax import nnx

    return nnx.state(nnx.eval_shape(factory))
