"""Type aliases and protocols shared across jinit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

import jax
from jax.sharding import NamedSharding, PartitionSpec

PRNGKey: TypeAlias = jax.Array
Shape: TypeAlias = Sequence[int]
DTypeLike: TypeAlias = Any
PyTree: TypeAlias = Any
Axes: TypeAlias = int | Sequence[int]
OutSharding: TypeAlias = NamedSharding | PartitionSpec | None


@runtime_checkable
class InitFn(Protocol):
    """Any ``(key, shape, dtype=None, out_sharding=None) -> Array`` initializer.

    Every jinit initializer satisfies it, and so does every ``jax.nn.initializers`` /
    Flax initializer.
    """

    def __call__(
        self,
        key: PRNGKey,
        shape: Shape,
        dtype: DTypeLike | None = None,
        out_sharding: OutSharding = None,
    ) -> jax.Array: ...


@runtime_checkable
class TreeInitializer(Protocol):
    """A ``(key, tree) -> tree`` callable that (re-)initializes a parameter pytree."""

    def __call__(self, key: PRNGKey, tree: PyTree) -> PyTree: ...


#: A selector: a regex string (fullmatched on the "/"-joined path) or ``(path, leaf) -> bool``.
Selector: TypeAlias = str | Callable[[str, Any], bool]
