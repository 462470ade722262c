"""Model level: pair a Flax variables tree with another framework's model and port it.

The framework-neutral half of ``load_torch`` / ``load_keras`` / ``load_gluon`` and
``params_from_*``: read the Flax tree into layers, pair them with the target's layers by
structure (or an explicit mapping), check every pair by shape, dtype and hyper-parameters,
report missing, unexpected and mismatched entries together, and only then convert and commit.
Each framework module (``_load_torch``, ``_load_keras``, ``_load_gluon``) supplies a
:class:`Target` that lists its layers and moves arrays.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from jinit.interop import _layers, _layouts
from jinit.interop._layouts import Rule, Spec

from jinit._errors import PathError, PortError, RuleError, ShapeError

MODES = ("copy", "move", "share")
_COLLECTIONS = ("params", "batch_stats")


# --- the Flax side --------------------------------------------------------------------------------


@dataclasses.dataclass
class _Leaf:
    value: Any
    keys: tuple[str, ...]  # full location in the variables tree (collection first for linen)


@dataclasses.dataclass
class FlaxLayer:
    """One parameterised Flax layer: its path, class and slots (canonical names)."""

    path: str
    cls: str | None
    leaves: dict[str, Any]
    keys: dict[str, tuple[str, ...]]  # slot -> location in the variables tree

    @property
    def specs(self) -> dict[str, Spec]:
        return {k: _layouts.spec_of(v) for k, v in self.leaves.items()}

    @property
    def label(self) -> str:
        return self.path or "(root)"

    def source(self, slot: str) -> str:
        return "/".join(self.keys[slot])


def _natural(key: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


def _ordered(node: Mapping[str, Any]) -> list[str]:
    """Children in creation order: the dict's own order, unless it was re-sorted (JAX tree
    ops sort dict keys), in which case numbered names are put in numeric order."""
    keys = [str(k) for k in node]
    if keys == sorted(keys):
        return sorted(keys, key=_natural)
    return keys


def _merge(roots: list[tuple[tuple[str, ...], Mapping]]) -> dict:
    merged: dict = {}

    def put(dst: dict, node: Mapping, keys: tuple[str, ...]):
        for k in node:
            v = node[k]
            if isinstance(v, Mapping):
                put(dst.setdefault(str(k), {}), v, keys + (str(k),))
            else:
                dst[str(k)] = _Leaf(v, keys + (str(k),))

    for prefix, tree in roots:
        put(merged, tree, prefix)
    return merged


def _walk(node: dict, prefix: tuple[str, ...], out: list[FlaxLayer]) -> None:
    keys = _ordered(node)
    leaves = [k for k in keys if isinstance(node[k], _Leaf)]
    subs = [k for k in keys if not isinstance(node[k], _Leaf)]
    canon = {_layers.ALIASES.get(k, k): k for k in subs}
    flat = all(all(isinstance(v, _Leaf) for v in node[k].values()) for k in subs)
    comp = next((c for c, ks in _layers.COMPOSITES.items() if set(canon) == ks), None)
    if comp and not leaves and flat:
        slots = {f"{c}/{leaf}": node[k][leaf] for c, k in canon.items() for leaf in node[k]}
        out.append(FlaxLayer("/".join(prefix), comp, {s: v.value for s, v in slots.items()},
                             {s: v.keys for s, v in slots.items()}))  # fmt: skip
        return
    if leaves:
        layer = FlaxLayer("/".join(prefix), None, {k: node[k].value for k in leaves},
                          {k: node[k].keys for k in leaves})  # fmt: skip
        layer.cls = _layers.flax_class(layer.specs)
        out.append(layer)
    for k in subs:
        _walk(node[k], prefix + (k,), out)


@dataclasses.dataclass
class FlaxSource:
    """A Flax variables tree (linen dict / FrozenDict, nnx State or Module) read into layers."""

    variables: Any
    layers: list[FlaxLayer]
    kind: str  # "linen" or "nnx"
    hparams: dict[str, dict[str, Any]]

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


def _key_str(entry: Any) -> str:
    from jinit._paths import key_entry_str

    return key_entry_str(entry)


def _nnx_hparams(module: Any) -> dict[str, dict[str, Any]]:
    from flax import nnx

    out: dict[str, dict[str, Any]] = {}
    names = ("epsilon", "momentum", "num_groups", "transpose_kernel")
    for path, sub in nnx.iter_graph(module):
        if isinstance(sub, nnx.Module):
            hp = {n: getattr(sub, n) for n in names if isinstance(getattr(sub, n, None), (int, float, bool))}
            if hp:
                out["/".join(str(p) for p in path)] = hp
    return out


def _is_nnx(x: Any) -> bool:
    """An ``nnx.Module`` (user subclasses included) or ``nnx.State``; never imports flax itself."""
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(x, (nnx.Module, nnx.State))


def _is_nnx_module(x: Any) -> bool:
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(x, nnx.Module)


def _creation_order(obj: Any, pure: Any) -> Any:
    """``pure`` (an nnx state dict, keys sorted by nnx) re-keyed in ``obj``'s attribute order,
    which is the order ``__init__`` created the submodules in."""
    if not isinstance(pure, Mapping):
        return pure
    rank = {str(k): i for i, k in enumerate(vars(obj))} if hasattr(obj, "__dict__") else {}
    keys = sorted(pure, key=lambda k: (rank.get(str(k), len(rank)), _natural(str(k))))

    def child(k):
        try:
            return getattr(obj, k) if isinstance(k, str) else obj[k]
        except (AttributeError, IndexError, KeyError, TypeError):
            return None

    return {k: _creation_order(child(k), pure[k]) for k in keys}


def read_flax(variables: Any, hparams: Mapping[str, Mapping[str, Any]] | None = None) -> FlaxSource:
    """Reads a Flax variables tree into parameterised layers, in creation order.

    Accepts linen ``{"params": ..., "batch_stats": ...}`` (dict or FrozenDict), a bare params
    dict, an ``nnx.State`` or an ``nnx.Module`` (whose hyper-parameters and attribute order
    are then read too; an ``nnx.State`` has its keys sorted, like a ``jax.tree.map`` result).
    """
    hp: dict[str, dict[str, Any]] = {}
    kind = "linen"
    tree = variables
    if _is_nnx(variables):
        from flax import nnx

        kind = "nnx"
        if isinstance(variables, nnx.Module):
            hp = _nnx_hparams(variables)
            tree = _creation_order(variables, nnx.state(variables).to_pure_dict())
        else:
            tree = tree.to_pure_dict()
        roots = [((), tree)]
    elif not isinstance(tree, Mapping):
        raise RuleError(f"expected a Flax variables dict, nnx.State or nnx.Module, got {type(variables).__name__}")
    elif set(tree) & set(_COLLECTIONS):
        other = sorted(str(c) for c in tree if c not in _COLLECTIONS)
        if other:
            raise RuleError(f"collections {other} hold no parameters of a rule; pass only "
                            f"{{c: variables[c] for c in {_COLLECTIONS!r} if c in variables}}")  # fmt: skip
        roots = [((c,), tree[c]) for c in tree]
    else:
        roots = [((), tree)]
    layers: list[FlaxLayer] = []
    _walk(_merge(roots), (), layers)
    for path, given in (hparams or {}).items():
        if not any(layer.path == path for layer in layers):
            raise PathError(f"hparams: no Flax layer {path!r}; layers: {[la.path for la in layers]}")
        hp.setdefault(path, {}).update(given)
    return FlaxSource(variables, layers, kind, hp)


# --- the target side ------------------------------------------------------------------------------


@dataclasses.dataclass
class TargetLayer:
    """One parameterised layer of the target model.

    ``kind`` is None for a layer type no rule covers (its parameters are reported missing);
    ``specs`` holds every parameter the rule must produce; ``hparams`` the target's own values
    (in its convention); ``ref`` is the framework object.
    """

    name: str
    kind: str | None
    specs: dict[str, Spec]
    hparams: dict[str, Any]
    ref: Any
    note: str = ""

    @property
    def label(self) -> str:
        return self.name or "(root)"


class Ties:
    """Tensors held by several layers (tied weights, Gluon ``params=`` sharing): the first layer
    that lists one owns it, and the others are filled through that owner."""

    def __init__(self):
        self.owner: dict[int, str] = {}

    def split(self, name: str, tensors: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """(the tensors layer ``name`` owns, why it cannot be paired or "").

        A layer whose tensors are all owned elsewhere gives ``({}, "")``: nothing to load.
        """
        own = {n: t for n, t in tensors.items() if self.owner.setdefault(id(t), name) == name}
        tied = [f"{n} (tied to {self.owner[id(t)]})" for n, t in tensors.items() if n not in own]
        if not tied or not own:
            return own, ""
        return own, f"{', '.join(tied)}: a layer with some weights tied to another layer has no Flax counterpart"


@dataclasses.dataclass(frozen=True)
class Staged:
    """A converted target parameter waiting to be committed."""

    value: Any
    zero_copy: bool
    detail: str


class Target(abc.ABC):
    """What a framework module provides to the model-level driver."""

    framework: str  # "torch", "keras", "gluon": the rule table's name
    #: True: rules run on the framework's tensors (torch keeps views); False: rules run in JAX
    #: before export (TF and MXNet accept compact buffers only).
    ops_on_target: bool = False

    @abc.abstractmethod
    def layers(self, model: Any) -> list[TargetLayer]: ...

    @abc.abstractmethod
    def export(self, x: Any, mode: str) -> tuple[Any, Any]:
        """A JAX array as the framework's tensor: (tensor, ExportRecord)."""

    @abc.abstractmethod
    def commit(self, layer: TargetLayer, name: str, staged: Staged, mode: str) -> Staged:
        """Puts a converted value into the model; returns what actually happened."""

    @abc.abstractmethod
    def read(self, layer: TargetLayer, name: str, mode: str) -> Any:
        """A target parameter as a JAX array."""

    def shares(self, a: Any, b: Any) -> bool:
        """Whether two framework tensors share memory (for ops run on the target)."""
        return False

    def finish(self) -> None:
        """Waits for pending work (MXNet's asynchronous engine)."""
        return None


