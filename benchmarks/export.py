"""Export cost per leaf: jinit.interop move/share/copy vs raw DLPack and the naive numpy route.

Run: ``python -m benchmarks.export [--quick]``. Prints two tables; ``rows(quick)`` returns the
measurements as dicts for other tools (``make bench``). Claims checked here: move/share cost
per leaf is constant in the leaf size
and copies zero bytes, and is compared with the raw ``from_dlpack(x.__dlpack__())`` call of the
same framework measured in the same run; copy mode is compared with
``torch.tensor(np.asarray(x))``.

Method (a shared, noisy machine): the cases run interleaved, round-robin with the starting case
rotated each round, on fresh leaves made outside the timed region; ``us/leaf`` is the median over
rounds (min-max in brackets); ``x raw`` is the median over rounds of the per-round ratio to the
raw DLPack route of the same framework, which cancels most of the background load.

* Per leaf: one loop of single-leaf calls over 10 KB and 100 MB leaves alternating (``PAIRS``
  of each per round); at each position every case makes one call on its own fresh leaf and each
  call is timed on its own; ``x raw`` pairs each call with the raw call at the same position.
  Both sizes run in the same warm loop, so "100 MB / 10 KB" isolates the size dependence
  (B8: <= 1.5).
* Whole tree: one ``to_torch`` call on 200 x 10 KB or 2 x 100 MB leaves (report included), next
  to a loop of raw DLPack calls and the naive copy of the same tree.

``--quick`` measures torch only (< 30 s); the full run adds TensorFlow and MXNet (< 60 s).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SIZES = {"10 KB": 2_560, "100 MB": 26_214_400}  # float32 elements per leaf
PAIRS = {True: 3, False: 2}  # per-leaf loop: this many leaves of each size per sample, by quick
TREE_LEAVES = {"10 KB": 200, "100 MB": 2}  # leaves per whole-tree call
ROUNDS = {True: {"leaf": 7, "10 KB": 11, "100 MB": 3}, False: {"leaf": 7, "10 KB": 11, "100 MB": 5}}


@functools.cache
def _maker(sizes: tuple[int, ...]) -> Callable[[], list[jax.Array]]:
    """One jitted call making fresh float32 leaves of these sizes (fast on a busy machine)."""
    return jax.jit(lambda: [jnp.full((n,), 1.5, jnp.float32) for n in sizes])


def _fresh(*sizes: int) -> list[jax.Array]:
    return jax.block_until_ready(_maker(sizes)())


@dataclasses.dataclass
class Case:
    """One timed path. ``call(x)`` exports one leaf (per-leaf cases) or ``call(tree)`` a whole
    tree; ``check(out, ptrs)`` (untimed) returns ``(bytes_copied, zero_copy)``."""

    framework: str
    path: str
    call: Callable[[Any], Any]
    check: Callable[[list[Any], list[int]], tuple[int, bool]]
    ref: str  # the raw case this one is compared with ("x raw")
    times: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # size -> s/leaf
    copied: dict[str, int] = dataclasses.field(default_factory=dict)
    zero_copy: dict[str, bool] = dataclasses.field(default_factory=dict)

    def record(self, label: str, seconds: float, copied: int, zero: bool) -> None:
        self.times.setdefault(label, []).append(seconds)
        self.copied[label], self.zero_copy[label] = copied, zero


# --- what each case does and how its result is checked -------------------------------------
def _export(export_array: Callable, mode: str) -> Callable:
    """``export_array`` on one leaf, + ``x.delete()`` in move mode (as ``to_*`` does)."""

    def call(x):
        out = export_array(x, mode)
        if mode == "move":
            x.delete()
        return out

    return call


def _records(outs, ptrs):
    return sum(r.bytes_copied for _, r in outs), all(r.zero_copy for _, r in outs)


def _report(outs, ptrs):
    return outs[0][1].bytes_copied, outs[0][1].all_zero_copy


def _pointers(ptr: Callable, outs, ptrs):
    flat = [t for o in outs for t in (o.values() if isinstance(o, dict) else [o])]
    return 0, all(ptr(t) == p for t, p in zip(flat, ptrs, strict=True))


def _copied(outs, ptrs):
    flat = [t for o in outs for t in (o.values() if isinstance(o, dict) else [o])]
    return sum(t.numel() * t.element_size() for t in flat), False


def _tf_ptr(tf: Any, t: Any) -> int:
    from jinit.interop._dlpack import capsule_data_ptr

    return capsule_data_ptr(tf.experimental.dlpack.to_dlpack(t))


def _tree_of(call: Callable) -> Callable:
    return lambda tree: {k: call(x) for k, x in tree.items()}


# --- timing ---------------------------------------------------------------------------------
def _timed(fn: Callable, arg: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(arg)
    return out, time.perf_counter() - t0


def _rotated(cases: list[Case], r: int) -> list[Case]:
    return cases[r % len(cases):] + cases[:r % len(cases)]


def _measure_leaves(cases: list[Case], rounds: int, pairs: int) -> None:
    """Per-leaf samples: 10 KB and 100 MB leaves alternating; at each position every case makes
    one call (rotated order), each call timed on its own, so load spikes hit all cases alike."""
    labels = list(SIZES) * pairs
    for c in cases:  # warm-up: imports, first-call caches
        c.call(_fresh(16)[0])
    for r in range(rounds):
        order = _rotated(cases, r)
        warm = _fresh(*[16] * len(order))
        leaves = iter(_fresh(*(SIZES[lb] for lb in labels for _ in order)))
        calls: dict[int, list[tuple[str, int, Any, float]]] = {id(c): [] for c in order}
        gc.collect()
        gc.disable()
        for c, x in zip(order, warm, strict=True):  # untimed: the loop's first calls run cold
            c.call(x)
        for label in labels:
            for c in order:
                x = next(leaves)
                ptr = x.unsafe_buffer_pointer()
                out, dt = _timed(c.call, x)
                calls[id(c)].append((label, ptr, out, dt))
        gc.enable()
        for c in order:
            for label in SIZES:
                mine = [call for call in calls[id(c)] if call[0] == label]
                copied, zero = c.check([o for _, _, o, _ in mine], [p for _, p, _, _ in mine])
                for _, _, _, dt in mine:
                    c.record(label, dt, copied, zero)
        del calls, leaves


def _measure_trees(cases: list[Case], label: str, rounds: int) -> None:
    """Whole-tree samples: one call on a fresh ``{layer_i: leaf}`` tree."""
    n = TREE_LEAVES[label]
    for c in cases:
        c.call({"w": _fresh(16)[0]})
    for r in range(rounds):
        for c in _rotated(cases, r):
            tree = {f"layer_{i}": x for i, x in enumerate(_fresh(*[SIZES[label]] * n))}
            ptrs = [x.unsafe_buffer_pointer() for x in tree.values()]
            gc.collect()
            gc.disable()
            out, dt = _timed(c.call, tree)
            gc.enable()
            c.record(label, dt / n, *c.check([out], ptrs))
            del out, tree


# --- cases ----------------------------------------------------------------------------------
def _framework(name: str, module: Any, from_capsule: Callable, ptr: Callable,
               modes: tuple[str, ...]) -> list[Case]:  # fmt: skip
    """Per-leaf cases of one framework: its raw DLPack route, then ``export_array`` per mode."""
    raw = Case(name, "raw from_dlpack(x.__dlpack__())", lambda x: from_capsule(x.__dlpack__()),
               functools.partial(_pointers, ptr), ref=name)  # fmt: skip
    return [raw] + [Case(name, f"export_array {m}", _export(module.export_array, m), _records,
                         ref=name) for m in modes]  # fmt: skip


def _torch_trees(torch: Any) -> list[Case]:
    from jinit.interop import to_torch

    raw = Case("torch", "raw from_dlpack loop",
               _tree_of(lambda x: torch.utils.dlpack.from_dlpack(x.__dlpack__())),
               functools.partial(_pointers, lambda t: t.data_ptr()), ref="torch tree")  # fmt: skip
    naive = Case("torch", "naive torch.tensor(np.asarray(x))",
                 _tree_of(lambda x: torch.tensor(np.asarray(x))), _copied, ref="torch tree")  # fmt: skip
    jinit_cases = [Case("torch", f"to_torch {m}", functools.partial(to_torch, mode=m, report=True),
                        _report, ref="torch tree") for m in ("move", "share", "copy")]  # fmt: skip
    return [raw, *jinit_cases, naive]


def _rows(cases: list[Case], kind: str, naive: Case | None = None) -> list[dict]:
    by_ref = {c.ref: c for c in cases if c.path.startswith("raw")}
    out = []
    for c in cases:
        for label, times in c.times.items():
            raw = by_ref[c.ref].times[label]
            us = [t * 1e6 for t in times]
            vs_naive = float("nan")
            if naive is not None and c is not naive and "copy" in c.path:
                vs_naive = statistics.median(b / a for a, b in zip(times, naive.times[label],
                                                                   strict=True))  # fmt: skip
            out.append(dict(kind=kind, framework=c.framework, path=c.path, leaf=label,
                            us_per_leaf=statistics.median(us), us_min=min(us), us_max=max(us),
                            x_raw=statistics.median(a / b for a, b in zip(times, raw, strict=True)),
                            vs_naive=vs_naive, bytes_copied=c.copied[label],
                            zero_copy=c.zero_copy[label]))  # fmt: skip
    return out


def rows(quick: bool = False) -> list[dict]:
    """Measures and returns one dict per (kind, framework, path, leaf size)."""
    import torch

    from jinit.interop import _torch

    leaf_cases = _framework("torch", _torch, torch.utils.dlpack.from_dlpack,
                            lambda t: t.data_ptr(), ("move", "share"))  # fmt: skip
    if not quick:
        from jinit.interop import _mxnet, _tensorflow

        tf, mx = _tensorflow.import_tensorflow(), _mxnet.import_mxnet()
        leaf_cases += _framework("tensorflow", _tensorflow, tf.experimental.dlpack.from_dlpack,
                                 functools.partial(_tf_ptr, tf), ("move", "share"))  # fmt: skip
        leaf_cases += _framework("mxnet", _mxnet, mx.nd.from_dlpack, _mxnet.ADAPTER.data_ptr,
                                 ("move", "share"))  # fmt: skip
    gc.collect()
    gc.freeze()  # keeps the per-sample gc.collect() cheap (torch/TF/MXNet hold many objects)
    try:
        _measure_leaves(leaf_cases, ROUNDS[quick]["leaf"], PAIRS[quick])
        tree_cases = _torch_trees(torch)
        for label in SIZES:
            _measure_trees(tree_cases, label, ROUNDS[quick][label])
    finally:
        gc.unfreeze()
    return _rows(leaf_cases, "per leaf") + _rows(tree_cases, "tree", naive=tree_cases[-1])


def _flatness(results: list[dict]) -> list[str]:
    """us/leaf at 100 MB over 10 KB for each per-leaf path (B8: <= 1.5)."""
    by = {(r["framework"], r["path"], r["leaf"]): r["us_per_leaf"] for r in results
          if r["kind"] == "per leaf"}  # fmt: skip
    return [f"{fw} {path}: {by[(fw, path, '100 MB')] / us:.2f}"
            for (fw, path, leaf), us in by.items() if leaf == "10 KB"]  # fmt: skip


def table(results: list[dict]) -> str:
    """Plain-text tables of ``rows()`` output, plus the 100 MB / 10 KB size ratios."""
    head = ("framework", "path", "leaf", "us/leaf (min-max)", "x raw", "vs naive",
            "bytes copied", "zero-copy")  # fmt: skip
    parts = []
    for kind, title in (("per leaf", "Per leaf (single-leaf calls, 10 KB and 100 MB leaves "
                                     "alternating in one loop)"),
                        ("tree", f"Whole tree ({TREE_LEAVES['10 KB']} x 10 KB, "
                                 f"{TREE_LEAVES['100 MB']} x 100 MB; report=True)")):  # fmt: skip
        lines = [head]
        for r in (r for r in results if r["kind"] == kind):
            lines.append((r["framework"], r["path"], r["leaf"],
                          f"{r['us_per_leaf']:.1f} ({r['us_min']:.1f}-{r['us_max']:.1f})",
                          f"{r['x_raw']:.2f}",
                          "" if r["vs_naive"] != r["vs_naive"] else f"{r['vs_naive']:.2f}x",
                          f"{r['bytes_copied']:,}", str(r["zero_copy"])))  # fmt: skip
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        parts.append(title + "\n" + "\n".join(
            "  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                      for i, (c, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines))  # fmt: skip
    parts.append("100 MB / 10 KB us-per-leaf (size independence, B8 <= 1.5):\n  "
                 + "\n  ".join(_flatness(results)))  # fmt: skip
    return "\n\n".join(parts)


def main(quick: bool = False) -> list[dict]:
    """Runs the benchmark, prints the tables and returns the rows."""
    t0 = time.perf_counter()
    results = rows(quick)
    print(f"Export cost per leaf (float32, CPU: {jax.devices()[0].device_kind}). x raw: same-run "
          "ratio to the raw DLPack route; vs naive: times faster than the naive copy.\n")
    print(table(results))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="torch only")
    main(parser.parse_args().quick)
