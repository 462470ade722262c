"""``python -m benchmarks [--quick] [--only SECTION ...] [--out FILE]``: run the suite.

Sections: warm (whole-model init), cold (fresh-process time-to-params), profile (where
warm time goes: the sampler's compute floor, memory passes, cores), rng (samplers and
orthogonal), scaling (compile vs leaf count), sharded (8 simulated devices), export (per-leaf
export cost, ``benchmarks/export.py``). ``--quick`` runs warm and cold on the 43M GPT-like tree
with few rounds (well under 90 s on an idle 2-core machine) and ends with the goal ratios at a
glance; the default is the full suite (gpt43m, gpt110m, gpt412m, small models).

Every ratio is measured within one run (round-robin or paired rounds), so it stays meaningful
on a busy machine; absolute seconds do not. The load average is printed with each table.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
import time

SECTIONS = ("warm", "cold", "profile", "rng", "scaling", "sharded", "export")
QUICK_SECTIONS = ("warm", "cold")


def _export(quick: bool) -> list[str]:
    """benchmarks/export.py (owned by the interop helper): captured as a code block."""
    try:
        export = importlib.import_module("benchmarks.export")
    except ImportError as e:
        return [f"export: not available ({e})"]
    buf, old = io.StringIO(), sys.stdout
    sys.stdout = buf
    try:
        export.main(quick)
    finally:
        sys.stdout = old
    text = buf.getvalue().rstrip()
    print(text, "\n", flush=True)
    return ["**Export cost per leaf** (benchmarks/export.py)\n\n```\n" + text + "\n```"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small models, few rounds")
    p.add_argument("--only", nargs="+", choices=SECTIONS,
                   help="sections to run (default: all; with --quick: warm cold)")
    p.add_argument("--out", help="also write the markdown tables to this file")
    args = p.parse_args(argv)
    if args.only is None:
        args.only = list(QUICK_SECTIONS if args.quick else SECTIONS)
    os.environ.setdefault("JINIT_PROGRESS", "0")
    from benchmarks import _harness as h

    t0 = time.perf_counter()
    head = f"Machine: {h.machine()}. Mode: {'quick' if args.quick else 'full'}."
    print(head, "\n", flush=True)
    parts = [head]
    spent = []
    for name in args.only:
        t1 = time.perf_counter()
        if name == "export":
            parts += _export(args.quick)
        else:
            parts += importlib.import_module(f"benchmarks.{name}").main(args.quick)
        spent.append(f"{name} {time.perf_counter() - t1:.0f} s")
    parts.append(f"Suite time: {time.perf_counter() - t0:.0f} s ({', '.join(spent)}); load "
                 f"average at the end {h.load_average()}.")
    if h.GLANCE:
        parts.append("**At a glance** (same-run ratios)\n\n" + "\n".join(
            f"- {line}" for line in h.GLANCE))
    print("\n\n".join(parts[-2:]) if h.GLANCE else parts[-1])
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