# --- reports --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParamReport:
    """One target parameter: where it came from, how it was converted and moved.

    Attributes:
      source: the Flax leaf paths it was built from (several for concatenated gates).
      target: the target parameter's name (``"fc.weight"``, ``"dense/kernel"``).
      transform: the layout operations applied (``"rename kernel->weight; transpose"``).
      zero_copy: True iff the target parameter aliases the Flax buffer.
      detail: how it was moved, or why it was copied.
    """

    source: tuple[str, ...]
    target: str
    transform: str
    zero_copy: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """The result of a load (Flax -> framework) or read (framework -> Flax).

    ``missing``: target parameters no Flax leaf fills; ``unexpected``: Flax layers with no place
    in the target; ``mismatched``: paired layers whose shapes, dtypes or output-changing
    hyper-parameters (eps) disagree; ``warnings``: training-only hyper-parameter differences
    (momentum). ``ok`` is True when the first three are empty.
    """

    framework: str
    direction: str
    mode: str
    params: tuple[ParamReport, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def zero_copy(self) -> int:
        """How many parameters alias the Flax buffers."""
        return sum(p.zero_copy for p in self.params)

    def problems(self) -> str:
        parts = []
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("mismatched", self.mismatched)):  # fmt: skip
            if items:
                parts.append(f"{title} ({len(items)}):\n" + "\n".join(f"  {i}" for i in items))
        return "\n".join(parts)

    def __str__(self) -> str:
        head = f"{self.direction} {self.framework} (mode={self.mode}): {len(self.params)} parameters, {self.zero_copy} zero-copy"
        rows = [("source", "target", "transform", "zero-copy", "detail")] + [
            ("+".join(p.source), p.target, p.transform, "yes" if p.zero_copy else "no", p.detail) for p in self.params
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [head] + ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=False)) + "  " + r[4] for r in rows]
        extra = self.problems()
        if self.warnings:
            extra += "\nwarnings:\n" + "\n".join(f"  {w}" for w in self.warnings)
        return "\n".join(lines) + ("\n" + extra if extra else "")


