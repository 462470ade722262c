"""Functional edits of parameter trees: ``jinit.set`` and ``jinit.update``.

They replace the in-place ``net[0].weight.data[:] += 1`` habit of other frameworks with pure
functions that return a new tree (untouched leaves are the same objects; the input is never
modified), validate shape and dtype, and work under ``jax.jit``.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from jinit import select as _select
from jinit._errors import DTypeError, InitializerArgumentError, LeafInitError, PathError, ShapeError
from jinit._paths import FlatTree, flatten, is_abstract
from jinit._tree import _unknown_path_message
from jinit._typing import PyTree

_WEAK = (builtins.bool, int, float, complex)


def set(  # noqa: A001 - the public name is jinit.set, like jax.Array.at[...].set
    tree: PyTree,
    path: Any,
    value: Any,
    *,
    at: Any = None,
    allow_reshape: bool = False,
    allow_cast: bool = False,
) -> PyTree:
    """Returns a copy of ``tree`` with the leaf (or leaves) at ``path`` set to ``value``.

    ``path`` is an exact path as :func:`jinit.paths` lists it (``"Dense_0/kernel"``). A string
    that is not an exact path is read as a regex fullmatched on the paths (as in
    :func:`jinit.rules`), and a :mod:`jinit.select` selector or ``(path, leaf) -> bool``
    callable selects leaves any other way; every selected leaf is set.

    ``value`` must fit the leaf: its shape must broadcast to the leaf's (``0.0`` fills it) and
    its dtype must equal the leaf's (Python scalars are cast to it). Changing a leaf's shape or
    dtype needs ``allow_reshape=True`` / ``allow_cast=True``.

    Args:
      tree: the parameter tree (not modified).
      path: exact path string, path regex, or selector.
      value: the new value (array or scalar).
      at: an index into the leaf (``(0, 0)``, ``slice(0, 2)``, ``(..., 0)``): only that part
        is set, as ``leaf.at[at].set(value)``.
      allow_reshape: let ``value`` replace the leaf with a different shape.
      allow_cast: let an array ``value`` of another dtype replace the leaf with its own
        dtype (with ``at``: cast it into the leaf's dtype).

    Returns:
      The new tree, with the input's structure and container types.

    Raises:
      PathError: unknown path (with close matches), nothing selected, or an abstract leaf.
      ShapeError, DTypeError: a value that does not fit and no ``allow_*`` flag.

    Examples:
      >>> import jax.numpy as jnp, jinit
      >>> params = {"Dense_0": {"kernel": jnp.zeros((4, 8)), "bias": jnp.zeros(8)}}
      >>> params = jinit.set(params, "Dense_0/kernel", 42.0, at=(0, 0))
      >>> float(params["Dense_0"]["kernel"][0, 0]), float(params["Dense_0"]["kernel"].sum())
      (42.0, 42.0)
    """
    return _edit(tree, path, lambda old: value, at, allow_reshape, allow_cast, broadcast=True,
                 what="set")


def update(
    tree: PyTree,
    path: Any,
    fn: Callable[[Any], Any],
    *,
    at: Any = None,
    allow_reshape: bool = False,
    allow_cast: bool = False,
) -> PyTree:
    """Returns a copy of ``tree`` with ``fn`` applied to the leaf (or leaves) at ``path``.

    ``path`` is read as in :func:`jinit.set`. ``fn(leaf)`` must return the leaf's shape and
    dtype unless ``allow_reshape`` / ``allow_cast``; with ``at``, ``fn`` receives ``leaf[at]``
    and its result is written back with ``leaf.at[at].set(...)``.

    Args:
      tree: the parameter tree (not modified).
      path: exact path string, path regex, or selector.
      fn: ``old -> new``.
      at: an index into the leaf; ``fn`` then sees and replaces only that part.
      allow_reshape: accept a result of another shape.
      allow_cast: accept a result of another dtype (kept as is; with ``at``, cast back).

    Returns:
      The new tree.

    Raises:
      PathError: unknown path, nothing selected, or an abstract leaf.
      ShapeError, DTypeError: ``fn`` changed the shape or dtype and no ``allow_*`` flag.
      LeafInitError: ``fn`` raised; the message names the leaf.

    Examples:
      The textbook's "add 1 to every weight of layer 0", and a regex over several leaves:

      >>> import jax.numpy as jnp, jinit
      >>> params = {"Dense_0": {"kernel": jnp.zeros((4, 8)), "bias": jnp.zeros(8)},
      ...           "Dense_1": {"kernel": jnp.zeros((8, 1)), "bias": jnp.zeros(1)}}
      >>> params = jinit.update(params, "Dense_0/kernel", lambda w: w + 1)
      >>> float(params["Dense_0"]["kernel"].mean())
      1.0
      >>> params = jinit.update(params, r".*/bias", lambda b: b - 0.5)
      >>> float(params["Dense_1"]["bias"][0])
      -0.5
    """
    if not callable(fn):
        raise InitializerArgumentError(
            f"jinit.update needs a function old -> new; got {fn!r}. To write a value, use "
            "jinit.set(tree, path, value).")
    return _edit(tree, path, fn, at, allow_reshape, allow_cast, broadcast=False, what="update")


def _edit(tree: PyTree, path: Any, make: Callable[[Any], Any], at: Any, allow_reshape: bool,
          allow_cast: bool, *, broadcast: bool, what: str) -> PyTree:
    flat = flatten(tree)
    leaves = list(flat.leaves)
    for i in _targets(flat, tree, path, what):
        old, where = leaves[i], flat.paths[i]
        if at is None:
            new = _call(make, old, where, what)
            leaves[i] = _fit(new, old, where, tuple(old.shape), broadcast=broadcast,
                             allow_reshape=allow_reshape, allow_cast=allow_cast, keep_dtype=False)
        else:
            sub_shape = _index_shape(old, at, where)
            new = _call(make, jnp.asarray(old)[at] if what == "update" else None, where, what)
            new = _fit(new, old, where, sub_shape, broadcast=True, allow_reshape=False,
                       allow_cast=allow_cast, keep_dtype=True)
            leaves[i] = jnp.asarray(old).at[at].set(new)
    return flat.unflatten(leaves)


def _targets(flat: FlatTree, tree: PyTree, path: Any, what: str) -> list[int]:
    arrays = flat.array_indices()
    known = [flat.paths[i] for i in arrays]
    if isinstance(path, str):
        exact = [i for i in arrays if flat.paths[i] == path]
        if exact:
            hits = exact
        else:
            try:
                regex = re.compile(path)
            except re.error:
                regex = None
            hits = [i for i in arrays if regex and regex.fullmatch(flat.paths[i])]
            if not hits:
                raise PathError(f"jinit.{what}: " + _unknown_path_message(path, known))
    else:
        match = _select.to_selector(path).prepare(tree)
        hits = [i for i in arrays if match(flat.paths[i], flat.leaves[i])]
        if not hits:
            shown = ", ".join(map(repr, known[:12]))
            raise PathError(f"jinit.{what}: {path!r} selects no leaf. Paths of the tree: "
                            f"{shown}{' ...' if len(known) > 12 else ''}.")
    for i in hits:
        if is_abstract(flat.leaves[i]):
            raise PathError(
                f"jinit.{what}: leaf {flat.paths[i]!r} is abstract (jax.ShapeDtypeStruct) and has "
                "no values to edit; initialize the tree first (e.g. with jinit.rules).")
    return hits


def _call(make: Callable[[Any], Any], old: Any, where: str, what: str) -> Any:
    try:
        return make(old)
    except Exception as e:
        raise LeafInitError(
            f"jinit.{what}: the function failed on leaf {where!r} (shape="
            f"{tuple(np.shape(old))}, dtype={getattr(old, 'dtype', None)}): "
            f"{type(e).__name__}: {e}", path=where) from e


def _index_shape(old: Any, at: Any, where: str) -> tuple[int, ...]:
    try:  # index a zero-strided dummy: validates `at` without touching the data
        return np.broadcast_to(np.empty((), np.bool_), tuple(old.shape))[at].shape
    except (IndexError, TypeError, ValueError) as e:
        raise ShapeError(
            f"index at={at!r} does not fit leaf {where!r} of shape {tuple(old.shape)}: {e}") from e


def _fit(new: Any, old: Any, where: str, shape: tuple[int, ...], *, broadcast: bool,
         allow_reshape: bool, allow_cast: bool, keep_dtype: bool) -> Any:
    weak = isinstance(new, _WEAK) or getattr(new, "weak_type", False)
    new = jnp.asarray(new)
    old_dtype = np.dtype(old.dtype)
    if weak:
        if not np.can_cast(np.result_type(new.dtype), old_dtype, "same_kind"):
            raise DTypeError(
                f"cannot write a {new.dtype} scalar into leaf {where!r} of dtype {old_dtype}.")
        new = new.astype(old_dtype)
    elif new.dtype != old_dtype:
        if not allow_cast:
            raise DTypeError(
                f"the new value for leaf {where!r} has dtype {new.dtype}, but the leaf is "
                f"{old_dtype}. Cast it (x.astype(jnp.{old_dtype.name})) or pass "
                "allow_cast=True to change the leaf's dtype.")
        if keep_dtype:
            new = new.astype(old_dtype)
    if tuple(new.shape) == shape or allow_reshape:
        return new
    if broadcast:
        try:
            return jnp.broadcast_to(new, shape)
        except ValueError:
            pass
    raise ShapeError(
        f"the new value for leaf {where!r} has shape {tuple(new.shape)}, which does not fit "
        f"the {'indexed part' if keep_dtype else 'leaf'} of shape {shape}."
        + ("" if keep_dtype else " Pass allow_reshape=True to change the leaf's shape."))
