"""The Flax side of a port: a variables tree read into layers, and their hyper-parameters.

Layers come out in an order that does not depend on dict key order (``jax.tree.map``, optax and
checkpoint libraries re-sort keys): at each level, the layers held directly come first, then the
containers, each in natural order (``Dense_2`` before ``Dense_10``). An ``nnx.Module`` gives its
own creation order instead (its attribute order).

Hyper-parameters that the tree does not hold (eps, momentum, ...) are resolved per layer with
their origin, which every message quotes: the ``hparams`` argument (exact layer path, then
regular-expression keys, then ``"*"``), the ``source=`` module, the parameter shapes, or, last,
the Flax default, reported as an assumption.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from collections.abc import Mapping
from typing import Any

from jinit._errors import InteropError, PathError, RuleError
from jinit.interop import _layers, _layouts
from jinit.interop._layouts import Spec

_COLLECTIONS = ("params", "batch_stats")
#: linen's automatic names: ``ClassName_N``
_AUTO = re.compile(r"[A-Z][A-Za-z0-9]*_\d+")


@dataclasses.dataclass(frozen=True)
class Value:
    """A hyper-parameter value and where it came from."""

    value: Any
    origin: str  # "hparams[...]", "source module (...)", "parameter shapes", "assumed ..."

    @property
    def assumed(self) -> bool:
        return self.origin.startswith("assumed")


@dataclasses.dataclass
class _Leaf:
    value: Any
    keys: tuple[str, ...]  # full location in the variables tree (collection first for linen)


@dataclasses.dataclass
class FlaxLayer:
    """One parameterised Flax layer: its path, class, slots (canonical names) and module."""

    path: str
    cls: str | None
    leaves: dict[str, Any]
    keys: dict[str, tuple[str, ...]]  # slot -> location in the variables tree
    parts: tuple[str, ...] = ()
    locate: Any = None  # () -> the Flax module object, when a source module was given

    @functools.cached_property
    def module(self) -> Any:
        """The layer's Flax module (found on first use: linen runs ``setup`` to find it)."""
        return self.locate() if self.locate is not None else None

    @functools.cached_property
    def specs(self) -> dict[str, Spec]:
        return {k: _layouts.spec_of(v) for k, v in self.leaves.items()}

    @property
    def label(self) -> str:
        return self.path or "(root)"

    @property
    def auto(self) -> tuple[bool, ...]:
        return tuple(bool(_AUTO.fullmatch(p)) for p in self.parts)

    def source(self, slot: str) -> str:
        return "/".join(self.keys[slot])


def _natural(key: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key.lower()))


def _is_layer(node: Any) -> bool:
    return isinstance(node, dict) and all(isinstance(v, _Leaf) for v in node.values())


def _canonical(node: Mapping[str, Any]) -> list[str]:
    """Children in an order independent of the dict's: layers held directly first, then
    containers, each in natural order."""
    return sorted(node, key=lambda k: (not _is_layer(node[k]), _natural(k)))


def _describe_leaf(x: Any) -> str:
    return "None" if x is None else type(x).__name__


def _merge(roots: list[tuple[tuple[str, ...], Mapping]], caller: str) -> dict:
    merged: dict = {}

    def put(dst: dict, node: Mapping, keys: tuple[str, ...]):
        for k in node:
            v = node[k]
            path = keys + (str(k),)
            if isinstance(v, Mapping):
                put(dst.setdefault(str(k), {}), v, path)
                continue
            if not (hasattr(v, "shape") and hasattr(v, "dtype")):
                raise InteropError(f"{caller}: leaf {'/'.join(path)!r} is a {_describe_leaf(v)}, not an array; "
                                   "pass the variables tree as returned by init (arrays at every leaf)")  # fmt: skip
            if caller.startswith("load") and type(v).__name__ == "ShapeDtypeStruct":
                raise InteropError(f"{caller}: leaf {'/'.join(path)!r} is a jax.ShapeDtypeStruct (a shape without "
                                   "values); pass the initialized variables")  # fmt: skip
            deleted = getattr(v, "is_deleted", None)
            if deleted is not None and deleted():
                raise InteropError(f"{caller}: leaf {'/'.join(path)!r} is a deleted jax.Array (a mode='move' "
                                   "transfer or donation consumed it); pass live arrays")  # fmt: skip
            dst[str(k)] = _Leaf(v, path)

    for prefix, tree in roots:
        put(merged, tree, prefix)
    return merged


