"""Pairing Flax layers with a target model's layers: by mapping, by name, then by structure.

1. ``mapping=`` pins pairs the user states.
2. Names: a layer path is normalized into tokens (lower case; ``_``/``-`` dropped inside a
   component; words and numbers split, so ``layer_._0``, ``layer.0``, ``layer_0`` and
   ``layer0`` agree and ``LayerNorm`` equals ``layer_norm``). Two layers pair when one token
   sequence ends the other (a wrapper such as ``bert/`` on one side only), the shared part holds
   a word that was not generated (linen's ``Dense_0``, Keras' ``dense_1``), their classes fit,
   and no other layer claims either of them as well.
3. Structure: the layers left, per Flax class, are aligned in order so that as many pairs as
   possible fit exactly.

The order is also checked against the names: where a named pair and the order alignment of the
whole class disagree about a same-shaped layer that names did not pair, the pairing is
ambiguous (strict: an error naming both; otherwise a warning).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinit._errors import PathError, RuleError, ShapeError
from jinit.interop import _layers, _layouts
from jinit.interop._layouts import Rule, Spec
from jinit.interop._registry import LayerRule
from jinit.interop._source import FlaxLayer, FlaxSource, Value


@dataclasses.dataclass
class TargetLayer:
    """One parameterised layer of the target model.

    ``kind`` is None for a layer no rule covers (its parameters are reported missing);
    ``specs`` holds every tensor the rule must produce; ``hparams`` the target's own values (in
    its convention); ``ref`` is the framework object; ``auto`` flags the name components the
    framework generated (Keras ``dense_1``).
    """

    name: str
    kind: str | None
    specs: dict[str, Spec]
    hparams: dict[str, Any]
    ref: Any
    note: str = ""
    rule: LayerRule | None = None
    auto: tuple[bool, ...] = ()
    sep: str = "."
    frozen: bool = False  # every tensor is a frozen parameter (torch requires_grad=False)

    @property
    def label(self) -> str:
        return self.name or "(root)"

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.name.split(self.sep)) if self.name else ()

    def layer_rule(self, framework: str) -> LayerRule | None:
        if self.rule is None and self.kind in _layers.KIND_CLASS:
            self.rule = _layers.builtin(self.kind, framework)
        return self.rule


@dataclasses.dataclass
class Pair:
    flax: FlaxLayer
    target: TargetLayer
    rule: Rule
    hparams: dict[str, Value | None]
    problems: list[str]
    warnings: list[str]
    by: str = "structure"
    fits: tuple[int, ...] = ()  # the candidate layouts whose shapes fit
    layouts: tuple[Rule, ...] = ()
    note: str = ""
    assumed: list[tuple[str, Any]] = dataclasses.field(default_factory=list)  # (name, value) checked on an assumption


# --- names ----------------------------------------------------------------------------------------

_RUNS = re.compile(r"[a-z]+|\d+")


def tokens(parts: tuple[str, ...], auto: tuple[bool, ...]) -> tuple[tuple[str, bool], ...]:
    """Normalized name tokens ``(text, named)``: ``named`` is False for numbers and for words of
    generated components.

    Examples:
      >>> from jinit.interop._pairing import tokens
      >>> [t for t, _ in tokens(("bert", "encoder", "layer_._0", "LayerNorm"), (False,) * 4)]
      ['bert', 'encoder', 'layer', '0', 'layernorm']
      >>> [t for t, _ in tokens(("stages", "layer", "layer_0"), (False,) * 3)]
      ['stages', 'layer', '0']
    """
    out: list[tuple[str, bool]] = []
    for i, part in enumerate(parts):
        generated = i < len(auto) and auto[i]
        for run in _RUNS.findall(re.sub(r"[_\-\s]", "", part.lower())):
            if run.isdigit():
                out.append((str(int(run)), False))
            elif not (out and out[-1][0] == run):  # linen names a list attribute of module `layer`
                out.append((run, not generated))  # `layer/layer_0`; torch says `layer.0`
    return tuple(out)


def _named(toks) -> bool:
    return any(named for _, named in toks)


def _compatible(f: FlaxLayer, rule: LayerRule | None) -> bool:
    return rule is not None and (rule.flax == "*" or rule.flax == f.cls)


def pair_by_name(fs: list[FlaxLayer], ts: list[TargetLayer], framework: str) -> list[tuple[FlaxLayer, TargetLayer]]:
    """Name pairs (see the module docstring); near-linear: suffix tables, no all-pairs scan."""
    ftok = {id(f): tokens(f.parts, f.auto) for f in fs}
    ttok = {id(t): tokens(t.parts, t.auto) for t in ts}
    full: dict[tuple[str, ...], list[TargetLayer]] = {}
    suffix: dict[tuple[str, ...], list[TargetLayer]] = {}
    for t in ts:
        texts = tuple(x for x, _ in ttok[id(t)])
        if not texts or not _named(ttok[id(t)]):
            continue
        full.setdefault(texts, []).append(t)
        for k in range(1, len(texts)):
            suffix.setdefault(texts[k:], []).append(t)
    proposals: dict[int, list[tuple[int, FlaxLayer, TargetLayer]]] = {}
    for f in fs:
        ft = ftok[id(f)]
        texts = tuple(x for x, _ in ft)
        if not texts or not _named(ft):
            continue
        cands: list[tuple[int, TargetLayer]] = [(len(texts), t) for t in full.get(texts, []) + suffix.get(texts, [])]
        for k in range(1, len(texts)):  # a target whose whole name ends this one
            cands += [(len(texts) - k, t) for t in full.get(texts[k:], [])]
        good = []
        for n, t in cands:  # score: the shared tokens, then the fewest left over (exact names first)
            shared_f, shared_t = ft[len(ft) - n:], ttok[id(t)][len(ttok[id(t)]) - n:]
            if _named(shared_f) and _named(shared_t) and _compatible(f, t.layer_rule(framework)):
                good.append(((n, 2 * n - len(ft) - len(ttok[id(t)])), t))
        if not good:
            continue
        best = max(n for n, _ in good)
        top = [t for n, t in good if n == best]
        if len(top) == 1:
            proposals.setdefault(id(top[0]), []).append((best, f, top[0]))
    pairs = []
    for props in proposals.values():
        best = max(n for n, _, _ in props)
        top = [(f, t) for n, f, t in props if n == best]
        if len(top) == 1:
            pairs.append(top[0])
    return pairs


# --- checking one pair ----------------------------------------------------------------------------


def _compare(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return a == b


def _fmt(x: Any) -> str:
    """A hyper-parameter for messages: floats without binary noise (``1 - 0.99`` -> ``0.01``)."""
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _hparam_message(where: str, kind: str, hp, flax: Value, want: Any, got: Any, framework: str, path: str) -> str:
    conv = "" if want == flax.value else f", i.e. {_fmt(want)} in {framework}'s convention,"
    if flax.assumed:
        return (f"{where} ({kind}): {hp.name} of the Flax layer is unknown ({flax.origin}: {_fmt(flax.value)}{conv}) "
                f"and the target has {_fmt(got)}; pass source=<the Flax module> to read it, or "
                f"hparams={{{path!r}: {{{hp.name!r}: ...}}}} (or {{'*': {{{hp.name!r}: ...}}}} for every layer) "
                "with the Flax model's value")  # fmt: skip
    return (f"{where} ({kind}): {hp.name} is {_fmt(flax.value)} in Flax ({flax.origin}){conv} but the target has "
            f"{_fmt(got)}; build the target layer with the matching value")  # fmt: skip


def evaluate(f: FlaxLayer, t: TargetLayer, framework: str, source: FlaxSource | None, by: str = "structure") -> Pair:
    """Checks one (Flax layer, target layer) pair: kind, shapes, dtypes and hyper-parameters."""
    pair = Pair(f, t, (), {}, [], [], by)
    where = f"{f.label} -> {t.label}"
    rule = t.layer_rule(framework)
    if t.kind is None or rule is None:
        pair.problems.append(f"{where}: target layer type has no conversion rule ({t.note}); register one with "
                             "jinit.interop.register_layer")  # fmt: skip
        return pair
    if not _compatible(f, rule):
        pair.problems.append(f"{where}: a Flax {f.cls or 'unrecognised'} layer ({sorted(f.specs)}) cannot fill a {t.kind} layer")
        return pair
    given = source.hparams if source is not None else None
    if given is None:
        from jinit.interop._source import HParams

        given = HParams(None, [])
    pair.hparams = _resolve(f, rule, given)
    flat = {k: v.value for k, v in pair.hparams.items() if v is not None}
    pair.layouts = rule.layouts(flat)
    if rule.flax == "*" and by != "structure" and len(f.specs) == len(t.specs) == 1 and set(f.specs) != set(t.specs):
        # one raw tensor paired by name or mapping (Flax ``embedding`` -> Keras ``weight``): a rename
        pair.layouts = ((_layouts.Rename(next(iter(f.specs)), next(iter(t.specs))),),)
    specs = f.specs
    errors = []
    for i, layout in enumerate(pair.layouts):
        try:
            _layouts.check_fits(_layouts.apply(layout, specs), t.specs)
            pair.fits += (i,)
        except ShapeError as e:
            errors.append(str(e))
    if not pair.fits:
        pair.problems.append(f"{where} ({t.kind}): {errors[0]}")
    else:
        pair.rule = pair.layouts[pair.fits[0]]
    for hp in rule.hparams:
        flax = pair.hparams.get(hp.name)
        got = t.hparams.get(hp.name)
        if hp.target is None or got is None:
            continue
        if flax is None:
            if hp.affects_output:
                pair.warnings.append(f"{where} ({t.kind}): {hp.name} of the Flax layer is unknown and not checked "
                                     f"(the target has {_fmt(got)}); pass source=<the Flax module> or "
                                     f"hparams={{{f.path!r}: {{{hp.name!r}: ...}}}}")  # fmt: skip
            continue
        want = hp.to_target(flax.value)
        if flax.assumed and _compare(want, got):
            pair.assumed.append((hp.name, flax.value))
        if not _compare(want, got):
            msg = _hparam_message(where, t.kind, hp, flax, want, got, framework, f.path)
            (pair.problems if hp.affects_output else pair.warnings).append(msg)
    return pair


def _resolve(f: FlaxLayer, rule: LayerRule, given) -> dict[str, Value | None]:
    from jinit.interop._source import resolve

    return resolve(f, rule.hparams, given)


# --- structure ------------------------------------------------------------------------------------


def _align(n: int, m: int, score: Callable[[int, int], int]) -> list[tuple[int, int]]:
    """Order-preserving alignment maximising the total pair score (0 = cannot pair)."""
    dp = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = dp[i], dp[i + 1]
        for j in range(m - 1, -1, -1):
            best = below[j] if below[j] > row[j + 1] else row[j + 1]
            s = score(i, j)
            if s and s + below[j + 1] > best:
                best = s + below[j + 1]
            row[j] = best
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


class _Scores:
    """Pair evaluations cached by what decides them (classes, specs, rule, hyper-parameters), so
    an alignment of many same-shaped layers evaluates each distinct case once."""

    def __init__(self, framework: str, source: FlaxSource):
        self.framework, self.source = framework, source
        self.cache: dict[Any, int] = {}
        self.fkeys: dict[int, Any] = {}
        self.tkeys: dict[int, Any] = {}

    def key(self, f: FlaxLayer, t: TargetLayer) -> Any:
        fk = self.fkeys.get(id(f))
        if fk is None:
            hp = self.source.hparams
            fk = self.fkeys[id(f)] = (
                f.cls, tuple(sorted((k, s.shape, s.dtype) for k, s in f.specs.items())),
                type(f.module).__name__ if f.module is not None else None,
                f.path if (hp.exact.get(f.path) or hp.patterns) else None,
            )  # fmt: skip
        tk = self.tkeys.get(id(t))
        if tk is None:
            tk = self.tkeys[id(t)] = (
                id(t.layer_rule(self.framework)), t.kind,
                tuple(sorted((k, s.shape, s.dtype) for k, s in t.specs.items())),
                tuple(sorted((k, str(v)) for k, v in t.hparams.items())),
            )  # fmt: skip
        return fk, tk

    def __call__(self, f: FlaxLayer, t: TargetLayer) -> int:
        key = self.key(f, t)
        if key not in self.cache:
            p = evaluate(f, t, self.framework, self.source)
            self.cache[key] = 2 if not p.problems else 1
        return self.cache[key]


def _class_of(t: TargetLayer, framework: str) -> str | None:
    rule = t.layer_rule(framework)
    return None if rule is None or t.kind is None else rule.flax


def _groups(fs: list[FlaxLayer], ts: list[TargetLayer], framework: str):
    classes = dict.fromkeys([f.cls for f in fs] + [_class_of(t, framework) for t in ts])
    for cls in classes:
        if cls is None:
            continue
        if cls == "*":  # raw parameters: Flax layers of no known class, paired by slot names
            yield cls, [f for f in fs if f.cls is None], [t for t in ts if _class_of(t, framework) == "*"]
            continue
        yield cls, [f for f in fs if f.cls == cls], [t for t in ts if _class_of(t, framework) == cls]


def pair_by_structure(fs, ts, framework, scores: _Scores) -> list[tuple[FlaxLayer, TargetLayer]]:
    out = []
    taken: set[int] = set()
    for _, fg, tg in _groups(fs, ts, framework):
        fg = [f for f in fg if id(f) not in taken]
        for i, j in _align(len(fg), len(tg), lambda i, j, fg=fg, tg=tg: scores(fg[i], tg[j])):
            out.append((fg[i], tg[j]))
            taken.add(id(fg[i]))
    return out


def _same_specs(a: Mapping[str, Spec], b: Mapping[str, Spec]) -> bool:
    return {k: s.shape for k, s in a.items()} == {k: s.shape for k, s in b.items()}


def disagreements(named, fs, ts, framework, scores: _Scores) -> list[str]:
    """Where the order alignment of a whole class contradicts a name pair on same-shaped layers
    that names did not pair (so either could be right)."""
    by_f = {id(f): t for f, t in named}
    by_t = {id(t): f for f, t in named}
    out = []
    for _, fg, tg in _groups(fs, ts, framework):
        named_f = sum(id(f) in by_f for f in fg)
        if named_f == 0 or (named_f == len(fg) and all(id(t) in by_t for t in tg)):
            continue  # no name pair in the class, or every layer named: order says nothing more
        for i, j in _align(len(fg), len(tg), lambda i, j, fg=fg, tg=tg: scores(fg[i], tg[j])):
            f, t = fg[i], tg[j]
            tn, fn = by_f.get(id(f)), by_t.get(id(t))
            if tn is not None and fn is None and tn is not t and _same_specs(tn.specs, t.specs):
                out.append(f"Flax {f.label}: paired by name with {tn.label}, but the layer order pairs it with "
                           f"{t.label} (same shapes, no name partner)")  # fmt: skip
            elif fn is not None and tn is None and fn is not f and _same_specs(fn.specs, f.specs):
                out.append(f"target {t.label}: paired by name with Flax {fn.label}, but the layer order pairs it "
                           f"with Flax {f.label} (same shapes, no name partner)")  # fmt: skip
    return out


def resolve_layouts(pairs: list[Pair]) -> None:
    """Chooses the layout of pairs where several fit (a square kernel) from the layouts the
    other pairs of the same target rule (and Flax module class, when known) proved."""
    groups: dict[Any, list[Pair]] = {}
    for p in pairs:
        if len(p.layouts) > 1 and p.fits:
            mod = type(p.flax.module).__name__ if p.flax.module is not None else None
            groups.setdefault((id(p.target.rule), mod), []).append(p)
    for group in groups.values():
        proven = {p.fits[0] for p in group if len(p.fits) == 1}
        witness = next((p for p in group if len(p.fits) == 1), None)
        for p in group:
            if len(p.fits) == 1:
                continue
            if len(proven) == 1:
                p.rule = p.layouts[next(iter(proven))]
                p.note = f"layout proven by {witness.flax.label} -> {witness.target.label}"
            else:
                why = "no other layer of this type proves which" if not proven else "the other layers disagree"
                p.problems.append(f"{p.flax.label} -> {p.target.label} ({p.target.kind}): several layouts fit the "
                                  f"shapes ({why}); pass source=<the Flax module> or build the layer non-square")  # fmt: skip


@dataclasses.dataclass
class Plan:
    pairs: list[Pair]
    missing: list[str]
    unexpected: list[str]
    ambiguous: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    @property
    def mismatched(self) -> list[str]:
        return [p for pair in self.pairs for p in pair.problems]

    @property
    def warnings(self) -> list[str]:
        out = [w for pair in self.pairs for w in pair.warnings]
        assumed: dict[tuple[str, str], list[str]] = {}
        for pair in self.pairs:
            for name, value in pair.assumed:
                assumed.setdefault((name, _fmt(value)), []).append(pair.flax.label)
        for (name, value), layers in assumed.items():
            shown = ", ".join(layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")
            out.append(f"{name} not read from the Flax model for {len(layers)} layer(s) ({shown}): assumed Flax's "
                       f"default {value}, which equals the target's; pass source=<the Flax module> (with example "
                       f"inputs for compact modules) or hparams={{'*': {{{name!r}: ...}}}} to check it")  # fmt: skip
        return out

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.ambiguous)


def plan(source: FlaxSource, targets: list[TargetLayer], framework: str, mapping: Mapping[str, str] | None) -> Plan:
    """Pairs Flax layers with target layers: ``mapping``, then names, then structure; checks
    every pair and the names against the order."""
    targets = [t for t in targets if t.specs]  # no parameters (LayerNorm without affine): nothing to pair
    _check_hparam_names(source, framework, targets)
    fl, tl = list(source.layers), list(targets)
    pairs: list[Pair] = []
    if mapping:
        fmap, tmap = {f.path: f for f in fl}, {t.name: t for t in tl}
        for src, dst in mapping.items():
            if src not in fmap:
                raise PathError(f"mapping: no Flax layer {src!r}; Flax layers: {[f.path for f in fl]}")
            if dst not in tmap:
                raise PathError(f"mapping: no target layer {dst!r}; target layers: {[t.name for t in tl]}")
            pairs.append(evaluate(fmap[src], tmap[dst], framework, source, "mapping"))
        used = set(mapping.values())
        fl = [f for f in fl if f.path not in mapping]
        tl = [t for t in tl if t.name not in used]
    scores = _Scores(framework, source)
    named = pair_by_name(fl, tl, framework)
    ambiguous = disagreements(named, fl, tl, framework, scores)
    pairs += [evaluate(f, t, framework, source, "name") for f, t in named]
    done_f, done_t = {id(f) for f, _ in named}, {id(t) for _, t in named}
    rest_f = [f for f in fl if id(f) not in done_f]
    rest_t = [t for t in tl if id(t) not in done_t]
    pairs += [evaluate(f, t, framework, source) for f, t in pair_by_structure(rest_f, rest_t, framework, scores)]
    resolve_layouts(pairs)
    paired_f = {id(p.flax) for p in pairs}
    paired_t = {id(p.target) for p in pairs}
    left_shapes = {_shapes(f.specs) for f in source.layers if id(f) not in paired_f}
    frozen = [t for t in targets if id(t) not in paired_t and t.frozen and _shapes(t.specs) not in left_shapes]
    skipped = [f"{t.label}.{n} (frozen parameter with no Flax counterpart, e.g. fixed sinusoidal positions)"
               for t in frozen for n in t.specs]  # fmt: skip
    paired_t |= {id(t) for t in frozen}
    missing = [
        f"{t.label} ({': '.join(x for x in (t.kind, t.note) if x)}): "
        f"{', '.join(f'{k}{list(s.shape)}' for k, s in t.specs.items())}"
        for t in targets if id(t) not in paired_t
    ]
    unexpected = [
        f"{f.label} ({f.cls or 'no rule for slots ' + str(sorted(f.specs))}): "
        f"{', '.join(f'{k}{list(s.shape)}' for k, s in f.specs.items())}"
        for f in source.layers if id(f) not in paired_f
    ]
    order = {id(t): i for i, t in enumerate(targets)}
    pairs.sort(key=lambda p: order[id(p.target)])
    return Plan(pairs, missing, unexpected, ambiguous, skipped)


def _shapes(specs: Mapping[str, Spec]) -> tuple:
    return tuple(sorted(s.shape for s in specs.values()))


def _check_hparam_names(source: FlaxSource, framework: str, targets: list[TargetLayer]) -> None:
    from jinit.interop import _registry

    known = {hp.name for rule in _registry.registered(framework).values() for hp in rule.hparams}
    known |= {hp.name for t in targets if t.layer_rule(framework) is not None for hp in t.rule.hparams}
    known |= {name for specs in _layers._FLAX_HPARAMS.values() for name, *_ in specs}
    unknown = sorted(source.hparams.names() - known)
    if unknown:
        raise RuleError(f"hparams: no layer rule uses {unknown}; known names: {sorted(known)}")