# --- pairing --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Pair:
    flax: FlaxLayer
    target: TargetLayer
    rule: Rule
    hparams: dict[str, Any]
    problems: list[str]
    warnings: list[str]


def _compare(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return a == b


def _fmt(x: Any) -> str:
    """A hyper-parameter for messages: floats without binary noise (``1 - 0.99`` -> ``0.01``)."""
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def evaluate(f: FlaxLayer, t: TargetLayer, framework: str, hparams: Mapping[str, Any] | None) -> Pair:
    """Checks one (Flax layer, target layer) pair: kind, shapes, dtypes and hyper-parameters."""
    pair = Pair(f, t, (), {}, [], [])
    where = f"{f.label} -> {t.label}"
    if t.kind is None:
        pair.problems.append(f"{where}: target layer type has no conversion rule ({t.note})")
        return pair
    if _layers.KIND_CLASS.get(t.kind) != f.cls:
        pair.problems.append(f"{where}: a Flax {f.cls or 'unrecognised'} layer ({sorted(f.specs)}) cannot fill a {t.kind} layer")
        return pair
    pair.hparams = _layers.hparams_for(t.kind, hparams)
    pair.rule = _layers.rule(t.kind, framework, pair.hparams)
    try:
        _layouts.check_fits(_layouts.apply(pair.rule, f.specs), t.specs)
    except ShapeError as e:
        pair.problems.append(f"{where} ({t.kind}): {e}")
    for hp in _layers.HPARAMS.get(t.kind, ()):
        want = _layers.to_framework(framework, hp.name, pair.hparams.get(hp.name))
        if want is None or hp.name not in t.hparams:
            continue
        got = t.hparams[hp.name]
        if not _compare(want, got):
            conv = "" if want == pair.hparams[hp.name] else f", i.e. {_fmt(want)} in {framework}'s convention,"
            msg = (f"{where} ({t.kind}): {hp.name} is {_fmt(pair.hparams[hp.name])} in Flax{conv} but the "
                   f"target has {_fmt(got)}; build the target layer with "
                   f"the matching value (or pass hparams={{{f.path!r}: {{{hp.name!r}: ...}}}} if the Flax "
                   "layer does not use the default)")  # fmt: skip
            (pair.problems if hp.affects_output else pair.warnings).append(msg)
    return pair


def _align(fs: list[FlaxLayer], ts: list[TargetLayer], score) -> list[tuple[int, int]]:
    """Order-preserving alignment maximising the total pair score (0 = cannot pair)."""
    n, m = len(fs), len(ts)
    dp = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best = max(dp[i + 1][j], dp[i][j + 1])
            s = score(i, j)
            if s:
                best = max(best, s + dp[i + 1][j + 1])
            dp[i][j] = best
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        s = score(i, j)
        if s and dp[i][j] == s + dp[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif dp[i][j] == dp[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


@dataclasses.dataclass
class Plan:
    pairs: list[Pair]
    missing: list[str]
    unexpected: list[str]

    @property
    def mismatched(self) -> list[str]:
        return [p for pair in self.pairs for p in pair.problems]

    @property
    def warnings(self) -> list[str]:
        return [w for pair in self.pairs for w in pair.warnings]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def plan(
    source: FlaxSource, targets: list[TargetLayer], framework: str, mapping: Mapping[str, str] | None
) -> Plan:
    """Pairs Flax layers with target layers: ``mapping`` first, then by structure.

    Structure: per Flax class (kernel rank, norm, lstm, ...), the layers of each side in order
    are aligned so that as many pairs as possible fit exactly; a pair of the right kind that
    does not fit is kept and reported as mismatched, unpaired layers are missing/unexpected.
    """
    targets = [t for t in targets if t.specs]  # no parameters (LayerNorm without affine): nothing to pair
    fl = list(source.layers)
    tl = list(targets)
    pairs: list[Pair] = []
    if mapping:
        fmap = {f.path: f for f in fl}
        tmap = {t.name: t for t in tl}
        for src, dst in mapping.items():
            if src not in fmap:
                raise PathError(f"mapping: no Flax layer {src!r}; Flax layers: {[f.path for f in fl]}")
            if dst not in tmap:
                raise PathError(f"mapping: no target layer {dst!r}; target layers: {[t.name for t in tl]}")
            pairs.append(evaluate(fmap[src], tmap[dst], framework, source.hparams.get(src)))
        fl = [f for f in fl if f.path not in mapping]
        used = set(mapping.values())
        tl = [t for t in tl if t.name not in used]
    for cls in dict.fromkeys([f.cls for f in fl] + [_layers.KIND_CLASS.get(t.kind or "") for t in tl]):
        if cls is None:
            continue
        fs = [f for f in fl if f.cls == cls]
        ts = [t for t in tl if _layers.KIND_CLASS.get(t.kind or "") == cls]
        cache = {}

        def score(i, j, fs=fs, ts=ts, cache=cache):
            if (i, j) not in cache:
                p = evaluate(fs[i], ts[j], framework, source.hparams.get(fs[i].path))
                cache[i, j] = (2 if not p.problems else 1, p)
            return cache[i, j][0]

        for i, j in _align(fs, ts, score):
            pairs.append(cache[i, j][1])
    paired_f = {id(p.flax) for p in pairs}
    paired_t = {id(p.target) for p in pairs}
    missing = [
        f"{t.label} ({t.kind or t.note}): {', '.join(f'{k}{list(s.shape)}' for k, s in t.specs.items())}"
        for t in targets if id(t) not in paired_t
    ]
    unexpected = [
        f"{f.label} ({f.cls or 'no rule for slots ' + str(sorted(f.specs))}): "
        f"{', '.join(f'{k}{list(s.shape)}' for k, s in f.specs.items())}"
        for f in source.layers if id(f) not in paired_f
    ]
    order = {id(t): i for i, t in enumerate(targets)}
    pairs.sort(key=lambda p: order[id(p.target)])
    return Plan(pairs, missing, unexpected)


# --- drivers --------------------------------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise RuleError(f"mode must be one of {MODES}, got {mode!r}")


def _fail(direction: str, framework: str, mode: str, p: Plan, source: FlaxSource) -> PortError:
    report = LoadReport(framework, direction, mode, (), tuple(p.missing), tuple(p.unexpected),
                        tuple(p.mismatched), tuple(p.warnings))  # fmt: skip
    hint = ""
    if source.kind == "nnx" and not _is_nnx_module(source.variables):
        hint = " An nnx.State is sorted by name, not creation order: pass the nnx.Module to pair in creation order."
    return PortError(
        f"{direction} {framework}: the Flax tree and the model do not match; nothing was changed.\n"
        f"{report.problems()}\nFix the model (or pass mapping={{flax_layer: target_layer}}, "
        f"or strict=False to load only the pairs that fit).{hint}",
        report=report,
    )


def load(
    target: Target,
    model: Any,
    variables: Any,
    *,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
) -> LoadReport:
    """Loads a Flax variables tree into ``model`` (see ``load_torch`` for the contract)."""
    _check_mode(mode)
    source = read_flax(variables, hparams)
    p = plan(source, target.layers(model), target.framework, mapping)
    if strict and not p.ok:
        raise _fail("load", target.framework, mode, p, source)
    good = [pair for pair in p.pairs if not pair.problems]
    # 1) convert everything (no change to the model yet); export each Flax leaf once.
    exported: dict[int, tuple[Any, Any]] = {}
    staged: list[tuple[Pair, str, tuple[str, ...], str, Staged]] = []
    for pair in good:
        f = pair.flax
        lineage = _layouts.lineage(pair.rule, f.specs)
        if target.ops_on_target:
            env = {}
            for slot, x in f.leaves.items():
                if id(x) not in exported:
                    exported[id(x)] = target.export(x, "share")
                env[slot] = exported[id(x)][0]
            out = _layouts.apply(pair.rule, env)
        else:
            out = _layouts.apply(pair.rule, f.leaves)
        for name in [n for n in pair.target.specs if n in out]:
            value = out[name]
            srcs, transform, _ = lineage[name]
            sources = tuple(f.source(s) for s in srcs)
            if target.ops_on_target:
                rec = exported[id(f.leaves[srcs[0]])][1]
                zc = rec.zero_copy and len(srcs) == 1 and target.shares(value, exported[id(f.leaves[srcs[0]])][0])
                detail = "view of the JAX buffer" if zc else f"new buffer ({transform})"
                staged.append((pair, name, sources, transform, Staged(value, zc, detail)))
                continue
            if len(srcs) == 1 and value is f.leaves[srcs[0]]:  # identity: export as asked
                key = id(value)
                if key not in exported:
                    exported[key] = target.export(value, mode)
                t, rec = exported[key]
                staged.append((pair, name, sources, transform, Staged(t, rec.zero_copy, rec.reason)))
            else:  # a fresh JAX array holding the converted layout: hand it over without a copy
                t, rec = target.export(value, "move")
                why = f"layout converted in JAX ({transform}): a new buffer, since {target.framework} takes compact buffers only"
                staged.append((pair, name, sources, transform, Staged(t, False, why)))
    # 2) commit
    params = []
    for pair, name, sources, transform, st in staged:
        done = target.commit(pair.target, name, st, mode)
        tname = f"{pair.target.name}.{name}" if pair.target.name else name
        if target.framework == "keras":
            tname = f"{pair.target.name}/{name}" if pair.target.name else name
        params.append(ParamReport(sources, tname, transform, done.zero_copy, done.detail))
    target.finish()
    # 3) move: the Flax arrays are now owned by the target (or were copied): delete them,
    # except those the target holds as they are (Keras' JAX backend stores the jax.Array itself).
    if mode == "move":
        seen = {id(st.value) for *_, st in staged}
        for pair in good:
            for x in pair.flax.leaves.values():
                if id(x) not in seen and hasattr(x, "delete"):
                    seen.add(id(x))
                    x.delete()
    return LoadReport(target.framework, "load", mode, tuple(params), tuple(p.missing), tuple(p.unexpected),
                      tuple(p.mismatched), tuple(p.warnings))  # fmt: skip


def read(
    target: Target,
    model: Any,
    like: Any,
    *,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    report: bool = False,
) -> Any:
    """Builds a Flax variables tree shaped like ``like`` from ``model``'s parameters."""
    if mode not in ("copy", "share"):
        raise RuleError(f"mode must be 'copy' or 'share' when reading into JAX, got {mode!r}")
    source = read_flax(like, hparams)
    p = plan(source, target.layers(model), target.framework, mapping)
    if strict and not p.ok:
        raise _fail("read", target.framework, mode, p, source)
    values: dict[tuple[str, ...], Any] = {}
    params = []
    for pair in p.pairs:
        if pair.problems:
            continue
        f = pair.flax
        env = {name: target.read(pair.target, name, mode) for name in pair.target.specs}
        back = _layouts.invert(pair.rule, env, f.specs)
        lineage = _layouts.lineage(pair.rule, f.specs)
        for slot, x in back.items():
            values[f.keys[slot]] = x
        for name, (srcs, transform, _copies) in lineage.items():
            tname = f"{pair.target.name}.{name}" if pair.target.name else name
            params.append(ParamReport(tuple(f.source(s) for s in srcs), tname, transform, False,
                                      "inverse layout applied in JAX" if transform != "identity" else f"imported ({mode})"))  # fmt: skip
    out = source.rebuild(values)
    rep = LoadReport(target.framework, "read", mode, tuple(params), tuple(p.missing), tuple(p.unexpected),
                     tuple(p.mismatched), tuple(p.warnings))  # fmt: skip
    return (out, rep) if report else out