def _walk(node: dict, prefix: tuple[str, ...], out: list[FlaxLayer], ordered: bool) -> None:
    keys = [str(k) for k in node] if ordered else _canonical(node)
    leaves = [k for k in keys if isinstance(node[k], _Leaf)]
    subs = [k for k in keys if not isinstance(node[k], _Leaf)]
    canon = {_layers.ALIASES.get(k, k): k for k in subs}
    flat = all(_is_layer(node[k]) for k in subs)
    comp = next((c for c, ks in _layers.COMPOSITES.items() if set(canon) == ks), None)
    path = "/".join(prefix)
    if comp and not leaves and flat:
        slots = {f"{c}/{leaf}": node[k][leaf] for c, k in canon.items() for leaf in node[k]}
        out.append(FlaxLayer(path, comp, {s: v.value for s, v in slots.items()},
                             {s: v.keys for s, v in slots.items()}, prefix))  # fmt: skip
        return
    if leaves:
        slots = {k: node[k] for k in leaves}
        if set(slots) == {"weight"} and len(slots["weight"].value.shape) == 1:
            slots = {"scale": slots["weight"]}  # a norm holding only a 1-D ``weight`` (RMSNorm style)
        layer = FlaxLayer(path, None, {k: v.value for k, v in slots.items()}, {k: v.keys for k, v in slots.items()}, prefix)
        layer.cls = _layers.flax_class(layer.specs)
        out.append(layer)
    for k in subs:
        _walk(node[k], prefix + (k,), out, ordered)


def _key_str(entry: Any) -> str:
    from jinit._paths import key_entry_str

    return key_entry_str(entry)


def _is_nnx(x: Any) -> bool:
    """An ``nnx.Module`` (user subclasses included) or ``nnx.State``; never imports flax itself."""
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(x, (nnx.Module, nnx.State))


def _is_nnx_module(x: Any) -> bool:
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(x, nnx.Module)


def _is_linen_module(x: Any) -> bool:
    linen = sys.modules.get("flax.linen")
    return linen is not None and isinstance(x, linen.Module)


def _creation_order(obj: Any, pure: Any) -> Any:
    """``pure`` (an nnx state dict, keys sorted by nnx) re-keyed in ``obj``'s attribute order,
    which is the order ``__init__`` created the submodules in."""
    if not isinstance(pure, Mapping):
        return pure
    rank = {str(k): i for i, k in enumerate(vars(obj))} if hasattr(obj, "__dict__") else {}
    keys = sorted(pure, key=lambda k: (rank.get(str(k), len(rank)), _natural(str(k))))
    return {k: _creation_order(_child(obj, k), pure[k]) for k in keys}


def _child(obj: Any, key: Any) -> Any:
    try:
        return getattr(obj, key) if isinstance(key, str) else obj[key]
    except (AttributeError, IndexError, KeyError, TypeError):
        if isinstance(key, str) and key.isdigit():
            return _child(obj, int(key))
        return None


# --- source modules -------------------------------------------------------------------------------


def _linen_child(module: Any, name: str) -> Any:
    """The submodule ``name`` of a bound linen module (setup-defined submodules are created by
    running ``setup``; modules built inline in a compact ``__call__`` do not exist outside it)."""
    try:
        module._try_setup()
    except Exception:  # setup needs state it does not have here: no introspection
        return None
    child = module._state.children.get(name)
    return child if _is_linen_module(child) else None


def _locate(root: Any, parts: tuple[str, ...], linen: bool) -> Any:
    node = root
    for part in parts:
        if node is None:
            return None
        node = _linen_child(node, part) if linen else _child(node, part)
    return node


def _bind(source: Any, variables: Any) -> Any:
    try:
        return source.bind(_with_collections(variables))
    except Exception as e:  # a module that does not fit the tree: say so, keep the cause
        raise RuleError(f"source: {type(source).__name__}.bind(variables) failed ({e}); pass the Flax module "
                        "the variables belong to (for Hugging Face Flax models: model.module)") from e  # fmt: skip


