"""Tree initializers: ``jinit.rules`` and the layer-aware rule mechanism.

``rules(*(selector, initializer), default=None, strict=True)`` returns a :class:`Rules`, a
``(key, tree) -> tree`` callable. Matching and resolution run in Python on
paths, shapes and dtypes only, once per call; the values are computed by
:func:`jinit._engine.init_leaves` from a list of plain :class:`~jinit._engine.LeafTask`, so a
tree initializer is traceable under ``jax.jit``, ``jax.vmap`` and ``jax.eval_shape``.

Layer-aware initializers (torch's bias bound depends on the sibling weight's fan-in) are
objects with ``resolve(ctx: LeafContext) -> initializer``; :func:`contextual` builds one from a
function. They are resolved during planning, so the engine only ever sees plain initializers.

Stacked leaves (``nn.scan``/``nn.vmap`` layers, see :mod:`jinit._layer_axes`) are planned per
layer: selectors of layer kinds and layer-aware initializers see one layer's shapes, and the
resolved initializer is wrapped in :func:`jinit.stacked` over the leaf's layer axes.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jinit import _layer_axes
from jinit import select as _select
from jinit._combinators import Stacked, layer_axes_tuple
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
      shape: its shape; for a stacked leaf (known layer axes), one layer's shape.
      dtype: its dtype.
      siblings: the array leaves sharing its parent (its layer), by name, as
        ``jax.ShapeDtypeStruct`` (the leaf itself included; per-layer shapes).
      tree: every array leaf of the tree, by path, as ``jax.ShapeDtypeStruct`` (per-layer
        shapes).
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
      layer_axes: the leaf's layer axes (``()``: not stacked); ``init`` is then a
        :func:`jinit.stacked` of the per-layer initializer.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    init: Any
    rule: int | None
    source: str
    sharding: Any = None
    layer_axes: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Rules:
    """A tree initializer ``(key, tree) -> tree`` built by :func:`jinit.rules`.

    Attributes:
      rules: the rules, in priority order (first match wins).
      default: the initializer of leaves that no rule matches (``None``: keep concrete leaves,
        reject abstract ones).
      strict: whether a rule (init, partition or layer-axis) that matches no leaf raises.
      mesh, partition, logical_axis_rules: sharding of the created values (see
        :func:`jinit.rules`).
      layer_axis: ``(selector, axes)`` pairs giving the layer axes of stacked leaves.
    """

    rules: tuple[Rule, ...]
    default: Any = None
    strict: bool = True
    mesh: Mesh | None = None
    partition: tuple[tuple[_select.Predicate, PartitionSpec], ...] = ()
    layer_axis: tuple[tuple[_select.Predicate, Any], ...] = ()
    logical_axis_rules: tuple[tuple[str, Any], ...] | None = None

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
        infos = _layer_axes.boxes(tree)
        axes, settled = self._layer_axes(flat, tree, infos)
        shapes = tuple((flat.paths[i], _layer_axes.per_layer(
            tuple(flat.leaves[i].shape), axes.get(flat.paths[i], ())))
            for i in flat.array_indices())
        with _layer_axes.planning(tree, shapes):
            plans = self._plan_leaves(flat, tree, axes, infos)
        _warn_unexplained(shapes, plans, axes, settled)
        return plans

    def _plan_leaves(self, flat: FlatTree, tree: PyTree, axes: Mapping[str, tuple[int, ...]],
                     infos: Mapping[str, _layer_axes.BoxInfo]) -> list[LeafPlan | None]:
        matchers = [r.selector.prepare(tree) for r in self.rules]
        parts = [(s.prepare(tree), spec) for s, spec in self.partition]
        chosen = [0] * len(self.rules)
        parts_used = [0] * len(parts)
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
            part = _first(parts, path, leaf, self.partition)
            if part is not None:
                parts_used[part] += 1
            target, source = ((self.rules[hit].init, f"rule {hit} {_short(self.rules[hit])}")
                              if hit is not None else (self.default, "default"))
            layer = axes.get(path, ())
            init = self._resolve(target, source, path, leaf, flat, ctx_maps, axes)
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
            elif layer:
                init, source = Stacked(init, layer), f"{source}, per layer (axis {_axes_str(layer)})"
            shape, dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
            sharding = None if init is None else self._sharding(
                path, leaf, parts[part][1] if part is not None else None, infos.get(path))
            plans[i] = LeafPlan(path, shape, dtype, init, hit, source, sharding, layer)
        if uncovered:
            raise RuleError(
                f"no rule matches {len(uncovered)} abstract leaf(s) and no default was given: "
                f"{', '.join(uncovered[:_SAMPLE])}{' ...' if len(uncovered) > _SAMPLE else ''}."
                f"\nRules: {list(self.rules)}.\nAdd a rule for them or pass default=... "
                "(abstract leaves from jax.eval_shape have no value to keep).")
        _check_unique([p.path for p in plans if p is not None and p.init is not None])
        if self.strict:
            _check_used(flat, [(f"rule {j}", r, r.selector, m, chosen[j])
                               for j, (r, m) in enumerate(zip(self.rules, matchers, strict=True))
                               if r.required])
            _check_used(flat, [(f"partition rule {j}", _Shown(sel, spec), sel, m, parts_used[j])
                               for j, ((sel, spec), (m, _)) in enumerate(
                                   zip(self.partition, parts, strict=True))])
        return plans

    def _layer_axes(self, flat: FlatTree, tree: PyTree,
                    infos: Mapping[str, _layer_axes.BoxInfo]
                    ) -> tuple[dict[str, tuple[int, ...]], set[str]]:
        """``{path: layer axes}`` of stacked leaves, and the paths whose axes are settled
        (explicit or found from the module), which are never warned about."""
        explicit = [(sel.prepare(tree), value) for sel, value in self.layer_axis]
        used = [0] * len(explicit)
        detected = _layer_axes.detected_axes()
        out: dict[str, tuple[int, ...]] = {}
        settled: set[str] = set()
        for i in flat.array_indices():
            path, leaf = flat.paths[i], flat.leaves[i]
            hit = _first(explicit, path, leaf, self.layer_axis)
            axes = None if hit is None else _explicit_axes(explicit[hit][1], infos.get(path))
            if hit is not None:
                used[hit] += 1
            if axes is not None:
                settled.add(path)
            elif path in detected:
                axes = detected[path]
                settled.add(path)
            else:
                axes = infos[path].layer_axes() if path in infos else ()
            axes = _normalize_axes(axes, path, leaf)
            if axes:
                out[path] = axes
        _inherit_named_axes(flat, out, settled)
        if self.strict:
            _check_used(flat, [(f"layer_axis rule {j}", _Shown(sel, value), sel, m, used[j])
                               for j, ((sel, value), (m, _)) in enumerate(
                                   zip(self.layer_axis, explicit, strict=True))])
        return out, settled

    def _resolve(self, target: Any, source: str, path: str, leaf: Any, flat: FlatTree,
                 ctx_maps: list[Any], axes: Mapping[str, tuple[int, ...]]) -> Any:
        depth = 0
        while target is not None and target is not keep and hasattr(target, "resolve"):
            if not ctx_maps:
                ctx_maps.extend(_context_maps(flat, axes))
            siblings_by_parent, everything = ctx_maps
            ctx = LeafContext(path, tuple(everything[path].shape), np.dtype(leaf.dtype),
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

    def _sharding(self, path: str, leaf: Any, spec: PartitionSpec | None,
                  info: _layer_axes.BoxInfo | None) -> Any:
        if spec is None and info is not None and self.mesh is not None:
            spec = _box_spec(path, leaf, info, self.mesh, self.logical_axis_rules)
        if spec is not None:
            sharding = NamedSharding(self.mesh, spec)
            _check_divisible(path, leaf, sharding)
            return sharding
        own = getattr(leaf, "sharding", None)
        if isinstance(own, NamedSharding):
            return own
        if self.mesh is not None:
            return NamedSharding(self.mesh, PartitionSpec())
        return None


@dataclasses.dataclass(frozen=True)
class _Shown:
    """A ``(selector, value)`` pair shown in errors as the user wrote it."""

    selector: Any
    value: Any

    def __repr__(self) -> str:
        sel = self.selector
        shown = repr(sel.pattern) if isinstance(sel, _select.PathRegex) else repr(sel)
        return f"({shown}, {self.value!r})"


def _first(matchers: Sequence[tuple[Any, Any]], path: str, leaf: Any,
           shown: Sequence[tuple[Any, Any]]) -> int | None:
    """Index of the first ``(match, value)`` pair selecting the leaf, or ``None``."""
    for j, (m, _) in enumerate(matchers):
        if _match(m, path, leaf, _Shown(*shown[j])):
            return j
    return None


def _inherit_named_axes(flat: FlatTree, out: dict[str, tuple[int, ...]], settled: set[str]
                        ) -> None:
    """Unboxed siblings of leaves with a named layer axis share it (one stacked module).

    ``nn.scan`` stacks every param of the scanned module, but only boxed ones carry names:
    a bias without ``with_partitioning`` next to a kernel named ``("layers", ...)`` is
    stacked along the same leading axes when their sizes agree.
    """
    by_parent: dict[str, list[tuple[str, Any]]] = {}
    for i in flat.array_indices():
        by_parent.setdefault(flat.paths[i].rpartition("/")[0], []).append(
            (flat.paths[i], flat.leaves[i]))
    for leaves in by_parent.values():
        known = {(out[p], tuple(x.shape[a] for a in out[p])) for p, x in leaves if p in out}
        if len(known) != 1:
            continue
        ((axes, sizes),) = known
        for p, x in leaves:
            if p not in out and p not in settled and len(x.shape) > max(axes) and tuple(
                    x.shape[a] for a in axes) == sizes:
                out[p] = axes


def _axes_str(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else str(axes)


def _explicit_axes(value: Any, info: _layer_axes.BoxInfo | None) -> tuple[int, ...] | None:
    """The axes a ``layer_axis`` value gives a leaf: ints, ``None`` (not stacked), or axis
    names looked up in the leaf's partition names (``None`` if it lacks them: then the
    automatic axes apply, e.g. an unboxed bias shares its boxed kernel's)."""
    if value is None:
        return ()
    names = value if isinstance(value, (tuple, list)) and value and all(
        isinstance(v, str) for v in value) else (value,) if isinstance(value, str) else None
    if names is None:
        return value
    known = info.names if info is not None else ()
    if any(n not in known for n in names):
        return None
    return tuple(known.index(n) for n in names)


