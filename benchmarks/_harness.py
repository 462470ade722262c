"""Timing method shared by every benchmark.

* cases of one table run round-robin (A B C, A B C, ...) after one warm-up call each;
* a 0.2 s idle gap before each timed call lets the previous case's spinning thread pools
  (OpenMP, OpenBLAS, Eigen) sleep;
* each call is timed with ``perf_counter`` around the call and ``block_until_ready``;
* medians, min and max are reported, and ratios are the median of the per-round ratios;
* ``bg`` is the other processes' busy cores during the calls (from ``/proc/stat``): on a
  shared machine only same-run ratios are meaningful.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

GAP_S = 0.2
#: One-line results against the goals, printed together at the end of ``python -m benchmarks``.
GLANCE: list[str] = []


def goal_line(what: str, ratio: float, goal: float, unit: str = "x faster",
              higher_is_better: bool = True) -> str:
    """Records and returns ``what: 4.20x faster (goal >= 4x: met)``."""
    met = ratio >= goal if higher_is_better else ratio <= goal
    sign = ">=" if higher_is_better else "<="
    line = f"{what}: {ratio:.2f}{unit} (goal {sign} {goal:g}{unit.split()[0]}: " + (
        "met)" if met else f"missed by {abs(goal / ratio - 1) * 100:.0f}%)")
    GLANCE.append(line)
    return line


def load_average() -> str:
    """The 1/5/15-minute load averages, e.g. ``"0.12 0.30 0.25"``."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _busy_jiffies() -> float | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    vals = list(map(int, fields))
    return float(sum(vals) - vals[3] - (vals[4] if len(vals) > 4 else 0))  # minus idle, iowait


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def block(x: Any) -> Any:
    """Waits for JAX arrays; leaves torch/other objects alone."""
    leaves = [v for v in jax.tree.leaves(x) if isinstance(v, jax.Array)]
    if leaves:
        jax.block_until_ready(leaves)
    return x


@dataclasses.dataclass
class Timing:
    name: str
    times: list[float] = dataclasses.field(default_factory=list)
    bg: list[float] = dataclasses.field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def timed_call(fn: Callable[[], Any]) -> tuple[float, float]:
    """One call after the idle gap: ``(seconds, background busy cores)``."""
    time.sleep(GAP_S)
    hz = os.sysconf("SC_CLK_TCK")
    b0, c0 = _busy_jiffies(), _own_cpu_s()
    t0 = time.perf_counter()
    out = block(fn())
    dt = time.perf_counter() - t0
    b1, c1 = _busy_jiffies(), _own_cpu_s()
    del out
    bg = float("nan") if b0 is None else max(0.0, ((b1 - b0) / hz - (c1 - c0)) / dt)
    return dt, bg


#: Untimed calls per case before the timed rounds. Two: jinit's second call of a kind
#: compiles that kind's per-shape kernel (the engine's second tier), a one-time cost like
#: Flax's first ``jit`` call, so the timed rounds all see the steady state.
WARMUP_CALLS = 2


def round_robin(cases: dict[str, Callable[[], Any]], rounds: int) -> dict[str, Timing]:
    """Warms every case (``WARMUP_CALLS`` calls), then times ``rounds`` round-robin rounds."""
    out = {name: Timing(name) for name in cases}
    for fn in cases.values():
        for _ in range(WARMUP_CALLS):
            block(fn())
            gc.collect()
    for _ in range(rounds):
        for name, fn in cases.items():
            dt, bg = timed_call(fn)
            out[name].times.append(dt)
            out[name].bg.append(bg)
            gc.collect()
    return out


def ratio(a: Timing, b: Timing) -> float:
    """Median over rounds of ``b / a``: how many times faster ``a`` is than ``b``."""
    return statistics.median(y / x for x, y in zip(a.times, b.times, strict=False))


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """Peak RSS of this process image (``VmHWM``; ``ru_maxrss`` survives ``exec`` on Linux,
    so a child would report its parent's peak)."""
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    rss = _status_mib("VmRSS")
    return float("nan") if rss is None else rss


def machine() -> str:
    """One line describing this machine and the software versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = [f"jax {jax.__version__}"]
    for mod in ("flax", "torch"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return (f"{os.cpu_count()} CPU ({cpu}), {mem:.1f} GiB RAM, backend "
            f"{jax.default_backend()}; python {platform.python_version()}, "
            + ", ".join(versions))


def md_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt_s(t: Timing) -> str:
    return f"{t.median:.3f} ({min(t.times):.3f}-{max(t.times):.3f})"


def bg_of(timings: dict[str, Timing]) -> float:
    vals = [b for t in timings.values() for b in t.bg if b == b]
    return statistics.median(vals) if vals else float("nan")