def _trace(module: Any, variables: Any, args: tuple) -> dict[tuple[str, ...], Any]:
    """Every submodule a linen module calls on ``args`` (compact ones included), by path: the
    module is run abstractly (``jax.eval_shape``) under a method interceptor."""
    import jax
    from flax import linen

    found: dict[tuple[str, ...], Any] = {}

    def record(next_fun, a, kw, context):
        found.setdefault(tuple(str(p) for p in context.module.path), context.module)
        return next_fun(*a, **kw)

    tree = _with_collections(variables)
    try:
        with linen.intercept_methods(record):
            jax.eval_shape(lambda v, *xs: module.apply(v, *xs, mutable=True, rngs={"dropout": jax.random.key(0)}),
                           tree, *args)  # fmt: skip
    except Exception as e:  # the example input does not fit the module: say so, keep the cause
        raise RuleError(f"source: {type(module).__name__}.apply(variables, *example_inputs) failed ({e}); pass "
                        "source=(module, example_input, ...) with inputs the module accepts") from e  # fmt: skip
    return found


def _with_collections(variables: Any) -> Any:
    if isinstance(variables, Mapping) and not set(variables) & set(_COLLECTIONS):
        return {"params": variables}
    return variables


def _find(root: Any, traced: Mapping[tuple[str, ...], Any], parts: tuple[str, ...], linen: bool) -> Any:
    return traced.get(parts) or _locate(root, parts, linen)


def attach_modules(layers: list[FlaxLayer], source: Any, variables: Any) -> None:
    """Gives each layer a way to find its module in ``source``: an nnx Module, a linen Module
    (bound to ``variables``; setup-defined submodules), or ``(linen_module, *example_inputs)``
    (compact submodules too, found by running the module abstractly on the inputs)."""
    if source is None:
        return
    args: tuple = ()
    if isinstance(source, tuple) and source and _is_linen_module(source[0]):
        source, args = source[0], tuple(source[1:])
    if _is_nnx_module(source):
        root, linen, traced = source, False, {}
    elif _is_linen_module(source):
        root, linen = _bind(source, variables), True
        traced = _trace(source, variables, args) if args else {}
    else:
        raise RuleError(f"source must be a flax.linen Module (optionally (module, *example_inputs)) or an nnx.Module "
                        f"(for Hugging Face Flax models: model.module), got {type(source).__name__}")  # fmt: skip
    for layer in layers:
        layer.locate = functools.partial(_find, root, traced, layer.parts, linen)


_SCALARS = (bool, int, float)


def _module_value(module: Any, attrs: tuple[str, ...]) -> tuple[Any, str] | None:
    for attr in attrs:
        try:
            value = getattr(module, attr, None)
        except Exception:  # a linen property that needs an unbound scope
            value = None
        if isinstance(value, _SCALARS):
            return value, f"source module ({type(module).__name__}.{attr})"
    return None


class HParams:
    """The ``hparams`` argument: per-layer dicts keyed by exact layer path, a regular
    expression (matched in full), or ``"*"`` (every layer)."""

    def __init__(self, given: Mapping[str, Mapping[str, Any]] | None, layers: list[FlaxLayer]):
        self.exact: dict[str, Mapping[str, Any]] = {}
        self.patterns: list[tuple[str, re.Pattern, Mapping[str, Any]]] = []
        self.every: Mapping[str, Any] = {}
        paths = [la.path for la in layers]
        known = set(paths)
        for key, values in (given or {}).items():
            if not isinstance(values, Mapping):
                raise RuleError(f"hparams[{key!r}] must be a dict like {{'epsilon': 1e-5}}, got {type(values).__name__}")
            if key == "*":
                self.every = values
            elif key in known:
                self.exact[key] = values
            else:
                try:
                    pattern = re.compile(key)
                except re.error as e:
                    raise PathError(f"hparams: no Flax layer {key!r} (and not a valid regular expression: {e}); "
                                    f"layers: {paths}") from e  # fmt: skip
                if not any(pattern.fullmatch(p) for p in paths):
                    raise PathError(f"hparams: no Flax layer {key!r} (nor any matching it as a regular "
                                    f"expression); layers: {paths}")  # fmt: skip
                self.patterns.append((key, pattern, values))

    def names(self) -> set[str]:
        out = set(self.every)
        for values in self.exact.values():
            out |= set(values)
        for _, _, values in self.patterns:
            out |= set(values)
        return out

    def get(self, path: str, name: str) -> Value | None:
        if name in self.exact.get(path, {}):
            return Value(self.exact[path][name], f"hparams[{path!r}]")
        for key, pattern, values in self.patterns:
            if name in values and pattern.fullmatch(path):
                return Value(values[name], f"hparams[{key!r}]")
        if name in self.every:
            return Value(self.every[name], "hparams['*']")
        return None