def _normalize_axes(axes: Any, path: str, leaf: Any) -> tuple[int, ...]:
    nd = len(leaf.shape)
    out = () if axes == () else layer_axes_tuple(axes, f"layer axes of leaf {path!r}")
    bad = [a for a in out if not -nd <= a < nd]
    if bad or len({a % nd for a in out}) != len(out):
        raise RuleError(
            f"layer axes {axes!r} do not fit leaf {_describe(path, leaf)} ({nd} axes). Give "
            "the stacked axes of this leaf (e.g. 0 for nn.scan(variable_axes={'params': 0})).")
    return tuple(sorted(a % nd for a in out))


def _box_spec(path: str, leaf: Any, info: _layer_axes.BoxInfo, mesh: Mesh,
              logical_rules: Any) -> PartitionSpec:
    """The PartitionSpec of a boxed leaf: its names, through logical axis rules if logical."""
    names = info.names
    if info.logical:
        rules_ = logical_rules if logical_rules is not None else info.rules
        if rules_ is None:
            spmd = sys.modules.get("flax.linen.spmd")
            rules_ = tuple(spmd.get_logical_axis_rules()) if spmd is not None else ()
        if rules_:
            from flax.linen import spmd  # noqa: PLC0415  (boxes mean Flax is imported)

            names = tuple(spmd.logical_to_mesh_axes(names, rules_))
        elif not all(_in_mesh(n, mesh) for n in names):
            raise RuleError(
                f"leaf {_describe(path, leaf)} has logical axis names {info.names}, but no "
                "logical axis rules are given to map them to the mesh axes "
                f"{tuple(mesh.axis_names)}. Pass logical_axis_rules=[(name, mesh axis or None), "
                "...] to jinit.rules, or call it inside `with nn.logical_axis_rules(...)`.")
    names = names + (None,) * (len(leaf.shape) - len(names))
    for n in names:
        if not _in_mesh(n, mesh):
            raise RuleError(
                f"leaf {_describe(path, leaf)} is partitioned as {tuple(names)}, which names "
                f"axes the mesh lacks (mesh axes: {tuple(mesh.axis_names)}). Map its names to "
                "mesh axes with logical_axis_rules=..., or use a mesh with those axes.")
    return PartitionSpec(*names)


