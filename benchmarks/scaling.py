"""Trace + compile + first run vs leaf count (100 to 1,000 leaves), and shape-only init.

Trees of N small leaves with a fixed set of kinds (4 kernel shapes x lecun_normal, biases as
zeros): jinit's eager path compiles once per kind, so its cold cost grows only by the
per-leaf dispatch; a whole-tree ``jit`` (jinit under ``jax.jit``, or ``jax.nn.initializers``)
compiles one program whose size grows with N. Every measurement uses fresh ``jit`` objects
and an empty jinit kernel cache (the persistent compilation cache is off here).

Run alone: ``python -m benchmarks.scaling [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import _harness as h
from benchmarks import models as m
from jinit import _engine

WIDTHS = (64, 96, 128, 160)
WHOLE_TREE_MAX = 300


def tree(n_leaves: int) -> dict:
    out = {}
    for i in range(n_leaves // 2):
        w = WIDTHS[i % len(WIDTHS)]
        out[f"layer_{i}"] = {"kernel": jax.ShapeDtypeStruct((64, w), jnp.float32),
                             "bias": jax.ShapeDtypeStruct((w,), jnp.float32)}
    return out


def _cold(fn: Callable[[], Any]) -> float:
    time.sleep(h.GAP_S)
    t0 = time.perf_counter()
    h.block(fn())
    return time.perf_counter() - t0


def measure(n: int, whole_tree_max: int = WHOLE_TREE_MAX) -> dict[str, float]:
    spec, key = tree(n), jax.random.key(0)
    tree_init = m.jinit_init()
    _engine.clear_cache()
    res = {"jinit": _cold(lambda: tree_init(key, spec))}
    if n <= whole_tree_max:  # one XLA program for the whole tree: minutes beyond this
        _engine.clear_cache()
        res["jinit_jit"] = _cold(lambda: jax.jit(lambda k: tree_init(k, spec))(key))
        res["jax_nn"] = _cold(lambda: jax.jit(m.jax_nn_init(spec))(key))
    _engine.clear_cache()
    res["eval_shape"] = _cold(lambda: jax.eval_shape(lambda k: tree_init(k, spec), key))
    return res


def main(quick: bool = False) -> list[str]:
    sizes = (50, 150) if quick else (100, 300, 1000)
    results = {n: measure(n, 0 if quick else WHOLE_TREE_MAX) for n in sizes}
    labels = {"jinit": "jinit rules, eager",
              "jinit_jit": "jinit rules under jax.jit (one program)",
              "jax_nn": "jax.nn.initializers, whole-tree jit",
              "eval_shape": "jax.eval_shape(jinit rules) (shape only)"}
    rows = []
    for case, label in labels.items():
        done = [n for n in sizes if case in results[n]]
        if not done:
            continue
        cells = [f"{results[n][case]:.2f} s ({results[n][case] / n * 1e3:.2f} ms/leaf)"
                 if case in results[n] else "not run (> 1 min)" for n in sizes]
        growth = (results[done[-1]][case] / results[done[0]][case]) / (done[-1] / done[0])
        rows.append((label, *cells, f"{growth:.2f} ({done[0]}->{done[-1]})"))
    text = ("**Cold trace + compile + run vs leaf count** (small leaves, 8 distinct shapes; fresh jit "
            "objects, empty kernel cache; last column: time growth / leaf-count growth, "
            "<= 1 means at most linear)\n\n"
            + h.md_table(("case", *(f"{n} leaves" for n in sizes), "growth vs linear"), rows))
    print(text, "\n", flush=True)
    return [text]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    main(p.parse_args().quick)
