"""The ``jinit`` command (also ``python -m jinit``): its subcommands and how it reports mistakes.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; it is imported only when that command runs. Adding a command is one
line in :data:`COMMANDS`.

A user's mistake (an unknown name, a bad argument value, an output path that cannot be written,
a missing optional dependency) ends the command with ONE line on stderr and exit status 2, never
a traceback: a command raises :class:`UsageError` (or jinit's
:class:`~jinit.BackendUnavailableError`), and a missing optional package becomes the
``pip install "jinit[...]"`` line that installs it. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
from collections.abc import Iterable, Sequence
from typing import NoReturn

from jinit._errors import BackendUnavailableError

#: command name -> (module implementing it, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("jinit._demos", "run the guided tour (jinit demo --list shows its sections)"),
    "compare": ("jinit._demos.compare",
                "histogram a jinit initializer against torch/keras/mxnet/jax (--list: names)"),
}

#: optional package (top-level import name) -> the jinit extra that installs it.
EXTRAS: dict[str, str] = {
    "flax": "flax",
    "matplotlib": "plot",
    "rich": "progress",
    "torch": "torch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
}


class UsageError(Exception):
    """A mistake in a command line: printed as one line, exit status 2."""


def install_hint(package: str) -> str:
    """How to install an optional package, as a sentence.

    Examples:
      >>> install_hint("matplotlib")
      'matplotlib is not installed; run: pip install "jinit[plot]"'
    """
    extra = EXTRAS.get(package)
    how = f'pip install "jinit[{extra}]"' if extra else f"pip install {package}"
    return f"{package} is not installed; run: {how}"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest candidates (difflib), or ``""``.

    Examples:
      >>> did_you_mean("tress", ["core", "trees", "interop"])
      " Did you mean 'trees'?"
      >>> did_you_mean("kaiming_unifrom", ["kaiming_uniform", "kaiming_normal", "he_uniform"])
      " Did you mean 'kaiming_uniform' or 'kaiming_normal'?"
      >>> did_you_mean("unifrom", ["uniform", "uniforms", "unform", "normal"])
      " Did you mean 'uniform', 'uniforms' or 'unform'?"
      >>> did_you_mean("zzz", ["core", "trees"])
      ''
    """
    close = [repr(c) for c in difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)]
    if not close:
        return ""
    return f" Did you mean {', '.join(close[:-1]) + ' or ' if close[1:] else ''}{close[-1]}?"


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.fail(f"{message} (see {self.prog} --help)")

    def fail(self, message: str) -> NoReturn:
        """Prints ``prog: error: message`` as one line on stderr; exits with status 2."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser(prog: str = "jinit") -> _Parser:
    parser = _Parser(
        prog=prog,
        description="jinit: jittable parameter initializers and pytree init rules for JAX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module, _parser=sub)
        # Each command module declares its own options; importing it is cheap (no frameworks).
        importlib.import_module(module).add_arguments(sub)
    return parser


def _missing_optional(error: ModuleNotFoundError) -> str | None:
    """The install line when ``error`` is an optional package that is really absent."""
    package = (error.name or "").partition(".")[0]
    if package in EXTRAS and importlib.util.find_spec(package) is None:
        return install_hint(package)
    return None


def main(argv: Sequence[str] | None = None, prog: str = "jinit") -> int:
    """Runs one command; returns its exit status (``SystemExit(2)`` on a user's mistake)."""
    args = build_parser(prog).parse_args(argv)
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except (UsageError, BackendUnavailableError) as e:
        args._parser.fail(str(e))
    except ModuleNotFoundError as e:
        hint = _missing_optional(e)
        if hint is None:
            raise
        args._parser.fail(hint)