def _in_mesh(name: Any, mesh: Mesh) -> bool:
    parts = () if name is None else (name,) if isinstance(name, str) else tuple(name)
    return all(p in mesh.axis_names for p in parts)


def _check_used(flat: FlatTree, rules_: Sequence[tuple[str, Any, Any, Any, int]]) -> None:
    """Raises for the first rule ``(label, shown, selector, match, uses)`` that was never used."""
    for label, shown, selector, match, uses in rules_:
        if uses:
            continue
        arrays = [(p, x) for p, x in zip(flat.paths, flat.leaves, strict=True)
                  if is_array_like(x)]
        matched = sum(_match(match, p, x, shown) for p, x in arrays)
        paths_ = [p for p, _ in arrays]
        why = ("matches no leaf" if not matched else
               f"matches {matched} leaf(s), but earlier rules take all of them")
        close = _close_paths(selector, paths_) if not matched else []
        hint = f"\nDid you mean {', '.join(map(repr, close))}?" if close else ""
        more = f" ... ({len(paths_)} in all)" if len(paths_) > _SAMPLE else ""
        raise RuleError(
            f"{label} {shown!r} {why} (strict=True).\nPaths of the tree: "
            f"{', '.join(map(repr, paths_[:_SAMPLE]))}{more}.{hint}\nFix the selector (strings are "
            "regexes fullmatched on these paths), or pass strict=False to allow rules that "
            "match nothing.")