def resolve(layer: FlaxLayer, hps: tuple, given: HParams) -> dict[str, Value | None]:
    """Each hyper-parameter's Flax value and origin: hparams, source module, shapes, default."""
    out: dict[str, Value | None] = {}
    for hp in hps:
        value = given.get(layer.path, hp.name)
        if value is None and layer.module is not None:
            found = _module_value(layer.module, hp.attrs)
            value = Value(*found) if found else None
        if value is None and hp.derive is not None:
            derived = hp.derive(layer.specs)
            value = None if derived is None else Value(derived, "parameter shapes")
        if value is None and hp.default is not None:
            where = "not read from the model"
            if layer.locate is not None and layer.module is None:
                where = "its module is not in source= (a compact submodule: pass source=(module, example_input))"
            value = Value(hp.default, f"assumed: Flax's default, {where}")
        out[hp.name] = value
    return out


# --- reading the tree -----------------------------------------------------------------------------


@dataclasses.dataclass
class FlaxSource:
    """A Flax variables tree (linen dict / FrozenDict, nnx State or Module) read into layers."""

    variables: Any
    layers: list[FlaxLayer]
    kind: str  # "linen" or "nnx"
    hparams: HParams

    def rebuild(self, values: Mapping[tuple[str, ...], Any]) -> Any:
        """The same tree with the leaves at ``values``' locations replaced."""
        import jax

        def swap(path, leaf):
            keys = tuple(_key_str(p) for p in path)
            return values.get(keys, leaf)

        if self.kind == "nnx":
            from flax import nnx

            state = self.variables
            if isinstance(state, nnx.Module):
                state = nnx.state(state)
            pure = state.to_pure_dict()
            new = jax.tree_util.tree_map_with_path(swap, pure)
            out = jax.tree.map(lambda x: x, state)
            nnx.replace_by_pure_dict(out, new)
            return out
        return jax.tree_util.tree_map_with_path(swap, self.variables)


def read_flax(
    variables: Any,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    source: Any = None,
    caller: str = "load",
) -> FlaxSource:
    """Reads a Flax variables tree into parameterised layers (see the module docstring for the
    order).

    Accepts linen ``{"params": ..., "batch_stats": ...}`` (dict or FrozenDict), a bare params
    dict, an ``nnx.State`` or an ``nnx.Module`` (whose hyper-parameters and attribute order are
    then read too). ``source`` is the module the variables belong to (linen or nnx).
    """
    kind = "linen"
    tree = variables
    ordered = False
    if _is_nnx(variables):
        from flax import nnx

        kind = "nnx"
        if isinstance(variables, nnx.Module):
            source = variables if source is None else source
            tree = _creation_order(variables, nnx.state(variables).to_pure_dict())
            ordered = True
        else:
            tree = tree.to_pure_dict()
        roots = [((), tree)]
    elif not isinstance(tree, Mapping):
        raise RuleError(f"{caller}: expected a Flax variables dict, nnx.State or nnx.Module, got {type(variables).__name__}")
    elif set(tree) & set(_COLLECTIONS):
        other = sorted(str(c) for c in tree if c not in _COLLECTIONS)
        if other:
            raise RuleError(f"collections {other} hold no parameters of a rule; pass only "
                            f"{{c: variables[c] for c in {_COLLECTIONS!r} if c in variables}}")  # fmt: skip
        roots = [((c,), tree[c]) for c in tree]
    else:
        roots = [((), tree)]
    layers: list[FlaxLayer] = []
    _walk(_merge(roots, caller), (), layers, ordered)
    attach_modules(layers, source, variables)
    return FlaxSource(variables, layers, kind, HParams(hparams, layers))
