"""``jinit.summary``: a per-leaf table of a parameter tree (and how a tree initializer treats it)."""

from __future__ import annotations

import sys
from typing import Any

import jax
import numpy as np

from jinit._paths import flatten, is_array_like
from jinit._typing import PyTree


def summary(
    tree: PyTree,
    tree_init: Any = None,
    *,
    stats: bool = True,
    return_string: bool = False,
    file: Any = None,
) -> str | None:
    """Prints a table of the tree's leaves: path, shape, dtype, count, mean, std.

    Like ``jax.print_environment_info`` (and Keras's ``Model.summary``), it prints and returns
    ``None``, so a REPL shows the table once; ``return_string=True`` returns the table instead
    of printing it.

    Statistics are computed on the host in float64 for concrete leaves; abstract leaves
    (``jax.ShapeDtypeStruct``) and tracers show ``-``. With ``tree_init`` (a tree initializer
    with a ``plan`` method, such as :func:`jinit.rules`), two more columns show the initializer
    each leaf gets (or got) and the rule that chose it, from ``tree_init.plan(tree)``.

    Args:
      tree: the parameter tree (arrays and/or ``jax.ShapeDtypeStruct``).
      tree_init: optionally, the tree initializer whose plan to show.
      stats: compute mean and std (set ``False`` for huge trees you only want to list).
      return_string: return the table as a string instead of printing it.
      file: where to print (default ``sys.stdout``).

    Returns:
      ``None``, or the table when ``return_string`` is true.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> init = jinit.rules((".*/bias", jinit.zeros), (".*/kernel", jinit.ones))
      >>> params = init(jax.random.key(0), {"dense": {
      ...     "kernel": jax.ShapeDtypeStruct((4, 2), jnp.float32),
      ...     "bias": jax.ShapeDtypeStruct((2,), jnp.float32)}})
      >>> jinit.summary(params, init)
      path          shape   dtype    count  mean  std  init         chosen by
      dense/bias    (2,)    float32      2     0    0  jinit.zeros  rule 0 ('.*/bias')
      dense/kernel  (4, 2)  float32      8     1    0  jinit.ones   rule 1 ('.*/kernel')
      total: 2 leaves, 10 values, 40 bytes
      >>> text = jinit.summary({"w": jnp.ones(())}, return_string=True)  # prints nothing
      >>> text.splitlines()[-1]
      'total: 1 leaf, 1 value, 4 bytes'
    """
    flat = flatten(tree)
    plans = tree_init.plan(tree) if tree_init is not None else None
    header = ["path", "shape", "dtype", "count"] + (["mean", "std"] if stats else [])
    header += ["init", "chosen by"] if plans is not None else []
    rows, count, nbytes = [], 0, 0
    for path, leaf in zip(flat.paths, flat.leaves, strict=True):
        if not is_array_like(leaf):
            continue
        size = int(np.prod(leaf.shape, dtype=np.int64))
        count += size
        nbytes += size * np.dtype(leaf.dtype).itemsize
        row = [path, str(tuple(leaf.shape)), str(np.dtype(leaf.dtype)), str(size)]
        if stats:
            row += _stats(leaf)
        if plans is not None:
            p = plans.get(path)
            row += (["-", "-"] if p is None else
                    ["keep" if p.init is None else _name(p.init), p.source])
        rows.append(row)
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    right = {3, 4, 5} if stats else {3}

    def fmt(row: list[str]) -> str:
        cells = [c.rjust(w) if k in right else c.ljust(w)
                 for k, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    total = (f"total: {_count(len(rows), 'leaf', 'leaves')}, {_count(count, 'value')}, "
             f"{_bytes(nbytes)}")
    text = "\n".join([fmt(header), *map(fmt, rows), total])
    if return_string:
        return text
    print(text, file=file if file is not None else sys.stdout)
    return None


def _stats(leaf: Any) -> list[str]:
    if not isinstance(leaf, (np.ndarray, np.generic)) and (
            not isinstance(leaf, jax.Array) or isinstance(leaf, jax.core.Tracer)):
        return ["-", "-"]
    x = np.asarray(leaf)
    if x.size == 0:
        return ["-", "-"]
    if not np.issubdtype(x.dtype, np.complexfloating):
        x = x.astype(np.float64)
    return [f"{x.mean():.4g}", f"{x.std():.4g}"]


def _name(init: Any) -> str:
    r = repr(init)
    if "<locals>" in r or r.startswith("<function"):
        r = getattr(init, "__qualname__", r)
    return r if len(r) <= 48 else r[:45] + "..."


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """``"1 leaf"``, ``"2 leaves"``, ``"1,024 values"``."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def _bytes(n: int) -> str:
    """``"1 byte"``, ``"1,023 bytes"``, ``"1.5 KiB"``, ... up to GiB."""
    power = min(3, (n.bit_length() - 1) // 10) if n else 0  # 1024 ** power <= n
    if power == 0:
        return _count(n, "byte")
    return f"{n / 1024 ** power:.1f} {('KiB', 'MiB', 'GiB')[power - 1]}"
