"""``python -m jinit <command>``: the command-line entry point.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; it is imported only when that command runs. Adding a command is one
line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: command name -> (module implementing it, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("jinit._demos", "run the guided tour (python -m jinit demo --list for its sections)"),
    "compare": ("jinit._demos.compare", "histogram a jinit initializer against torch/keras/mxnet"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jinit",
        description="jinit: jittable parameter initializers and pytree init rules for JAX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        # Each command module declares its own options; importing it is cheap (no frameworks).
        importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(importlib.import_module(args._module).main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
