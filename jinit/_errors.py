"""Error classes. Each subclasses the builtin it refines, so generic handlers keep working."""

from __future__ import annotations


class JinitError(Exception):
    """Base class of every error jinit raises."""


class InitializerArgumentError(JinitError, ValueError):
    """An initializer was built with an invalid argument (caught at construction), or called
    with a key that is not a PRNG key; the message names the argument and the fix."""


class ShapeError(JinitError, ValueError):
    """A shape cannot be used with this initializer (rank, zero or negative sizes, fans)."""


class DTypeError(JinitError, TypeError):
    """A dtype cannot be used with this initializer (e.g. an integer dtype for a random init)."""


class PathError(JinitError, KeyError):
    """A path does not exist in a tree, or matches nothing where something was required."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead.
        return str(self.args[0]) if self.args else ""


class RuleError(JinitError, ValueError):
    """A tree-initializer rule set does not fit the tree (unmatched rule, uncovered leaf, ...)."""


class LeafInitError(JinitError, ValueError):
    """An initializer failed on one leaf of a tree; the message names the path, shape and dtype."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class BackendUnavailableError(JinitError, ImportError):
    """A framework needed by ``jinit.interop`` cannot be imported; the message says how to install it."""


class InteropError(JinitError, ValueError):
    """An array or tree cannot be transferred to/from another framework as asked (mode, device,
    deleted array, a DLPack failure); the message names the leaf path and the fix."""


class PortError(InteropError, RuleError):
    """A model cannot be loaded from (or read into) a parameter tree: ``.report`` lists every
    missing, unexpected and mismatched entry; nothing was changed."""

    def __init__(self, message: str, *, report: object = None) -> None:
        super().__init__(message)
        self.report = report
