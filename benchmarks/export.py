"""Export cost per leaf: jinit.interop move/share/copy vs the naive numpy route.

Run: ``python -m benchmarks.export [--quick]``. Prints one table; ``rows(quick)`` returns the
measurements as dicts for other tools (``make bench``). Claims checked here (issue 4,
Performance): move/share cost per leaf is constant in the leaf size and copies zero bytes;
copy mode is compared with ``torch.tensor(np.asarray(x))``. ``--quick`` measures torch only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SIZES = {"10 KB": 2_560, "100 MB": 26_214_400}  # float32 elements per leaf
SINGLE_CALLS = {"10 KB": 20, "100 MB": 3}  # single-leaf calls; the best one is reported
TREE_LEAVES = {"10 KB": 200, "100 MB": 2}  # whole-tree calls (copy mode vs naive baseline)
TREE_REPEATS = 3


def _leaf(size: int) -> jax.Array:
    return jax.block_until_ready(jnp.full((size,), 1.5, jnp.float32))


def _single_leaf_rows(name: str, adapter: Any) -> list[dict]:
    """Per-leaf cost of ``export_array`` (+ ``x.delete()`` in move mode), best of N calls."""
    adapter.export_array(_leaf(16), "move")  # warm up: import the framework
    rows = []
    for label, size in SIZES.items():
        for mode in ("move", "share"):
            best, copied, zero = float("inf"), 0, True
            for _ in range(SINGLE_CALLS[label]):
                x = _leaf(size)
                t0 = time.perf_counter()
                t, rec = adapter.export_array(x, mode)
                if mode == "move":
                    x.delete()
                best = min(best, time.perf_counter() - t0)
                copied, zero = copied + rec.bytes_copied, zero and rec.zero_copy
                del t, x
            rows.append(dict(framework=name, path=f"export_array {mode}", leaf=label, leaves=1,
                             us_per_leaf=best * 1e6, bytes_copied=copied, zero_copy=zero))  # fmt: skip
    return rows


def _raw_dlpack_rows(torch: Any) -> list[dict]:
    """Reference: the bare ``torch.utils.dlpack.from_dlpack(x.__dlpack__())`` call, no checks."""
    rows = []
    for label, size in SIZES.items():
        best = float("inf")
        for _ in range(SINGLE_CALLS[label]):
            x = _leaf(size)
            t0 = time.perf_counter()
            t = torch.utils.dlpack.from_dlpack(x.__dlpack__())
            best = min(best, time.perf_counter() - t0)
            del t, x
        rows.append(dict(framework="torch", path="raw from_dlpack(x.__dlpack__())", leaf=label,
                         leaves=1, us_per_leaf=best * 1e6, bytes_copied=0, zero_copy=True))  # fmt: skip
    return rows


def _tree_rows(label: str, fn: Callable[[dict], Any], path: str) -> dict:
    """Best of TREE_REPEATS whole-tree calls on fresh trees (move mode deletes them)."""
    n, best, out = TREE_LEAVES[label], float("inf"), None
    for _ in range(TREE_REPEATS):
        tree = {f"l{i}": _leaf(SIZES[label]) for i in range(n)}
        out = None  # free the previous output before timing
        t0 = time.perf_counter()
        out = fn(tree)
        best = min(best, time.perf_counter() - t0)
    if isinstance(out, tuple):  # (tree, report)
        copied, zero = out[1].bytes_copied, out[1].all_zero_copy
    else:  # the naive baseline: every leaf copied
        copied, zero = sum(v.numel() * v.element_size() for v in out.values()), False
    return dict(framework="torch", path=path, leaf=label, leaves=n, us_per_leaf=best / n * 1e6,
                bytes_copied=copied, zero_copy=zero)  # fmt: skip


def rows(quick: bool = False) -> list[dict]:
    """Measures and returns one dict per (framework, path, leaf size)."""
    import torch
    from jinit.interop import _mxnet, _tensorflow, _torch, to_torch

    out = _single_leaf_rows("torch", _torch) + _raw_dlpack_rows(torch)
    for label in SIZES:
        for mode in ("move", "share", "copy"):
            out.append(_tree_rows(label, lambda t, m=mode: to_torch(t, mode=m, report=True),
                                  f"to_torch {mode}"))  # fmt: skip
        out.append(_tree_rows(label, lambda t: {k: torch.tensor(np.asarray(v))
                                                for k, v in t.items()},
                              "naive torch.tensor(np.asarray(x))"))  # fmt: skip
    if not quick:
        out += _single_leaf_rows("tensorflow", _tensorflow)
        out += _single_leaf_rows("mxnet", _mxnet)
    return out


def table(results: list[dict]) -> str:
    """A plain-text table of ``rows()`` output, with copy mode vs the naive baseline."""
    naive = {r["leaf"]: r["us_per_leaf"] for r in results if r["path"].startswith("naive")}
    head = ("framework", "path", "leaf", "leaves", "us/leaf", "bytes copied", "zero-copy",
            "vs naive")  # fmt: skip
    lines = [head]
    for r in results:
        ratio = naive.get(r["leaf"]) if r["path"].startswith("to_torch") else None
        lines.append((r["framework"], r["path"], r["leaf"], str(r["leaves"]),
                      f"{r['us_per_leaf']:.1f}", f"{r['bytes_copied']:,}", str(r["zero_copy"]),
                      f"{ratio / r['us_per_leaf']:.1f}x" if ratio else ""))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(line, widths, strict=True)))
                     for line in lines)  # fmt: skip


def main(quick: bool = False) -> list[dict]:
    """Runs the benchmark, prints the table and returns the rows."""
    results = rows(quick)
    print(f"Export cost per leaf (float32; CPU: {jax.devices()[0].device_kind})")
    print(table(results))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="torch only")
    main(parser.parse_args().quick)
