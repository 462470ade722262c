"""The ``python -m jinit demo`` guided tour: an ordered list of sections.

A section is a function printing one part of the tour; it is named here by
``"module:function"`` so that its imports (Flax, a framework) happen only when it runs.
Later parts of the tour add one :class:`Section` line to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import time
from collections.abc import Callable, Sequence

from jinit._cli import UsageError, did_you_mean


@dataclasses.dataclass(frozen=True)
class Section:
    """One part of the tour: a short name (for ``--section``), a title and its function."""

    name: str
    title: str
    target: str  # "package.module:function"; the function takes no arguments and prints

    def load(self) -> Callable[[], None]:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


#: The tour, in order.
SECTIONS: list[Section] = [
    Section("core", "Initializing an MLP, the textbook way", "jinit._demos.core:run"),
    Section("trees", "Tree initializers: rule sets, edits, summary, sharding", "jinit._demos.trees:run"),
    Section("interop", "The MLP ported to PyTorch, Keras and Gluon: same outputs", "jinit._demos.interop:run"),
]

RULE = "=" * 96


def run(names: Sequence[str] | None = None) -> None:
    """Runs the named sections (all by default), in tour order, each under a banner."""
    chosen = [s for s in SECTIONS if names is None or s.name in names]
    unknown = sorted(set(names or ()) - {s.name for s in SECTIONS})
    if unknown:
        raise SystemExit(f"unknown demo section(s) {unknown}; known: {[s.name for s in SECTIONS]}")
    for i, section in enumerate(chosen, 1):
        print(RULE)
        print(f" {i}/{len(chosen)}  {section.title}   [python -m jinit demo --section "
              f"{section.name}]")
        print(RULE)
        start = time.perf_counter()
        section.load()()
        print(f"\n({section.name}: {time.perf_counter() - start:.1f} s)\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help="run only these sections (default: all); see --list")
    parser.add_argument("--section", action="append", default=[], metavar="NAME",
                        help="run only this section (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")


def main(args: argparse.Namespace) -> int:
    if args.list:
        for s in SECTIONS:
            print(f"{s.name:12s} {s.title}")
        return 0
    known = [s.name for s in SECTIONS]
    names = [*args.sections, *args.section]
    for name in names:
        if name not in known:
            raise UsageError(f"unknown demo section {name!r}.{did_you_mean(name, known)} "
                             f"Sections: {', '.join(known)}.")
    run(names or None)
    return 0