def _close_paths(selector: Any, paths_: Sequence[str]) -> list[str]:
    """Paths a regex selector probably meant (a typo such as ``.*/kernal``)."""
    if not isinstance(selector, _select.PathRegex):
        return []
    literal = re.sub(r"\.\*|\.\+|[\\^$()?+*\[\]|]", "", selector.pattern)
    if not literal:
        return []
    n = len(literal)

    def score(path: str) -> float:
        return max(difflib.SequenceMatcher(None, literal, part).ratio()
                   for part in (path, path[-n:], path[:n]))

    ranked = sorted(((score(p), p) for p in paths_), key=lambda t: -t[0])
    return [p for s, p in ranked if s >= 0.75][:5]


def _warn_unexplained(shapes: _layer_axes.Shapes, plans: Sequence[LeafPlan | None],
                      axes: Mapping[str, tuple[int, ...]], settled: set[str]) -> None:
    """Warns about initialized leaves that look stacked but have no layer axis."""
    suspects = _layer_axes.unexplained(shapes)
    hits = [p for p in plans if p is not None and p.init is not None and p.path in suspects
            and p.path not in settled and p.path not in axes]
    if not hits:
        return
    first = hits[0]
    parts = [p.path.split("/")[:-1] for p in hits]
    module = "/".join(t[0] for t in itertools.takewhile(
        lambda t: len(set(t)) == 1, zip(*parts, strict=False)))
    pattern = f"{re.escape(module)}/.*" if module else re.escape(first.path)
    shown = ", ".join(f"{p.path!r} {p.shape}" for p in hits[:_SAMPLE])
    warnings.warn(
        f"{len(hits)} leaf(s) have more axes than their layer explains ({suspects[first.path]}): "
        f"{shown}{' ...' if len(hits) > _SAMPLE else ''}. If an axis stacks layers (nn.scan, "
        "nn.vmap, nnx.vmap), they are initialized per layer only once the axis is known: pass "
        f"layer_axis=[({pattern!r}, 0)] to jinit.rules (0: the stacked axis), initialize "
        "through jinit.flax.init(module, ...), which reads nn.scan/nn.vmap's axes, or name the "
        "axis 'layers' (metadata_params={nn.PARTITION_NAME: 'layers'} on partitioned params). "
        f"If no axis stacks layers, say so with layer_axis=[({pattern!r}, None)].",
        _layer_axes.LayerAxisWarning, stacklevel=4)


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


