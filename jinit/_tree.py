"""Tree initializers: ``jinit.rules`` and the layer-aware rule mechanism.

``rules(*(selector, initializer), default=None, strict=True)`` returns a :class:`Rules`, a
``(key, tree) -> tree`` callable (DESIGN decision 4). Matching and resolution run in Python on
paths, shapes and dtypes only, once per call; the values are computed by
:func:`jinit._engine.init_leaves` from a list of plain :class:`~jinit._engine.LeafTask`, so a
tree initializer is traceable under ``jax.jit``, ``jax.vmap`` and ``jax.eval_shape``.

Layer-aware initializers (torch's bias bound depends on the sibling weight's fan-in) are
objects with ``resolve(ctx: LeafContext) -> initializer``; :func:`contextual` builds one from a
function. They are resolved during planning, so the engine only ever sees plain initializers.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jinit import select as _select
from jinit._engine import LeafTask, init_leaves
from jinit._errors import DTypeError, LeafInitError, PathError, RuleError
from jinit._paths import FlatTree, flatten, is_abstract, is_array_like
from jinit._typing import PRNGKey, PyTree

_SAMPLE = 12  # how many paths error messages list


# --- keep, layer context, contextual initializers ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Keep:
    """The initializer that leaves a leaf as it is (see :data:`keep`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuleError("jinit.keep is a rule marker, not an initializer: use it in jinit.rules.")

    def __repr__(self) -> str:
        return "keep"


#: Rule target that leaves matching leaves unchanged: ``jinit.rules(("frozen/.*", jinit.keep),
#: (".*", jinit.normal()))``. On an abstract leaf (``jax.ShapeDtypeStruct``) there is nothing to
#: keep, and the tree initializer raises :class:`jinit.RuleError`.
keep = Keep()


@dataclasses.dataclass(frozen=True)
class LeafContext:
    """What a layer-aware initializer can see about the leaf it initializes.

    Attributes:
      path: the leaf's "/"-joined path, e.g. ``"Dense_0/bias"``.
      shape: its shape.
      dtype: its dtype.
      siblings: the array leaves sharing its parent (its layer), by name, as
        ``jax.ShapeDtypeStruct`` (the leaf itself included).
      tree: every array leaf of the tree, by path, as ``jax.ShapeDtypeStruct``.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    siblings: Mapping[str, jax.ShapeDtypeStruct]
    tree: Mapping[str, jax.ShapeDtypeStruct] = dataclasses.field(repr=False)

    @property
    def name(self) -> str:
        """The last path component (``"bias"``)."""
        return self.path.rpartition("/")[2]

    @property
    def parent(self) -> str:
        """The path of the enclosing layer (``"Dense_0"``; ``""`` at the root)."""
        return self.path.rpartition("/")[0]

    def sibling(self, name: str) -> jax.ShapeDtypeStruct:
        """The shape and dtype of the sibling leaf ``name`` (e.g. ``"kernel"``).

        Raises:
          PathError: if the layer has no such leaf; the message lists the siblings.
        """
        try:
            return self.siblings[name]
        except KeyError:
            raise PathError(
                f"leaf {self.path!r} has no sibling {name!r}; its layer "
                f"{self.parent or '<root>'!r} holds {sorted(self.siblings)}.") from None

    def get(self, path: str) -> jax.ShapeDtypeStruct:
        """The shape and dtype of any leaf of the tree, by its full path.

        Raises:
          PathError: if there is no such leaf; the message suggests close paths.
        """
        try:
            return self.tree[path]
        except KeyError:
            raise PathError(_unknown_path_message(path, list(self.tree))) from None


@runtime_checkable
class LayerAware(Protocol):
    """A rule target that chooses its initializer from the leaf's :class:`LeafContext`."""

    def resolve(self, ctx: LeafContext) -> Any:
        """Returns a plain initializer (or :data:`keep`) for the leaf described by ``ctx``."""
        ...


@dataclasses.dataclass(frozen=True)
class Contextual:
    """A layer-aware initializer built from a function ``ctx -> initializer``.

    See :func:`contextual`. Calling it directly (without a tree) raises
    :class:`jinit.RuleError`: it only has a meaning inside :func:`jinit.rules`.
    """

    fn: Callable[[LeafContext], Any]
    name: str | None = None

    def resolve(self, ctx: LeafContext) -> Any:
        return self.fn(ctx)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuleError(
            f"{self!r} is layer-aware: it needs the leaf's layer (siblings' shapes) and can only "
            "be used as the initializer of a rule in jinit.rules(...).")

    def __repr__(self) -> str:
        return f"contextual({self.name or getattr(self.fn, '__qualname__', repr(self.fn))})"


def contextual(fn: Callable[[LeafContext], Any], name: str | None = None) -> Contextual:
    """Builds a layer-aware initializer from ``fn(ctx) -> initializer``.

    ``fn`` runs in Python when a tree initializer plans a tree, once per selected leaf, with a
    :class:`LeafContext` describing the leaf, its siblings and the whole tree (shapes and
    dtypes only). It returns a plain initializer for that leaf (or :data:`jinit.keep`). The
    result is what the engine executes, so layer-aware rules cost nothing at run time and stay
    traceable. Rules can mix plain and layer-aware initializers freely. Return hashable
    initializers (jinit's frozen dataclasses, not fresh lambdas): layers of the same shape then
    resolve to equal initializers and share one compiled kernel.

    Args:
      fn: a function of a :class:`LeafContext` returning an initializer.
      name: shown in reprs, summaries and errors (defaults to the function's name).

    Returns:
      A :class:`Contextual`.

    Examples:
      PyTorch's ``nn.Linear`` draws its bias from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` where
      ``fan_in`` is the fan-in of the layer's weight, a sibling leaf:

      >>> import math, jax, jax.numpy as jnp, jinit
      >>> def torch_bias(ctx):
      ...     fan_in, _ = jinit.compute_fans(ctx.sibling("kernel").shape)
      ...     bound = 1 / math.sqrt(fan_in)
      ...     return jinit.compat.torch.uniform(-bound, bound)
      >>> init = jinit.rules((".*/bias", jinit.contextual(torch_bias)),
      ...                    (".*/kernel", jinit.lecun_normal()))
      >>> spec = {"Dense_0": {"kernel": jax.ShapeDtypeStruct((400, 8), jnp.float32),
      ...                     "bias": jax.ShapeDtypeStruct((8,), jnp.float32)}}
      >>> b = init(jax.random.key(0), spec)["Dense_0"]["bias"]
      >>> bool(jnp.abs(b).max() <= 1 / 20)
      True
    """
    if not callable(fn):
        raise RuleError(f"jinit.contextual needs a function ctx -> initializer; got {fn!r}.")
    return Contextual(fn, name)


# --- rules ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """One ``selector -> initializer`` rule. ``required``: strict mode demands it be used."""

    selector: _select.Predicate
    init: Any  # an InitFn, a LayerAware object, or keep
    required: bool = True

    def __repr__(self) -> str:
        sel = self.selector
        shown = repr(sel.pattern) if isinstance(sel, _select.PathRegex) else repr(sel)
        return f"({shown}, {self.init!r})"


@dataclasses.dataclass(frozen=True)
class LeafPlan:
    """How a tree initializer treats one leaf (see :meth:`Rules.plan`).

    Attributes:
      path: the leaf's path.
      shape, dtype: the leaf's shape and dtype.
      init: the resolved plain initializer, or ``None`` when the leaf is returned unchanged.
      rule: the index of the rule that chose it in :attr:`Rules.rules`; ``None`` for the
        default or no rule.
      source: a readable account: ``"rule 1 ('.*/kernel')"``, ``"default"``, ``"no rule"``.
      sharding: the sharding the value is created with (``None``: default placement).
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    init: Any
    rule: int | None
    source: str
    sharding: Any = None


@dataclasses.dataclass(frozen=True)
class Rules:
    """A tree initializer ``(key, tree) -> tree`` built by :func:`jinit.rules`.

    Attributes:
      rules: the rules, in priority order (first match wins).
      default: the initializer of leaves that no rule matches (``None``: keep concrete leaves,
        reject abstract ones).
      strict: whether a required rule that initializes no leaf raises.
      mesh, partition: sharding of the created values (see :func:`jinit.rules`).
    """

    rules: tuple[Rule, ...]
    default: Any = None
    strict: bool = True
    mesh: Mesh | None = None
    partition: tuple[tuple[_select.Predicate, PartitionSpec], ...] = ()

    def __call__(self, key: PRNGKey, tree: PyTree, *, progress: bool | None = None) -> PyTree:
        """Initializes ``tree`` (arrays and/or ``jax.ShapeDtypeStruct`` leaves) from ``key``.

        ``progress`` shows a progress bar (``None``: automatic, for eager initializations of
        at least 256 MiB on a terminal; ``JINIT_PROGRESS=0/1`` overrides the default).
        """
        _check_key(key)
        flat = flatten(tree)
        plans = self._plan(flat, tree)
        todo = [(i, p) for i, p in enumerate(plans) if p is not None and p.init is not None]
        tasks = [LeafTask(p.path, p.init, p.shape, p.dtype, p.sharding,
                          getattr(p.init, "key_path", None)) for _, p in todo]
        try:
            values = init_leaves(key, tasks, progress=progress)
        except LeafInitError:
            raise
        except Exception as e:
            _diagnose(key, todo, e)
            raise
        leaves = list(flat.leaves)
        for (i, p), v in zip(todo, values, strict=True):
            if tuple(v.shape) != p.shape or v.dtype != p.dtype:
                raise LeafInitError(
                    f"{p.init!r} (chosen by {p.source}) returned shape {tuple(v.shape)} and "
                    f"dtype {v.dtype} for leaf {p.path!r}, which has shape {p.shape} and dtype "
                    f"{p.dtype}. An initializer must return exactly the requested shape and "
                    "dtype.", path=p.path)
            leaves[i] = v
        return flat.unflatten(leaves)

    def plan(self, tree: PyTree) -> dict[str, LeafPlan]:
        """Returns, for every array leaf of ``tree``, how this initializer would treat it.

        Nothing is computed: this is the same Python-side matching and resolution that a call
        performs (and raises the same :class:`jinit.RuleError` s). :func:`jinit.summary` uses it
        to show each leaf's initializer.

        Examples:
          >>> import jax, jax.numpy as jnp, jinit
          >>> init = jinit.rules((".*/bias", jinit.zeros), default=jinit.lecun_normal())
          >>> spec = {"dense": {"kernel": jax.ShapeDtypeStruct((4, 2), jnp.float32),
          ...                   "bias": jax.ShapeDtypeStruct((2,), jnp.float32)}}
          >>> for path, p in init.plan(spec).items():
          ...     print(path, p.source)
          dense/bias rule 0 ('.*/bias')
          dense/kernel default
        """
        flat = flatten(tree)
        return {p.path: p for p in self._plan(flat, tree) if p is not None}

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, flat: FlatTree, tree: PyTree) -> list[LeafPlan | None]:
        matchers = [r.selector.prepare(tree) for r in self.rules]
        parts = [(s.prepare(tree), spec) for s, spec in self.partition]
        chosen = [0] * len(self.rules)
        plans: list[LeafPlan | None] = [None] * len(flat.leaves)
        uncovered: list[str] = []
        ctx_maps: list[Any] = []  # lazily built (siblings, tree) maps for layer-aware rules
        for i, (path, leaf) in enumerate(zip(flat.paths, flat.leaves, strict=True)):
            if not is_array_like(leaf):
                continue
            hit = None
            for j, m in enumerate(matchers):
                if _match(m, path, leaf, self.rules[j]):
                    hit = j
                    chosen[j] += 1
                    break
            target, source = ((self.rules[hit].init, f"rule {hit} {_short(self.rules[hit])}")
                              if hit is not None else (self.default, "default"))
            init = self._resolve(target, source, path, leaf, flat, ctx_maps)
            if init is None or init is keep:
                if is_abstract(leaf):
                    if target is None:
                        uncovered.append(_describe(path, leaf))
                        continue
                    raise RuleError(
                        f"{source} keeps leaf {_describe(path, leaf)}, but it is abstract "
                        "(jax.ShapeDtypeStruct): there is no value to keep. Give it an "
                        "initializer.")
                init, source = None, (source + " (keep)" if target is not None else "no rule")
            shape, dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
            plans[i] = LeafPlan(path, shape, dtype, init, hit, source,
                                self._sharding(path, leaf, parts) if init is not None else None)
        if uncovered:
            raise RuleError(
                f"no rule matches {len(uncovered)} abstract leaf(s) and no default was given: "
                f"{', '.join(uncovered[:_SAMPLE])}{' ...' if len(uncovered) > _SAMPLE else ''}."
                f"\nRules: {list(self.rules)}.\nAdd a rule for them or pass default=... "
                "(abstract leaves from jax.eval_shape have no value to keep).")
        _check_unique([p.path for p in plans if p is not None and p.init is not None])
        if self.strict:
            self._check_used(flat, chosen, matchers)
        return plans

    def _check_used(self, flat: FlatTree, chosen: list[int], matchers: list[Any]) -> None:
        for j, rule in enumerate(self.rules):
            if not rule.required or chosen[j]:
                continue
            arrays = [(p, x) for p, x in zip(flat.paths, flat.leaves, strict=True) if is_array_like(x)]
            matched = sum(_match(matchers[j], p, x, rule) for p, x in arrays)
            sample = [p for p, _ in arrays]
            shown = ", ".join(repr(p) for p in sample[:_SAMPLE])
            more = f" ... ({len(sample)} in all)" if len(sample) > _SAMPLE else ""
            why = ("matches no leaf" if not matched else
                   f"matches {matched} leaf(s), but earlier rules take all of them")
            raise RuleError(
                f"rule {j} {rule!r} {why} (strict=True).\nPaths of the tree: {shown}{more}.\n"
                "Fix the selector (strings are regexes fullmatched on these paths), or pass "
                "strict=False to allow rules that match nothing.")

    def _resolve(self, target: Any, source: str, path: str, leaf: Any, flat: FlatTree,
                 ctx_maps: list[Any]) -> Any:
        depth = 0
        while target is not None and target is not keep and hasattr(target, "resolve"):
            if not ctx_maps:
                ctx_maps.extend(_context_maps(flat))
            siblings_by_parent, everything = ctx_maps
            ctx = LeafContext(path, tuple(leaf.shape), np.dtype(leaf.dtype),
                              siblings_by_parent[path.rpartition("/")[0]], everything)
            try:
                target = target.resolve(ctx)
            except Exception as e:
                raise LeafInitError(
                    f"{target!r} ({source}) could not resolve an initializer for leaf "
                    f"{_describe(path, leaf)}: {e}", path=path) from e
            depth += 1
            if depth > 16:
                raise RuleError(f"{source}: layer-aware initializers resolve in a cycle.")
        return target

    def _sharding(self, path: str, leaf: Any, parts: list[tuple[Any, PartitionSpec]]) -> Any:
        for match, spec in parts:
            if match(path, leaf):
                sharding = NamedSharding(self.mesh, spec)
                _check_divisible(path, leaf, sharding)
                return sharding
        own = getattr(leaf, "sharding", None)
        if isinstance(own, NamedSharding):
            return own
        if self.mesh is not None:
            return NamedSharding(self.mesh, PartitionSpec())
        return None


def _check_key(key: Any) -> None:
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", (None,)))
    if dtype is not None and (
            (jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ())
            or (dtype == np.uint32 and shape == (2,))):
        return
    raise DTypeError(
        f"a tree initializer needs a PRNG key as its first argument (jax.random.key(0)); got "
        f"{key!r}. Call it as tree_init(key, tree); for several keys, jax.vmap over them.")


def _check_unique(paths: list[str]) -> None:
    """Two initialized leaves with one path would get the same key, hence the same values."""
    seen: set[str] = set()
    dups = sorted({p for p in paths if p in seen or seen.add(p)})
    if dups:
        raise RuleError(
            f"several leaves have the path {', '.join(map(repr, dups[:_SAMPLE]))} (a dict key "
            "containing '/' reads like a nested path; keys 1 and '1' read alike), so selectors "
            "cannot tell them apart and they would get the same key and identical values. "
            "Rename the keys so that every path is unique.")


def _match(m: Callable[[str, Any], bool], path: str, leaf: Any, rule: Rule) -> bool:
    try:
        return bool(m(path, leaf))
    except RuleError:
        raise
    except Exception as e:
        raise RuleError(
            f"the selector of rule {rule!r} raised on leaf {_describe(path, leaf)}: {e}") from e


def _short(rule: Rule) -> str:
    sel = rule.selector
    return f"({sel.pattern!r})" if isinstance(sel, _select.PathRegex) else f"({sel!r})"


def _describe(path: str, leaf: Any) -> str:
    return f"{path!r} (shape={tuple(leaf.shape)}, dtype={np.dtype(leaf.dtype)})"


def _context_maps(flat: FlatTree) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    by_parent: dict[str, dict[str, Any]] = {}
    everything: dict[str, Any] = {}
    for path, leaf in zip(flat.paths, flat.leaves, strict=True):
        if is_array_like(leaf):
            struct = jax.ShapeDtypeStruct(tuple(leaf.shape), leaf.dtype)
            parent, _, name = path.rpartition("/")
            by_parent.setdefault(parent, {})[name] = struct
            everything[path] = struct
    return by_parent, everything


def _check_divisible(path: str, leaf: Any, sharding: NamedSharding) -> None:
    spec = tuple(sharding.spec)
    if len(spec) > len(leaf.shape):
        raise RuleError(
            f"partition spec {sharding.spec} has {len(spec)} entries but leaf "
            f"{_describe(path, leaf)} has only {len(leaf.shape)} dimensions.")
    sizes = dict(zip(sharding.mesh.axis_names, sharding.mesh.devices.shape, strict=True))
    for dim, axes in zip(leaf.shape, spec, strict=False):
        if axes is None:
            continue
        n = int(np.prod([sizes[a] for a in ((axes,) if isinstance(axes, str) else axes)]))
        if dim % n:
            raise RuleError(
                f"partition spec {sharding.spec} splits a dimension of size {dim} of leaf "
                f"{_describe(path, leaf)} into {n} shards, which does not divide it. Use a "
                "spec that divides the shape, or replicate that dimension (None).")


def _diagnose(key: PRNGKey, todo: list[tuple[int, LeafPlan]], error: Exception) -> None:
    """Finds the leaf whose initializer raised ``error`` and raises a LeafInitError for it."""
    key_struct = jax.ShapeDtypeStruct(np.shape(key), key.dtype)
    for _, p in todo:
        try:
            jax.eval_shape(lambda k, p=p: p.init(k, p.shape, p.dtype), key_struct)
        except Exception as e:
            raise LeafInitError(
                f"{p.init!r} (chosen by {p.source}) failed on leaf {_describe(p.path, p)}: "
                f"{type(e).__name__}: {e}", path=p.path) from e


def _unknown_path_message(path: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(path, known, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = ", ".join(map(repr, list(known)[:_SAMPLE]))
    more = f" ... ({len(known)} in all)" if len(known) > _SAMPLE else ""
    return f"no leaf at path {path!r}.{hint}\nPaths of the tree: {shown}{more}."


# --- public constructors ----------------------------------------------------------------------


def _as_init(init: Any, where: str) -> Any:
    if init is None or init is keep or isinstance(init, LayerAware) or callable(init):
        return init
    raise RuleError(
        f"{where}: {init!r} is not an initializer; pass a (key, shape, dtype) callable such as "
        "jinit.normal(), a layer-aware jinit.contextual(...), or jinit.keep.")


def _to_rules(items: Iterable[Any]) -> tuple[tuple[Rule, ...], Any]:
    out: list[Rule] = []
    inner_default = None
    for n, item in enumerate(items):
        if isinstance(item, Rules):
            out.extend(dataclasses.replace(r, required=r.required and item.strict)
                       for r in item.rules)
            inner_default = inner_default if inner_default is not None else item.default
        elif isinstance(item, Rule):
            out.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            sel, init = item
            if init is None:
                raise RuleError(f"rule {n} {item!r}: the initializer is None; use jinit.keep "
                                "to leave leaves unchanged.")
            out.append(Rule(_select.to_selector(sel), _as_init(init, f"rule {n}")))
        else:
            raise RuleError(
                f"rule {n} must be a (selector, initializer) pair or a jinit.rules(...) object; "
                f"got {item!r}.")
    return tuple(out), inner_default


def rules(
    *pairs: tuple[Any, Any] | Rules,
    default: Any = None,
    strict: bool = True,
    mesh: Mesh | None = None,
    partition: Sequence[tuple[Any, PartitionSpec]] = (),
) -> Rules:
    """Builds a tree initializer from ``(selector, initializer)`` rules: first match wins.

    Selectors are regex strings fullmatched on the "/"-joined path (:func:`jinit.paths` lists
    them), :mod:`jinit.select` helpers, or callables ``(path, leaf) -> bool``. Initializers are
    any ``(key, shape, dtype)`` callable (jinit, ``jax.nn.initializers``, Flax), a layer-aware
    :func:`jinit.contextual` object, or :data:`jinit.keep`. Another ``jinit.rules(...)`` object
    may appear among the pairs: its rules are spliced in at that position (keeping its
    strictness) and its default applies when this one has none, so framework presets
    (``jinit.compat.torch.defaults()``) combine with overrides.

    Each leaf's key is ``jinit.leaf_key(key, path)``: it depends on the path only, so adding,
    removing or reordering leaves or rules never changes another leaf's value.

    Leaves that no rule matches get ``default``. Without a default, concrete leaves are
    returned unchanged (the same object) and abstract leaves (``jax.ShapeDtypeStruct``)
    raise :class:`jinit.RuleError`. Non-array leaves (functions, ``None``) are never touched.
    The output has the input's structure and container types (``dict``, ``FrozenDict``,
    ``nnx.State``, equinox modules, ...); the input is never modified.

    Args:
      *pairs: ``(selector, initializer)`` rules in priority order, or ``Rules`` objects.
      default: initializer for leaves no rule matches.
      strict: raise :class:`jinit.RuleError` if a rule initializes no leaf (a typo in a
        pattern, or a rule shadowed by an earlier one).
      mesh: a ``jax.sharding.Mesh``; every created value is placed on it (replicated unless a
        ``partition`` rule says otherwise).
      partition: ``(selector, PartitionSpec)`` pairs, first match wins, e.g.
        ``[(".*/(q|k|v)/kernel", P(None, "model")), (".*embedding", P("model", None))]``.
        Spec leaves that carry a ``NamedSharding`` keep it unless a partition rule matches.
        With shardings, the values are created in one jitted program with those
        ``out_shardings``: each device materializes only its shard, bit-identical to the
        unsharded result.

    Returns:
      A :class:`Rules` tree initializer; ``.plan(tree)`` shows each leaf's initializer.

    Raises:
      RuleError: for malformed rules here, and at call time for unused rules (strict),
        uncovered abstract leaves, or partition specs that do not fit.
      LeafInitError: at call time, when an initializer fails on a leaf (names the path,
        shape, dtype and the rule).

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> init = jinit.rules((r".*/bias", jinit.zeros),
      ...                    (r".*/kernel", jinit.he_normal()))
      >>> spec = {"Dense_0": {"kernel": jax.ShapeDtypeStruct((4, 8), jnp.float32),
      ...                     "bias": jax.ShapeDtypeStruct((8,), jnp.float32)}}
      >>> params = init(jax.random.key(0), spec)
      >>> jax.tree.map(jnp.shape, params)
      {'Dense_0': {'bias': (8,), 'kernel': (4, 8)}}

      Ensembles are a ``vmap`` over keys:

      >>> keys = jax.random.split(jax.random.key(0), 5)
      >>> jax.vmap(lambda k: init(k, spec))(keys)["Dense_0"]["kernel"].shape
      (5, 4, 8)
    """
    rule_list, inner_default = _to_rules(pairs)
    default = _as_init(default if default is not None else inner_default, "default")
    if not isinstance(strict, bool):
        raise RuleError(f"strict must be True or False; got strict={strict!r}.")
    if mesh is not None and not isinstance(mesh, Mesh):
        raise RuleError(f"mesh must be a jax.sharding.Mesh; got {mesh!r}.")
    parts = []
    for n, item in enumerate(partition):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise RuleError(f"partition rule {n} must be a (selector, PartitionSpec) pair; "
                            f"got {item!r}.")
        sel, spec = item
        if spec is None or isinstance(spec, (tuple, list)):
            spec = PartitionSpec(*(spec or ()))
        if not isinstance(spec, PartitionSpec):
            raise RuleError(f"partition rule {n}: {spec!r} is not a PartitionSpec.")
        parts.append((_select.to_selector(sel), spec))
    if parts and mesh is None:
        raise RuleError("partition=... needs mesh=...: a PartitionSpec names axes of a mesh.")
    if mesh is not None:
        for sel, spec in parts:
            for axes in spec:
                for a in (() if axes is None else (axes,) if isinstance(axes, str) else axes):
                    if a not in mesh.axis_names:
                        raise RuleError(
                            f"partition rule ({sel!r}, {spec}) names mesh axis {a!r}, but the "
                            f"mesh has axes {tuple(mesh.axis_names)}.")
    return Rules(rule_list, default, strict, mesh, tuple(parts))


def partition(
    inits: Mapping[Any, Any],
    labels: Any,
    *,
    strict: bool = True,
) -> Rules:
    """Initializes leaves by label, with ``optax.partition``'s label contract.

    A thin preset over :func:`rules`: one :func:`jinit.select.label` rule per label.

    Args:
      inits: label -> initializer (or :data:`jinit.keep`).
      labels: a label pytree (the params' structure or a prefix of it) or ``params -> labels``.
      strict: as in :func:`rules`; also, labels used by the tree but missing from ``inits``
        raise :class:`jinit.RuleError`.

    Returns:
      A :class:`Rules` tree initializer.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> params = {"enc": jnp.ones((2, 2)), "head": jnp.ones((2, 1))}
      >>> init = jinit.partition({"train": jinit.zeros, "frozen": jinit.keep},
      ...                        {"enc": "frozen", "head": "train"})
      >>> out = init(jax.random.key(0), params)
      >>> float(out["enc"].sum()), float(out["head"].sum())
      (4.0, 0.0)
    """
    if not isinstance(inits, Mapping):
        raise RuleError(f"jinit.partition needs a mapping label -> initializer; got {inits!r}.")
    pairs = [(_LabelCheck(labels, tuple(inits)) if n == 0 else _select.label(labels, lbl), init)
             for n, (lbl, init) in enumerate(inits.items())]
    return rules(*pairs, strict=strict)


@dataclasses.dataclass(frozen=True)
class _LabelCheck(_select.Label):
    """The first label rule of :func:`partition`: also checks every label has an initializer."""

    def prepare(self, tree: Any) -> Callable[[str, Any], bool]:
        by_path = _select.label_map(self.labels, tree)
        missing = {lbl for lbl in by_path.values() if lbl is not None} - set(self.wanted)
        if missing:
            raise RuleError(
                "some parameters have labels without an initializer.\n"
                f"Labels in the tree: {sorted(map(repr, set(by_path.values())))}\n"
                f"Initializers given for: {sorted(map(repr, self.wanted))}")
        first = self.wanted[0]
        return lambda path, leaf: by_path.get(path) == first

    def __repr__(self) -> str:
        return f"Label(wanted={self.wanted[:1]!r})"

    def __hash__(self) -> int:
        return hash((id(self.labels), self.wanted))


def paths(tree: PyTree, selector: Any = None) -> list[str]:
    """Lists the paths that selectors see: one "/"-joined string per array leaf.

    Args:
      tree: any pytree (arrays or ``jax.ShapeDtypeStruct`` leaves).
      selector: optionally, only the paths it selects.

    Examples:
      >>> import jax.numpy as jnp, jinit
      >>> jinit.paths({"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
      ...              "layers": [jnp.ones(3)]})
      ['Dense_0/bias', 'Dense_0/kernel', 'layers/0']
      >>> jinit.paths({"a": {"w": jnp.ones(2)}, "b": {"w": jnp.ones(2)}}, "a/.*")
      ['a/w']
    """
    flat = flatten(tree)
    idx = flat.array_indices()
    if selector is None:
        return [flat.paths[i] for i in idx]
    match = _select.to_selector(selector).prepare(tree)
    return [flat.paths[i] for i in idx if match(flat.paths[i], flat.leaves[i])]

