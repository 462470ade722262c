"""Path strings and per-leaf keys.

A leaf's path is the "/"-joined string of its key path (``"Dense_0/kernel"``,
``"layers/0/w"``). Its PRNG key depends on that string only: the two
32-bit halves of a 64-bit blake2b digest of the path are folded into the root key, so adding,
removing or reordering other leaves or rules never changes a leaf's value.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax import tree_util

from jinit._typing import PRNGKey


def key_entry_str(entry: Any) -> str:
    """One key-path entry as a string: dict keys, sequence indices, attribute names."""
    if isinstance(entry, tree_util.DictKey):
        return str(entry.key)
    if isinstance(entry, tree_util.SequenceKey):
        return str(entry.idx)
    if isinstance(entry, tree_util.GetAttrKey):
        return entry.name
    if isinstance(entry, tree_util.FlattenedIndexKey):
        return str(entry.key)
    return str(entry)


def path_str(path: Sequence[Any]) -> str:
    """Joins a JAX key path into the "/"-separated string that selectors match.

    Examples:
      >>> import jax, jinit
      >>> [p for p, _ in jax.tree_util.tree_flatten_with_path({"a": [1, {"b": 2}]})[0]]
      [(DictKey(key='a'), SequenceKey(idx=0)), (DictKey(key='a'), SequenceKey(idx=1), DictKey(key='b'))]
      >>> jinit._paths.path_str((jax.tree_util.DictKey("a"), jax.tree_util.SequenceKey(1)))
      'a/1'
    """
    return "/".join(key_entry_str(e) for e in path)


@functools.lru_cache(maxsize=65536)
def path_digest(path: str) -> tuple[int, int]:
    """The two 32-bit halves of the 64-bit blake2b digest of ``path``."""
    d = hashlib.blake2b(path.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(d[:4], "little"), int.from_bytes(d[4:], "little")


def leaf_key(key: PRNGKey, path: str) -> PRNGKey:
    """The PRNG key of the leaf at ``path``: depends on ``key`` and ``path`` only.

    Works on typed keys (``jax.random.key``) and raw ``uint32[2]`` keys, eagerly and traced.
    """
    hi, lo = path_digest(path)
    return jax.random.fold_in(jax.random.fold_in(key, hi), lo)


# --- flattening with the paths selectors see ---------------------------------------------------

#: The key entry Flax boxes (``nnx.Variable``, linen ``AxisMetadata``) put above their value.
_VALUE = tree_util.GetAttrKey("value")


def _box_types() -> tuple[type, ...]:
    """Flax's boxed-value types, if Flax is already imported (never imported here)."""
    types: list[type] = []
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and hasattr(nnx, "Variable"):
        types.append(nnx.Variable)
    meta = sys.modules.get("flax.core.meta")
    if meta is not None and hasattr(meta, "AxisMetadata"):
        types.append(meta.AxisMetadata)
    return tuple(types)


def is_array_like(x: Any) -> bool:
    """Whether a leaf has a shape and dtype (arrays, tracers, ``jax.ShapeDtypeStruct``)."""
    return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def is_abstract(x: Any) -> bool:
    """Whether a leaf is a shape-only ``jax.ShapeDtypeStruct`` (it has no values)."""
    return isinstance(x, jax.ShapeDtypeStruct)


@dataclasses.dataclass(frozen=True, eq=False)
class FlatTree:
    """A pytree flattened once: path strings, leaves and the treedef to rebuild it.

    ``paths[i]`` is the "/"-joined path of ``leaves[i]``. The ``"value"`` attribute that Flax
    boxes (``nnx.Variable``, ``nn.Partitioned``) add above their array is dropped, so an
    ``nnx.State`` leaf reads ``"linear/kernel"`` like the Flax linen param of the same layer
    (and gets the same per-leaf key).
    """

    paths: tuple[str, ...]
    leaves: list[Any]
    treedef: Any

    def unflatten(self, leaves: Sequence[Any]) -> Any:
        """Rebuilds a tree of the same structure and container types from ``leaves``."""
        return tree_util.tree_unflatten(self.treedef, leaves)

    def array_indices(self) -> list[int]:
        """Indices of the leaves that have a shape and dtype (the ones selectors see)."""
        return [i for i, x in enumerate(self.leaves) if is_array_like(x)]


def flatten(tree: Any) -> FlatTree:
    """Flattens ``tree`` into a :class:`FlatTree` (one pass; a second only for Flax boxes)."""
    with_path, treedef = tree_util.tree_flatten_with_path(tree)
    keypaths = [p for p, _ in with_path]
    leaves = [x for _, x in with_path]
    boxes = _box_types()
    if boxes and any(p and p[-1] == _VALUE for p in keypaths):
        boxed, _ = tree_util.tree_flatten_with_path(
            tree, is_leaf=lambda x: isinstance(x, boxes))
        box_paths = {p for p, x in boxed if isinstance(x, boxes)}
        keypaths = [p[:-1] if p and p[-1] == _VALUE and p[:-1] in box_paths else p
                    for p in keypaths]
    return FlatTree(tuple(path_str(p) for p in keypaths), leaves, treedef)
