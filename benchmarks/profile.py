"""Where warm init time goes: the sampler's compute floor, memory passes, cores, per leaf.

For the GPT-like tree it measures, in one run (round-robin, medians):

* the compute floor of each sampler: its kernel, compiled as the warm tier compiles a leaf's,
  filling ``_chunked.BIG``-element leaves back to back, results dropped (no host copy, no
  fresh leaf memory), in GB/s of float32 output; ``bits`` is the Threefry hash alone;
* the memory passes: a host ``memset`` of the tree's bytes into fresh buffers, and the copy
  of finished chunks into leaf buffers;
* the whole tree through jinit, and the sum of its leaves' element counts divided by each
  family's floor: the time the tree would take at the kernel's speed, so the distance of the
  real tree to the limit is one number;
* the cores: process CPU seconds per wall second during the tree's init.

Run: ``python -m benchmarks.profile [--model gpt43m]``.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import jinit
from benchmarks import _harness as h
from benchmarks import models as m
from jinit import _chunked, _random, _threefry
from jinit._engine import LeafTask


def _compiled(fn: Callable) -> Callable:
    """``fn`` jitted with the compile options of jinit's own sampler kernels."""
    return jax.jit(fn, compiler_options=_random.kernel_options())


def _stream(kern: Callable, keys: list[Any]) -> None:
    """Runs ``kern`` on every key, at most ``_chunked.WINDOW`` in flight, dropping each result
    once done: its memory is reused by the next, so this measures arithmetic, not page faults."""
    pending: collections.deque = collections.deque()
    for k in keys:
        pending.append(kern(k))
        if len(pending) > _chunked.WINDOW:
            pending.popleft().block_until_ready()
    jax.block_until_ready(list(pending))


def floors(total: int) -> dict[str, Callable[[], Any]]:
    """Each sampler's kernel producing ``total`` elements in leaves of ``_chunked.BIG``, back to
    back, results dropped (the compute floor, without fresh memory); ``bits`` is the hash."""
    size = _chunked.BIG
    keys = [jax.random.key(i) for i in range(max(1, total // size))]
    inits = {"uniform": jinit.uniform(0.5), "normal": jinit.normal(0.02),
             "truncated_normal": jinit.truncated_normal(0.05)}
    fns: dict[str, Callable] = {
        "bits (Threefry hash alone)":
            lambda k: _threefry.random_bits(jax.random.key_data(k), 32, (size,)),
        **{name: (lambda k, i=init: i(k, (size,), np.float32)) for name, init in inits.items()}}
    kernels = {name: _compiled(fn) for name, fn in fns.items()}
    return {name: (lambda kern=kern: _stream(kern, keys)) for name, kern in kernels.items()}


def tree_parts(model: Any) -> tuple[list[LeafTask], dict[str, int]]:
    """The jinit tasks of ``model`` and the element count per sampler family."""
    spec = m.spec(model)
    plan = m.jinit_init().plan(spec)
    tasks = [LeafTask(p.path, p.init, p.shape, p.dtype) for p in plan.values()]
    per_family: dict[str, int] = {}
    for t in tasks:
        r = _chunked.recipe(t.init, t.shape, t.dtype)
        name = "fill" if not isinstance(r, _chunked.Draw) else (
            "truncated_normal" if np.isfinite(r.params[3]) else r.family)
        per_family[name] = per_family.get(name, 0) + math.prod(t.shape)
    return tasks, per_family


def run(model: Any, rounds: int = 5) -> str:
    spec = m.spec(model)
    nbytes = m.nbytes(spec)
    tasks, per_family = tree_parts(model)
    tree_init = m.jinit_init()
    key = jax.random.key(0)
    draws = sum(v for k, v in per_family.items() if k != "fill")

    def host_memset():
        return [np.full(math.prod(t.shape), 1.0, np.float32) for t in tasks]

    chunk = np.ones(_chunked.BIG, np.float32)

    def copy_pass():
        dst = np.empty(draws, np.float32)
        for o in range(0, draws - chunk.size + 1, chunk.size):
            dst[o:o + chunk.size] = chunk
        return None

    cases = {**floors(draws), "host memset of the tree (fresh buffers)": host_memset,
             "copy of chunks into leaf buffers (the extra pass)": copy_pass,
             "jinit tree init (eager)": lambda: tree_init(key, spec)}
    t = h.round_robin(cases, rounds)
    cpu0, w0 = os.times(), time.perf_counter()
    h.block(tree_init(key, spec))
    wall = time.perf_counter() - w0
    cpu1 = os.times()
    cores = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall
    kernel = (cpu1.system - cpu0.system) / wall
    rows = []
    floor_time = 0.0
    for name, timing in t.items():
        elems = nbytes // 4 if name.startswith(("host", "jinit")) else draws
        gbs = elems * 4 / timing.median / 1e9
        rows.append((name, h.fmt_s(timing), f"{gbs:.2f}"))
        if name in per_family:
            floor_time += per_family[name] / (draws / timing.median)
    tree = t["jinit tree init (eager)"].median
    mix = ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in sorted(per_family.items()))
    title = (f"**Profile, {model.name}** ({nbytes / 1e6:.0f} MB f32; elements per family: "
             f"{mix}; median of {rounds} round-robin rounds; bg {h.bg_of(t):.2f} cores; "
             f"load average {h.load_average()})")
    table = h.md_table(("case", "seconds (min-max)", "GB/s of float32 output"), rows)
    summary = (f"Tree at the kernels' speed (sum over families of elements / floor): "
               f"{floor_time:.3f} s; the tree takes {tree:.3f} s, {tree / floor_time:.2f}x its "
               f"compute floor. Process CPU during one tree init: {cores:.2f} cores busy, "
               f"{kernel:.2f} of them in the kernel (first touch of the leaves' fresh pages).")
    return f"{title}\n\n{table}\n\n{summary}"


def main(quick: bool = False) -> list[str]:
    text = run(m.GPT40M, 3 if quick else 5)
    print(text, "\n", flush=True)
    return [text]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=m.GPT40M.name, choices=sorted(m.MODELS))
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    os.environ.setdefault("JINIT_PROGRESS", "0")
    print(run(m.MODELS[a.model], a.rounds))
