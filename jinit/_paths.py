"""Path strings and per-leaf keys.

A leaf's path is the "/"-joined string of its key path (``"Dense_0/kernel"``,
``"layers/0/w"``). Its PRNG key depends on that string only (DESIGN decision 5): the two
32-bit halves of a 64-bit blake2b digest of the path are folded into the root key, so adding,
removing or reordering other leaves or rules never changes a leaf's value.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import jax
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
