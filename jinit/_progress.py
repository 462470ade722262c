"""Progress display for initializations that take seconds.

The engine's eager path reports each finished leaf to :func:`bar`. A bar is drawn with
``rich`` if it is installed, else ``tqdm``, else not at all, and only when asked for or when
the work is large: by default for trees of at least :data:`THRESHOLD_BYTES` when stderr is a
terminal. ``JINIT_PROGRESS=1`` forces it on, ``=0`` off; a ``progress=`` argument wins over
both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Any

import jax

#: Default size above which a bar is shown automatically (bytes of parameters).
THRESHOLD_BYTES = 256 * 2**20


def enabled(total_bytes: int, requested: bool | None = None) -> bool:
    """Whether to draw a bar for ``total_bytes`` of parameters.

    Examples:
      >>> from jinit import _progress
      >>> _progress.enabled(10**12, requested=False), _progress.enabled(10, requested=None)
      (False, False)
    """
    if requested is not None:
        return bool(requested)
    env = os.environ.get("JINIT_PROGRESS", "").strip().lower()
    if env in ("0", "false", "off", "no"):
        return False
    if env in ("1", "true", "on", "yes"):
        return True
    return total_bytes >= THRESHOLD_BYTES and sys.stderr.isatty()


def backend() -> str | None:
    """``"rich"``, ``"tqdm"`` or ``None``: the library that draws bars here."""
    for name in ("rich", "tqdm"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


class _Null:
    """A bar that draws nothing."""

    def advance(self, nbytes: int, value: Any = None) -> None:
        del nbytes, value


class _Bar:
    """Counts bytes of finished leaves; waits for each leaf so the bar tracks real work."""

    def __init__(self, update) -> None:
        self._update = update

    def advance(self, nbytes: int, value: Any = None) -> None:
        if value is not None and not isinstance(value, jax.core.Tracer):
            jax.block_until_ready(value)
        self._update(nbytes)


@contextlib.contextmanager
def bar(total_bytes: int, n_leaves: int, requested: bool | None = None,
        description: str = "jinit init") -> Iterator[_Bar | _Null]:
    """A context manager yielding an object with ``advance(nbytes, value)``.

    Args:
      total_bytes: bytes of all leaves.
      n_leaves: number of leaves (shown in the description).
      requested: ``True``/``False`` to force; ``None`` for automatic (see :func:`enabled`).
      description: the label.

    Examples:
      >>> from jinit import _progress
      >>> with _progress.bar(100, 1, requested=False) as b:
      ...     b.advance(100)
    """
    kind = backend() if enabled(total_bytes, requested) else None
    label = f"{description} ({n_leaves} leaves)"
    if kind == "rich":
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as p:
            task = p.add_task(label, total=total_bytes)
            yield _Bar(lambda n: p.advance(task, n))
    elif kind == "tqdm":
        from tqdm.auto import tqdm

        with tqdm(total=total_bytes, desc=label, unit="B", unit_scale=True) as t:
            yield _Bar(t.update)
    else:
        yield _Null()