def _context_maps(flat: FlatTree, axes: Mapping[str, tuple[int, ...]]
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per-layer shapes of every array leaf, by parent and by path (for layer-aware rules)."""
    by_parent: dict[str, dict[str, Any]] = {}
    everything: dict[str, Any] = {}
    for path, leaf in zip(flat.paths, flat.leaves, strict=True):
        if is_array_like(leaf):
            shape = _layer_axes.per_layer(tuple(leaf.shape), axes.get(path, ()))
            struct = jax.ShapeDtypeStruct(shape, leaf.dtype)
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


def _to_rules(items: Iterable[Any]) -> tuple[tuple[Rule, ...], Any, tuple[Any, ...]]:
    out: list[Rule] = []
    inner_default = None
    inner_axes: list[Any] = []
    for n, item in enumerate(items):
        if isinstance(item, Rules):
            out.extend(dataclasses.replace(r, required=r.required and item.strict)
                       for r in item.rules)
            inner_default = inner_default if inner_default is not None else item.default
            inner_axes.extend(item.layer_axis)
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
    return tuple(out), inner_default, tuple(inner_axes)


def _layer_axis_pairs(layer_axis: Any) -> tuple[tuple[_select.Predicate, Any], ...]:
    """Validates ``layer_axis=``: axes for every leaf, or ``(selector, axes)`` pairs."""
    if layer_axis is None:
        return ()
    if isinstance(layer_axis, (int, str)) or (
            isinstance(layer_axis, (tuple, list)) and layer_axis
            and all(isinstance(a, (int, str)) for a in layer_axis)):
        layer_axis = [(".*", layer_axis)]
    out = []
    for n, item in enumerate(layer_axis if isinstance(layer_axis, (tuple, list)) else [None]):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise RuleError(
                f"layer_axis must be an axis (int), an axis name, or a list of (selector, axis) "
                f"pairs such as [('ScanBlock_0/.*', 0)]; got layer_axis={layer_axis!r} (item "
                f"{n}: {item!r}).")
        sel, axes = item
        if axes is not None and not (isinstance(axes, str) or (
                isinstance(axes, (tuple, list)) and all(isinstance(a, str) for a in axes)
                and axes)):
            checked = layer_axes_tuple(axes, f"layer_axis rule {n}")
            axes = checked if isinstance(axes, (tuple, list)) else checked[0]
        out.append((_select.to_selector(sel), tuple(axes) if isinstance(axes, list) else axes))
    return tuple(out)


def rules(
    *pairs: tuple[Any, Any] | Rules,
    default: Any = None,
    strict: bool = True,
    mesh: Mesh | None = None,
    partition: Sequence[tuple[Any, PartitionSpec]] = (),
    layer_axis: Any = None,
    logical_axis_rules: Sequence[tuple[str, Any]] | None = None,
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

    **Stacked layers** (``nn.scan``, ``nn.vmap``, ``nnx.vmap``: a ``(L, in, out)`` kernel) are
    initialized per layer: the rules see one layer (layer-aware initializers and layer-kind
    selectors get per-layer shapes), and the leaf's initializer runs on every slice with
    :func:`jinit.stacked` (fans of one layer, an independent draw per slice keyed by
    ``fold_in(leaf_key, layer_index)``). A leaf's layer axes come from ``layer_axis``, else from
    the module (``jinit.flax.init`` reads ``nn.scan``/``nn.vmap``'s ``variable_axes``), else
    from Flax partition names (an axis named ``"layers"``, as
    ``metadata_params={nn.PARTITION_NAME: "layers"}`` names it). A leaf with more axes than
    its layer explains and no known layer axis triggers a :class:`jinit.LayerAxisWarning`
    that says what to write.

    Leaves that no rule matches get ``default``. Without a default, concrete leaves are
    returned unchanged (the same object) and abstract leaves (``jax.ShapeDtypeStruct``)
    raise :class:`jinit.RuleError`. Non-array leaves (functions, ``None``) are never touched.
    The output has the input's structure and container types (``dict``, ``FrozenDict``,
    ``nnx.State``, equinox modules, ...); the input is never modified.

    Args:
      *pairs: ``(selector, initializer)`` rules in priority order, or ``Rules`` objects.
      default: initializer for leaves no rule matches.
      strict: raise :class:`jinit.RuleError` if a rule initializes no leaf (a typo in a
        pattern, or a rule shadowed by an earlier one), and likewise for ``partition`` and
        ``layer_axis`` rules.
      mesh: a ``jax.sharding.Mesh``; every created value is placed on it (replicated unless a
        ``partition`` rule says otherwise).
      partition: ``(selector, PartitionSpec)`` pairs, first match wins, e.g.
        ``[(".*/(q|k|v)/kernel", P(None, "model")), (".*embedding", P("model", None))]``.
        Spec leaves that carry a ``NamedSharding`` keep it unless a partition rule matches.
        With shardings, the values are created in one jitted program with those
        ``out_shardings``: each device materializes only its shard, bit-identical to the
        unsharded result. Boxed leaves with axis names (``nn.Partitioned``: mesh axes;
        ``nn.LogicallyPartitioned`` and nnx variables with ``out_sharding``: logical names)
        are sharded by their names when no partition rule matches them; the boxes are kept.
      layer_axis: the layer axes of stacked leaves: an int (or tuple, or axis name) for every
        leaf, or ``(selector, axes)`` pairs, first match wins, e.g.
        ``[("ScanBlock_0/.*", 0)]``; ``axes`` is an int, a tuple of ints (nested stacks), an
        axis name of the leaf's partition names (``"layers"``; leaves without that name keep
        their automatic axes), or ``None`` (not stacked: also silences the warning).
      logical_axis_rules: ``(logical name, mesh axis or None)`` pairs mapping logical
        partition names to the mesh (default: the rules of an enclosing
        ``with nn.logical_axis_rules(...)``, or the box's own).

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
    rule_list, inner_default, inner_axes = _to_rules(pairs)
    axis_pairs = _layer_axis_pairs(layer_axis) + inner_axes
    if logical_axis_rules is not None:
        try:
            logical_axis_rules = tuple((str(n), m) for n, m in logical_axis_rules)
        except (TypeError, ValueError) as e:
            raise RuleError(
                "logical_axis_rules must be (logical name, mesh axis or None) pairs, e.g. "
                f"[('embed', None), ('mlp', 'model')]; got {logical_axis_rules!r}.") from e
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
    return Rules(rule_list, default, strict, mesh, tuple(parts), axis_pairs, logical_axis_rules)


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

