"""Model level: pair a Flax variables tree with another framework's model and port it.

The framework-neutral half of ``load_torch`` / ``load_keras`` / ``load_gluon``,
``params_from_*`` and :func:`plan`: read the Flax tree into layers, pair them with the target's
layers (mapping, names, structure), check every pair by shape, dtype and hyper-parameters,
report missing, unexpected, mismatched and ambiguous entries together, and only then convert and
commit. Each framework module supplies a :class:`Target` that lists its layers and moves arrays.
"""

from __future__ import annotations

import abc
import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

from jinit._errors import PortError, RuleError
from jinit.interop import _layouts, _pairing
from jinit.interop._pairing import Pair, Plan, TargetLayer, evaluate  # noqa: F401  (re-exported)
from jinit.interop._source import FlaxSource, read_flax  # noqa: F401  (re-exported)

MODES = ("copy", "move", "share")


class PortWarning(UserWarning):
    """A port that went ahead (``strict=False``) although the pairing is ambiguous or a
    hyper-parameter could not be checked."""


# --- the target side ------------------------------------------------------------------------------


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

    #: target tensors left alone because they are not state (filled by ``layers``)
    skipped: list[str]

    @abc.abstractmethod
    def layers(self, model: Any) -> list[TargetLayer]:
        """The model's parameterised layers in registration order; also sets ``skipped``."""

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
      paired_by: how its layer was paired: ``"name"``, ``"structure"`` (class and order) or
        ``"mapping"``.
    """

    source: tuple[str, ...]
    target: str
    transform: str
    zero_copy: bool
    detail: str
    paired_by: str = "structure"


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """The result of a load (Flax -> framework) or read (framework -> Flax).

    ``missing``: target parameters no Flax leaf fills; ``unexpected``: Flax layers with no place
    in the target; ``mismatched``: paired layers whose shapes, dtypes or output-changing
    hyper-parameters (eps) disagree; ``ambiguous``: layers that names pair one way and the layer
    order another; ``warnings``: training-only hyper-parameter differences (momentum) and values
    that could not be checked; ``skipped``: target tensors that are not state (torch
    non-persistent buffers, Gluon constants), left as they are. ``ok`` is True when missing,
    unexpected, mismatched and ambiguous are empty.
    """

    framework: str
    direction: str
    mode: str
    params: tuple[ParamReport, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.ambiguous)

    @property
    def zero_copy(self) -> int:
        """How many parameters alias the Flax buffers."""
        return sum(p.zero_copy for p in self.params)

    def problems(self) -> str:
        parts = []
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("mismatched", self.mismatched), ("ambiguous", self.ambiguous)):  # fmt: skip
            if items:
                parts.append(f"{title} ({len(items)}):\n" + "\n".join(f"  {i}" for i in items))
        return "\n".join(parts)

    def __str__(self) -> str:
        head = f"{self.direction} {self.framework} (mode={self.mode}): {len(self.params)} parameters, {self.zero_copy} zero-copy"
        rows = [("source", "target", "paired by", "transform", "zero-copy", "detail")] + [
            ("+".join(p.source), p.target, p.paired_by, p.transform, "yes" if p.zero_copy else "no", p.detail)
            for p in self.params
        ]
        lines = [head] + _table(rows)
        extra = self.problems()
        for title, items in (("skipped", self.skipped), ("warnings", self.warnings)):
            if items:
                extra += f"\n{title}:\n" + "\n".join(f"  {w}" for w in items)
        return "\n".join(lines) + ("\n" + extra.lstrip("\n") if extra else "")


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]


# --- the dry run ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlanEntry:
    """One pair of a :class:`PortPlan`: a Flax layer, the target layer it fills and how."""

    flax: str
    target: str
    kind: str
    paired_by: str
    transform: str
    problems: tuple[str, ...] = ()
    hparams: tuple[str, ...] = ()  # "epsilon=1e-12 (source)": each Flax value and where it came from


@dataclasses.dataclass(frozen=True)
class PortPlan:
    """The pairing a load would use, without loading (see :func:`plan`).

    ``entries`` lists the pairs in target order; ``missing``, ``unexpected``, ``mismatched``,
    ``ambiguous``, ``warnings`` and ``skipped`` are those the load's report would show.
    :meth:`mapping` gives the pairs as a ``mapping=`` dict to copy and edit.
    """

    framework: str
    entries: tuple[PlanEntry, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.ambiguous)

    def mapping(self) -> dict[str, str]:
        """``{flax_layer: target_layer}`` for every pair (a ready ``mapping=`` argument)."""
        return {e.flax: e.target for e in self.entries}

    def __str__(self) -> str:
        rows = [("flax", "target", "kind", "paired by", "hyper-parameters", "transform")]
        rows += [(e.flax or "(root)", e.target or "(root)", e.kind, e.paired_by, ", ".join(e.hparams) or "-",
                  e.transform) for e in self.entries]  # fmt: skip
        ok = "fits" if self.ok else "does not fit"
        lines = [f"plan for {self.framework}: {len(self.entries)} pairs, {ok}"] + _table(rows)
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("mismatched", self.mismatched), ("ambiguous", self.ambiguous),
                             ("warnings", self.warnings), ("skipped", self.skipped)):  # fmt: skip
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  {i}" for i in items]
        return "\n".join(lines)


def _entries(p: Plan) -> tuple[PlanEntry, ...]:
    out = []
    for pair in p.pairs:
        transform = "; ".join(op.describe() for op in pair.rule) or ("identity" if not pair.problems else "-")
        if pair.note:
            transform += f" ({pair.note})"
        hps = tuple(f"{k}={_short(v.value)} ({_ORIGINS[v.origin[:4]]})" for k, v in pair.hparams.items() if v is not None)
        out.append(PlanEntry(pair.flax.path, pair.target.name, pair.target.kind or "-", pair.by, transform,
                             tuple(pair.problems), hps))  # fmt: skip
    return tuple(out)


_ORIGINS = {"hpar": "hparams", "sour": "source", "para": "shapes", "assu": "assumed"}


def _short(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _targets() -> dict[str, tuple[str, str]]:
    return {"torch": ("_load_torch", "TorchTarget"), "keras": ("_load_keras", "KerasTarget"),
            "gluon": ("_load_gluon", "GluonTarget")}  # fmt: skip


def target_for(model: Any) -> Target:
    """The :class:`Target` adapter for a torch, Keras (3 or tf-keras) or Gluon model."""
    import importlib

    from jinit.interop._registry import framework_of

    fw = framework_of(type(model))
    if fw is None:
        raise RuleError(f"plan: expected a torch.nn.Module, a Keras (3 or tf-keras) model or layer, or a Gluon "
                        f"Block, got {type(model).__name__}")  # fmt: skip
    module, cls = _targets()[fw]
    return getattr(importlib.import_module(f"jinit.interop.{module}"), cls)()


def plan(
    target: Any,
    variables: Any,
    *,
    source: Any = None,
    mapping: Mapping[str, str] | None = None,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
) -> PortPlan:
    """The pairing ``load_torch`` / ``load_keras`` / ``load_gluon`` would use, without loading.

    Nothing is converted or changed. Use it to see which Flax layer fills which target layer and
    how each pair was found, and to write ``mapping=`` against it.

    Args:
      target: a torch ``nn.Module``, a built Keras 3 or tf-keras model, or a Gluon block.
      variables: the Flax variables (linen dict, ``nnx.State`` or ``nnx.Module``).
      source, mapping, hparams: as in :func:`jinit.interop.load_torch`.

    Returns:
      A :class:`PortPlan` (print it for a table; ``.mapping()`` for a ``mapping=`` dict).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, torch
      >>> from jinit.interop import plan
      >>> variables = nn.Dense(3, name="fc").init(jax.random.key(0), jnp.ones((1, 2)))
      >>> p = plan(torch.nn.Linear(2, 3), variables)
      >>> p.ok, p.mapping()
      (True, {'': ''})
      >>> print(p)  # doctest: +NORMALIZE_WHITESPACE
      plan for torch: 1 pairs, fits
      flax    target  kind   paired by  hyper-parameters  transform
      (root)  (root)  dense  structure  -                 rename kernel->weight; transpose
    """
    adapter = target_for(target)
    src = read_flax(variables, hparams, source, caller="plan")
    p = _pairing.plan(src, adapter.layers(target), adapter.framework, mapping)
    return PortPlan(adapter.framework, _entries(p), tuple(p.missing), tuple(p.unexpected), tuple(p.mismatched),
                    tuple(p.ambiguous), tuple(p.warnings), tuple(adapter.skipped) + tuple(p.skipped))  # fmt: skip


# --- drivers --------------------------------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise RuleError(f"mode must be one of {MODES}, got {mode!r}")


def _report(target: Target, direction: str, mode: str, p: Plan, params=()) -> LoadReport:
    return LoadReport(target.framework, direction, mode, tuple(params), tuple(p.missing), tuple(p.unexpected),
                      tuple(p.mismatched), tuple(p.warnings), tuple(target.skipped) + tuple(p.skipped),
                      tuple(p.ambiguous))  # fmt: skip


def _fail(caller: str, direction: str, target: Target, mode: str, p: Plan, source: FlaxSource) -> PortError:
    report = _report(target, direction, mode, p)
    hint = ""
    if p.ambiguous:
        hint += (" Ambiguous pairs: confirm them with mapping={flax_layer: target_layer} "
                 "(jinit.interop.plan shows the pairing).")  # fmt: skip
    return PortError(
        f"{caller}: the Flax tree and the model do not match; nothing was changed.\n"
        f"{report.problems()}\nFix the model (or pass mapping={{flax_layer: target_layer}}, source=<the Flax "
        f"module> for its hyper-parameters, or strict=False to load only the pairs that fit).{hint}",
        report=report,
    )


def _prepare(target: Target, model: Any, variables: Any, caller: str, direction: str, mode: str, strict: bool,
             mapping, hparams, source) -> tuple[FlaxSource, Plan]:  # fmt: skip
    src = read_flax(variables, hparams, source, caller=caller)
    p = _pairing.plan(src, target.layers(model), target.framework, mapping)
    if strict and not p.ok:
        raise _fail(caller, direction, target, mode, p, src)
    if p.ambiguous:
        warnings.warn(f"{caller}: ambiguous pairs (loaded by name): " + "; ".join(p.ambiguous), PortWarning, stacklevel=4)
    return src, p


def load(
    target: Target,
    model: Any,
    variables: Any,
    *,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    source: Any = None,
) -> LoadReport:
    """Loads a Flax variables tree into ``model`` (see ``load_torch`` for the contract)."""
    _check_mode(mode)
    caller = f"load_{target.framework}"
    _, p = _prepare(target, model, variables, caller, "load", mode, strict, mapping, hparams, source)
    good = [pair for pair in p.pairs if not pair.problems]
    # 1) convert everything (no change to the model yet); export each Flax leaf once.
    exported: dict[int, tuple[Any, Any]] = {}
    staged: list[tuple[Pair, str, tuple[str, ...], str, Staged]] = []
    on_target = target.ops_on_target
    for pair in good:
        f = pair.flax
        lineage = _layouts.lineage(pair.rule, f.specs)
        if on_target:
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
            if on_target:
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
    sep = "/" if target.framework == "keras" else "."
    for pair, name, sources, transform, st in staged:
        done = target.commit(pair.target, name, st, mode)
        tname = f"{pair.target.name}{sep}{name}" if pair.target.name else name
        detail = done.detail + (f"; {pair.note}" if pair.note else "")
        params.append(ParamReport(sources, tname, transform, done.zero_copy, detail, pair.by))
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
    return _report(target, "load", mode, p, params)


def _ptr(x: Any) -> int:
    from jinit.interop._dlpack import jax_ptr

    return jax_ptr(x) if hasattr(x, "unsafe_buffer_pointer") else id(x)


def _own(x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.array(x, copy=True)


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
    source: Any = None,
) -> Any:
    """Builds a Flax variables tree shaped like ``like`` from ``model``'s parameters."""
    if mode not in ("copy", "share"):
        raise RuleError(f"mode must be 'copy' or 'share' when reading into JAX, got {mode!r}")
    caller = f"params_from_{target.framework}"
    src, p = _prepare(target, model, like, caller, "read", mode, strict, mapping, hparams, source)
    values: dict[tuple[str, ...], Any] = {}
    params = []
    sep = "/" if target.framework == "keras" else "."
    for pair in p.pairs:
        if pair.problems:
            continue
        f = pair.flax
        # read aliases, convert in JAX (a converted layout is a new buffer), copy only what still aliases
        env = {name: target.read(pair.target, name, "share") for name in pair.target.specs}
        back = _layouts.invert(pair.rule, env, f.specs)
        lineage = _layouts.lineage(pair.rule, f.specs)
        if mode == "copy":
            shared = {_ptr(x) for x in env.values()}
            back = {slot: _own(x) if _ptr(x) in shared else x for slot, x in back.items()}
        for slot, x in back.items():
            values[f.keys[slot]] = x
        for name, (srcs, transform, _copies) in lineage.items():
            tname = f"{pair.target.name}{sep}{name}" if pair.target.name else name
            detail = "inverse layout applied in JAX" if transform != "identity" else f"imported ({mode})"
            params.append(ParamReport(tuple(f.source(s) for s in srcs), tname, transform, False, detail, pair.by))
    out = src.rebuild(values)
    rep = _report(target, "read", mode, p, params)
    return (out, rep) if report else out
