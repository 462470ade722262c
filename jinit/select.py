"""Selectors: which leaves of a parameter tree a rule applies to.

A selector is any ``(path, leaf) -> bool`` callable, where ``path`` is the "/"-joined string
that :func:`jinit.paths` lists (``"Dense_0/kernel"``, ``"layers/0/w"``) and ``leaf`` is an
array or a ``jax.ShapeDtypeStruct``. Wherever jinit takes a selector it also accepts a string,
read as a regex that must :func:`re.fullmatch` the whole path (``"bias"`` does not match
``"Dense_0/bias"``; write ``".*bias"`` or ``"(.*/)?bias"``).

The helpers here are frozen dataclasses with readable reprs; they compose with
:func:`all_of` / :func:`any_of` / :func:`none_of`, or with ``&``, ``|`` and ``~``:

>>> import jinit
>>> from jinit import select
>>> s = select.path(r".*/kernel") & ~select.ndim(1)
>>> s
AllOf(selectors=(PathRegex(pattern='.*/kernel'), NoneOf(selectors=(NDim(ndims=(1,)),))))
>>> import jax.numpy as jnp
>>> s("Dense_0/kernel", jnp.zeros((4, 8)))
True

Selectors that depend on the whole tree (:func:`label`) are bound to it once per call by
:meth:`Predicate.prepare`; the others ignore it.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jinit._errors import RuleError
from jinit._paths import flatten

__all__ = [
    "AllOf",
    "AnyOf",
    "DType",
    "Label",
    "LeafName",
    "NDim",
    "NoneOf",
    "PathRegex",
    "Predicate",
    "ShapeIs",
    "Where",
    "all_of",
    "any_of",
    "dtype",
    "label",
    "name",
    "ndim",
    "none_of",
    "path",
    "shape",
    "to_selector",
    "where",
]


class Predicate(abc.ABC):
    """Base class of jinit's selectors: ``(path: str, leaf) -> bool`` with a readable repr.

    Subclasses are frozen dataclasses implementing :meth:`__call__`. Those that need the
    whole tree (labels) override :meth:`prepare`, which returns a selector bound to it.
    """

    @abc.abstractmethod
    def __call__(self, path: str, leaf: Any) -> bool:
        """Whether the leaf at ``path`` is selected."""

    def prepare(self, tree: Any) -> Callable[[str, Any], bool]:
        """Returns this selector bound to ``tree`` (called once per tree, before matching)."""
        del tree
        return self

    def __and__(self, other: Any) -> Predicate:
        return all_of(self, other)

    def __rand__(self, other: Any) -> Predicate:
        return all_of(other, self)

    def __or__(self, other: Any) -> Predicate:
        return any_of(self, other)

    def __ror__(self, other: Any) -> Predicate:
        return any_of(other, self)

    def __invert__(self) -> Predicate:
        return none_of(self)


# --- leaf-local selectors -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PathRegex(Predicate):
    """Selects leaves whose "/"-joined path fully matches ``pattern`` (see :func:`path`)."""

    pattern: str
    _regex: re.Pattern = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise RuleError(f"a path selector needs a regex string; got {self.pattern!r}.")
        try:
            regex = re.compile(self.pattern)
        except re.error as e:
            raise RuleError(f"invalid path regex {self.pattern!r}: {e}.") from e
        object.__setattr__(self, "_regex", regex)

    def __call__(self, path: str, leaf: Any) -> bool:
        return self._regex.fullmatch(path) is not None


def path(pattern: str) -> PathRegex:
    """Selects leaves whose "/"-joined path fully matches the regex ``pattern``.

    The pattern is compiled once, here; a bad pattern raises :class:`jinit.RuleError`.
    Plain strings passed as selectors mean the same thing.

    Args:
      pattern: a regular expression, matched with :func:`re.fullmatch`.

    Returns:
      A :class:`PathRegex` selector.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> s = select.path(r"Dense_\\d+/kernel")
      >>> s("Dense_1/kernel", jnp.zeros(3)), s("Dense_1/kernel_scale", jnp.zeros(3))
      (True, False)
    """
    return PathRegex(pattern)


@dataclasses.dataclass(frozen=True)
class LeafName(Predicate):
    """Selects leaves whose last path component is one of ``names`` (see :func:`name`)."""

    names: tuple[str, ...]

    def __call__(self, path: str, leaf: Any) -> bool:
        return path.rpartition("/")[2] in self.names


def name(*names: str) -> LeafName:
    """Selects leaves by the last component of their path (``"kernel"``, ``"bias"``, ``"0"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> select.name("bias", "scale")("encoder/ln/scale", jnp.ones(4))
      True
    """
    if not names or not all(isinstance(n, str) for n in names):
        raise RuleError(f"select.name needs one or more strings; got {names!r}.")
    return LeafName(tuple(names))


@dataclasses.dataclass(frozen=True)
class NDim(Predicate):
    """Selects leaves whose rank is one of ``ndims`` (see :func:`ndim`)."""

    ndims: tuple[int, ...]

    def __call__(self, path: str, leaf: Any) -> bool:
        return len(leaf.shape) in self.ndims


def ndim(*ndims: int) -> NDim:
    """Selects leaves of the given rank(s): ``ndim(1)`` for biases and norm scales.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> select.ndim(2, 4)("conv/kernel", jnp.zeros((3, 3, 4, 8)))
      True
    """
    if not ndims or not all(isinstance(n, int) and n >= 0 for n in ndims):
        raise RuleError(f"select.ndim needs one or more non-negative ints; got {ndims!r}.")
    return NDim(tuple(ndims))


@dataclasses.dataclass(frozen=True)
class ShapeIs(Predicate):
    """Selects leaves by shape: a pattern with ``None`` wildcards, or a predicate."""

    spec: tuple[int | None, ...] | Callable[[tuple[int, ...]], bool]

    def __call__(self, path: str, leaf: Any) -> bool:
        shape = tuple(leaf.shape)
        if callable(self.spec):
            return bool(self.spec(shape))
        return len(shape) == len(self.spec) and all(
            want is None or want == got for want, got in zip(self.spec, shape, strict=True))


def shape(spec: Sequence[int | None] | Callable[[tuple[int, ...]], bool]) -> ShapeIs:
    """Selects leaves by shape.

    Args:
      spec: a shape whose entries are ints or ``None`` (any size), e.g. ``(None, 3072)``;
        or a predicate on the shape tuple, e.g. ``lambda s: s[-1] % 128 == 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> select.shape((None, 8))("w", jnp.zeros((4, 8)))
      True
      >>> select.shape(lambda s: max(s) > 1000)("w", jnp.zeros((4, 8)))
      False
    """
    if callable(spec):
        return ShapeIs(spec)
    try:
        dims = tuple(None if d is None else int(d) for d in spec)
    except TypeError as e:
        raise RuleError(
            f"select.shape needs a shape (ints or None) or a predicate; got {spec!r}.") from e
    return ShapeIs(dims)


@dataclasses.dataclass(frozen=True)
class DType(Predicate):
    """Selects leaves whose dtype is (a subtype of) one of ``dtypes`` (see :func:`dtype`)."""

    dtypes: tuple[Any, ...]

    def __call__(self, path: str, leaf: Any) -> bool:
        return any(jnp.issubdtype(leaf.dtype, d) for d in self.dtypes)


def dtype(*dtypes: Any) -> DType:
    """Selects leaves by dtype; abstract kinds work too (``jnp.floating``, ``jnp.integer``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> select.dtype(jnp.floating)("w", jnp.zeros(2, jnp.bfloat16))
      True
      >>> select.dtype(jnp.float32)("step", jnp.zeros((), jnp.int32))
      False
    """
    if not dtypes:
        raise RuleError("select.dtype needs one or more dtypes.")
    canon = []
    for d in dtypes:
        if isinstance(d, type) and issubclass(d, np.generic):
            canon.append(d)
            continue
        try:
            canon.append(np.dtype(d).type)
        except TypeError as e:
            raise RuleError(f"select.dtype got {d!r}, which is not a dtype.") from e
    return DType(tuple(canon))


@dataclasses.dataclass(frozen=True)
class Where(Predicate):
    """Wraps a plain ``(path, leaf) -> bool`` callable (see :func:`where`)."""

    fn: Callable[[str, Any], bool]

    def __call__(self, path: str, leaf: Any) -> bool:
        return bool(self.fn(path, leaf))

    def __repr__(self) -> str:
        return f"Where({getattr(self.fn, '__qualname__', self.fn)!r})"


def where(fn: Callable[[str, Any], bool]) -> Where:
    """Turns a ``(path, leaf) -> bool`` function into a composable selector.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> big = select.where(lambda p, x: x.size > 100)
      >>> (big & select.name("kernel"))("mlp/kernel", jnp.zeros((64, 64)))
      True
    """
    if not callable(fn):
        raise RuleError(f"select.where needs a callable (path, leaf) -> bool; got {fn!r}.")
    return Where(fn)


# --- labels (optax.partition / multi_transform compatible) --------------------------------------


@dataclasses.dataclass(frozen=True)
class Label(Predicate):
    """Selects leaves whose label (from an optax-style label tree) is in ``wanted``."""

    labels: Any  # a pytree of labels (a prefix of the params), or params -> such a pytree
    wanted: tuple[Hashable, ...]

    def __hash__(self) -> int:  # label trees are often dicts: hash by identity
        return hash((id(self.labels), self.wanted))

    def __repr__(self) -> str:  # the label tree can be large: show what is selected
        return f"Label(wanted={self.wanted!r})"

    def __call__(self, path: str, leaf: Any) -> bool:
        raise RuleError(
            f"{self!r} needs the whole tree to read its labels; use it inside jinit.rules(...) "
            "or call .prepare(tree) first.")

    def prepare(self, tree: Any) -> Callable[[str, Any], bool]:
        by_path = label_map(self.labels, tree)
        wanted = set(self.wanted)
        return lambda path, leaf: by_path.get(path, _NO_LABEL) in wanted


_NO_LABEL = object()


def label_map(labels: Any, tree: Any) -> dict[str, Hashable]:
    """Broadcasts an optax-style label tree (or label function) over ``tree``: path -> label.

    Raises:
      RuleError: if the label function fails or the label tree is not a prefix of ``tree``.
    """
    if callable(labels):
        try:
            labels = labels(tree)
        except Exception as e:
            raise RuleError(f"the label function {labels!r} failed on the tree: {e}") from e
    try:
        full = jax.tree.broadcast(labels, tree)
    except (ValueError, TypeError) as e:
        raise RuleError(
            "the label tree does not fit the params: it must have the same structure as the "
            "params or be a prefix of it (the optax.partition contract).\n"
            f"label tree: {jax.tree.structure(labels)}\nparams: {jax.tree.structure(tree)}\n"
            f"{e}") from e
    flat_tree = flatten(tree)
    flat_labels = jax.tree.leaves(full, is_leaf=lambda x: x is None)
    return dict(zip(flat_tree.paths, flat_labels, strict=True))


def label(labels: Any, *wanted: Hashable) -> Label:
    """Selects leaves by label, with the same label trees as ``optax.partition``.

    Args:
      labels: a pytree of labels with the structure of the params or a prefix of it
        (``{"encoder": "frozen", "head": "train"}``), or a function ``params -> labels``.
        The same object you pass to ``optax.partition`` / ``optax.multi_transform``.
      *wanted: the label(s) to select.

    Returns:
      A :class:`Label` selector; a label tree that does not fit the params raises
      :class:`jinit.RuleError` when the rules run.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> from jinit import select
      >>> params = {"enc": {"w": jnp.ones((2, 2))}, "head": {"w": jnp.ones((2, 1))}}
      >>> init = jinit.rules((select.label({"enc": "frozen", "head": "train"}, "train"),
      ...                     jinit.zeros))
      >>> out = init(jax.random.key(0), params)
      >>> float(out["enc"]["w"].sum()), float(out["head"]["w"].sum())
      (4.0, 0.0)
    """
    if not wanted:
        raise RuleError("select.label needs the label(s) to select, e.g. label(labels, 'decay').")
    return Label(labels, tuple(wanted))


# --- combinators -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Combinator(Predicate):
    """Shared body of :class:`AnyOf`, :class:`AllOf` and :class:`NoneOf`."""

    selectors: tuple[Predicate, ...]

    @staticmethod
    def _combine(results: Iterable[bool]) -> bool:
        raise NotImplementedError

    def __call__(self, path: str, leaf: Any) -> bool:
        return self._combine(s(path, leaf) for s in self.selectors)

    def prepare(self, tree: Any) -> Callable[[str, Any], bool]:
        bound = [s.prepare(tree) for s in self.selectors]
        return lambda path, leaf: self._combine(s(path, leaf) for s in bound)


@dataclasses.dataclass(frozen=True)
class AnyOf(_Combinator):
    """Selects leaves that any of ``selectors`` selects (see :func:`any_of`)."""

    _combine = staticmethod(any)


@dataclasses.dataclass(frozen=True)
class AllOf(_Combinator):
    """Selects leaves that all of ``selectors`` select (see :func:`all_of`)."""

    _combine = staticmethod(all)


@dataclasses.dataclass(frozen=True)
class NoneOf(_Combinator):
    """Selects leaves that none of ``selectors`` selects (see :func:`none_of`)."""

    @staticmethod
    def _combine(results: Iterable[bool]) -> bool:
        return not any(results)


def _flat(cls: type, selectors: Sequence[Any]) -> tuple[Predicate, ...]:
    out: list[Predicate] = []
    for s in map(to_selector, selectors):
        out.extend(s.selectors if type(s) is cls else (s,))
    return tuple(out)


def any_of(*selectors: Any) -> AnyOf:
    """Selects leaves matched by at least one selector (strings are path regexes).

    Examples:
      >>> from jinit import select
      >>> select.any_of(".*/bias", select.name("scale"))
      AnyOf(selectors=(PathRegex(pattern='.*/bias'), LeafName(names=('scale',))))
    """
    return AnyOf(_flat(AnyOf, selectors))


def all_of(*selectors: Any) -> AllOf:
    """Selects leaves matched by every selector (strings are path regexes).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> select.all_of("encoder/.*", select.ndim(2))("encoder/0/kernel", jnp.zeros((2, 2)))
      True
    """
    return AllOf(_flat(AllOf, selectors))


def none_of(*selectors: Any) -> NoneOf:
    """Selects leaves matched by no selector (strings are path regexes).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit import select
      >>> select.none_of(".*/bias", select.ndim(1))("mlp/kernel", jnp.zeros((2, 2)))
      True
    """
    return NoneOf(tuple(map(to_selector, selectors)))


def to_selector(x: Any) -> Predicate:
    """Coerces a selector-like value: a regex string, a :class:`Predicate`, a callable, a tuple.

    Strings become :func:`path` (fullmatch), tuples/lists become :func:`any_of`, ``True``
    selects every leaf, and any other callable ``(path, leaf) -> bool`` is wrapped by
    :func:`where`.

    Raises:
      RuleError: for anything else.

    Examples:
      >>> from jinit import select
      >>> select.to_selector(r".*/kernel")
      PathRegex(pattern='.*/kernel')
    """
    if isinstance(x, Predicate):
        return x
    if isinstance(x, str):
        return PathRegex(x)
    if x is True:
        return PathRegex(".*")
    if isinstance(x, (tuple, list)):
        return any_of(*x)
    if callable(x):
        return Where(x)
    raise RuleError(
        f"cannot use {x!r} as a selector: pass a path regex string, a jinit.select helper, "
        "or a callable (path, leaf) -> bool.")
