"""Per-layer conversion rules between Flax (linen and nnx) and torch, Keras and Gluon.

Every rule is data: a tuple of :mod:`~jinit.interop._layouts` operations keyed by the layer
*kind* of the target (``"dense"``, ``"conv2d"``, ``"lstm"``, ...) and the framework, never by a
parameter's name. A Flax layer is recognised by the *set* of its slots (``kernel``+``bias``,
``scale``+``bias``+``mean``+``var``, the eight ``ii..ho`` gates, ...) and the rank of its kernel,
which gives its class; the target layer's type gives its kind; a pair is valid only if the kind
belongs to the class and the converted shapes equal the target's shapes exactly.

Hyper-parameters that are not in the parameter tree (eps, momentum, ``transpose_kernel``,
group count) are carried as metadata: Flax's defaults, overridable per layer, converted to
each framework's convention (torch momentum ``= 1 - m``) and compared with the target layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinit._errors import RuleError
from jinit.interop._layouts import (
    Concat,
    Flip,
    Merge,
    Permute,
    Rename,
    Rule,
    Spec,
    Stack,
    ZeroPartner,
    conv_to_channels_first,
    spatial,
    swap_last_two,
)
from jinit.interop._registry import FRAMEWORKS, HParam, LayerRule

LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("r", "z", "n")
MHA_PROJ = ("query", "key", "value")

# --- Flax side: classes recognised from a layer's slots -----------------------------------------

#: composite Flax layers: the child names that identify them (nnx spells ``if`` as ``if_``).
COMPOSITES: dict[str, frozenset[str]] = {
    "lstm": frozenset(f"{s}{g}" for s in "ih" for g in "ifgo"),
    "gru": frozenset(f"{s}{g}" for s in "ih" for g in "rzn"),
    "mha": frozenset(MHA_PROJ + ("out",)),
}
#: nnx names -> canonical names
ALIASES = {"if_": "if"}


def flax_class(specs: Mapping[str, Spec]) -> str | None:
    """The class of a simple Flax layer from its slots, or None if no rule covers it.

    Examples:
      >>> from jinit.interop._layers import flax_class
      >>> from jinit.interop._layouts import Spec
      >>> flax_class({"kernel": Spec((3, 3, 4, 8)), "bias": Spec((8,))})
      'kernel4'
      >>> flax_class({"scale": Spec((8,)), "bias": Spec((8,)), "mean": Spec((8,)), "var": Spec((8,))})
      'batch_norm'
    """
    s = set(specs)
    if {"mean", "var"} <= s <= {"mean", "var", "scale", "bias"}:
        return "batch_norm"
    if s == {"embedding"}:
        return "embed"
    if "kernel" in s and s <= {"kernel", "bias"}:
        return f"kernel{specs['kernel'].ndim}"
    if s and s <= {"scale", "bias"}:
        return "norm"
    return None


#: target kind -> the Flax class it pairs with
KIND_CLASS: dict[str, str] = {
    "dense": "kernel2",
    "embed": "embed",
    "layer_norm": "norm",
    "rms_norm": "norm",
    "group_norm": "norm",
    "batch_norm": "batch_norm",
    "lstm": "lstm",
    "gru": "gru",
    "mha": "mha",
    **{f"conv{n}d": f"kernel{n + 2}" for n in (1, 2, 3)},
    **{f"conv_transpose{n}d": f"kernel{n + 2}" for n in (1, 2, 3)},
}


# --- hyper-parameters ---------------------------------------------------------------------------

_EPS_ATTRS = ("epsilon", "eps", "variance_epsilon", "layer_norm_eps", "layer_norm_epsilon")


def _heads(specs: Mapping[str, Spec]) -> Any:
    spec = specs.get("query/kernel")
    return spec.shape[1] if spec is not None and spec.ndim == 3 else None


#: Flax-side hyper-parameters per target kind: (name, Flax default, affects output,
#: attribute names on the Flax module, value derived from the slot shapes).
_FLAX_HPARAMS: dict[str, tuple[tuple[str, Any, bool, tuple[str, ...], Any], ...]] = {
    "layer_norm": (("epsilon", 1e-6, True, _EPS_ATTRS, None),),
    "rms_norm": (("epsilon", 1e-6, True, _EPS_ATTRS, None),),
    "group_norm": (("epsilon", 1e-6, True, _EPS_ATTRS, None), ("num_groups", None, True, ("num_groups",), None)),
    "batch_norm": (("epsilon", 1e-5, True, _EPS_ATTRS, None), ("momentum", 0.99, False, ("momentum",), None)),
    "mha": (("num_heads", None, True, ("num_heads",), _heads),),
    **{f"conv_transpose{n}d": (("transpose_kernel", False, True, ("transpose_kernel",), None),) for n in (1, 2, 3)},
}

#: (framework, hyper-parameter) -> how the target layer holds it.
_TARGET_ATTRS: dict[tuple[str, str], Any] = {
    ("torch", "epsilon"): ("eps", "variance_epsilon", "epsilon"),
    ("torch", "momentum"): "momentum",
    ("torch", "num_groups"): "num_groups",
    ("torch", "num_heads"): "num_heads",
    ("keras", "epsilon"): "epsilon",
    ("keras", "momentum"): "momentum",
    ("keras", "num_groups"): "groups",
    ("keras", "num_heads"): ("num_heads", "_num_heads"),
    ("gluon", "epsilon"): lambda b: (getattr(b, "_kwargs", None) or {}).get("eps"),
    ("gluon", "momentum"): lambda b: (getattr(b, "_kwargs", None) or {}).get("momentum"),
    ("gluon", "num_heads"): "_heads",
}

#: Flax value -> framework value, for hparams whose convention differs.
CONVENTIONS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("torch", "momentum"): lambda m: 1.0 - m,
}


def hparams(kind: str, framework: str) -> tuple[HParam, ...]:
    """The hyper-parameters a built-in rule of ``kind`` compares in ``framework``."""
    return tuple(
        HParam(name, _TARGET_ATTRS.get((framework, name)), default, affects, CONVENTIONS.get((framework, name)),
               attrs, derive)
        for name, default, affects, attrs, derive in _FLAX_HPARAMS.get(kind, ())
    )  # fmt: skip


def to_framework(framework: str, name: str, value: Any) -> Any:
    """Converts a Flax hyper-parameter to ``framework``'s convention (torch momentum = 1 - m).

    Examples:
      >>> from jinit.interop._layers import to_framework
      >>> round(to_framework("torch", "momentum", 0.9), 6), to_framework("keras", "momentum", 0.9)
      (0.1, 0.9)
    """
    conv = CONVENTIONS.get((framework, name))
    return conv(value) if conv is not None and value is not None else value


def hparams_for(kind: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flax hyper-parameters of a layer: the Flax defaults overridden by ``given``."""
    out = {name: default for name, default, *_ in _FLAX_HPARAMS.get(kind, ())}
    out.update(given or {})
    return out


# --- rules ----------------------------------------------------------------------------------------


def _renames(pairs: Mapping[str, str]) -> Rule:
    return tuple(Rename(a, b) for a, b in pairs.items() if a != b)


def _gates(prefix: str, gates: str, slot: str, order: str | None = None) -> tuple[str, ...]:
    return tuple(f"{prefix}{g}/{slot}" for g in (order or gates))


def _dense_t(src: str, dst: str) -> Rule:
    return (Rename(src, dst), Permute(dst, (1, 0)))


def _lstm(names: Mapping[str, str], *, transpose: bool, split_bias: bool) -> Rule:
    """LSTM with gates i, f, g(c), o (torch, Keras and Gluon all use this order)."""
    rule: list = []
    for src, key in (("i", "w_ih"), ("h", "w_hh")):
        rule.append(Concat(names[key], _gates(src, "ifgo", "kernel"), axis=1))
        if transpose:
            rule.append(Permute(names[key], (1, 0)))
    rule.append(Concat(names["b_hh"], _gates("h", "ifgo", "bias"), axis=0))
    if split_bias:  # Flax has one (hidden) bias; the input bias is a zero partner.
        rule.append(ZeroPartner(names["b_hh"], names["b_ih"]))
    return tuple(rule)


def _gru(names: Mapping[str, str], order: str, *, transpose: bool, stacked_bias: bool) -> Rule:
    """GRU: Flax has input biases for r, z, n and a recurrent bias only for n."""
    rule: list = [ZeroPartner("ir/bias", "hr/bias"), ZeroPartner("iz/bias", "hz/bias")]
    for src, key in (("i", "w_ih"), ("h", "w_hh")):
        rule.append(Concat(names[key], _gates(src, "rzn", "kernel", order), axis=1))
        if transpose:
            rule.append(Permute(names[key], (1, 0)))
    if stacked_bias:  # Keras reset_after=True: bias (2, 3u) = [input; recurrent]
        rule += [
            Concat("~b_ih", _gates("i", "rzn", "bias", order)),
            Concat("~b_hh", _gates("h", "rzn", "bias", order)),
            Stack(names["bias"], ("~b_ih", "~b_hh"), axis=0),
        ]
    else:
        rule += [
            Concat(names["b_ih"], _gates("i", "rzn", "bias", order)),
            Concat(names["b_hh"], _gates("h", "rzn", "bias", order)),
        ]
    return tuple(rule)


def _mha_separate(names: Mapping[str, str]) -> Rule:
    """q/k/v/out DenseGeneral -> four (out, in) matrices named by ``names``."""
    rule: list = []
    for p in MHA_PROJ:
        rule += [Merge(f"{p}/kernel", 1, 3), *_dense_t(f"{p}/kernel", names[f"{p}.weight"])]
        rule += [Merge(f"{p}/bias", 0, 2), Rename(f"{p}/bias", names[f"{p}.bias"])]
    rule += [Merge("out/kernel", 0, 2), *_dense_t("out/kernel", names["out.weight"])]
    rule += [Rename("out/bias", names["out.bias"])]
    return tuple(rule)


def _mha_torch() -> Rule:
    """torch packed in_proj: weight (3E, E) = [q; k; v], each q = kernel.reshape(E, H*D).T."""
    sep = {f"{p}.weight": f"~{p}w" for p in MHA_PROJ} | {f"{p}.bias": f"~{p}b" for p in MHA_PROJ}
    sep |= {"out.weight": "out_proj.weight", "out.bias": "out_proj.bias"}
    return _mha_separate(sep) + (
        Concat("in_proj_weight", tuple(f"~{p}w" for p in MHA_PROJ), axis=0),
        Concat("in_proj_bias", tuple(f"~{p}b" for p in MHA_PROJ), axis=0),
    )


def _conv(framework: str, n: int) -> Rule:
    if framework == "keras":
        return ()
    return (Rename("kernel", "weight"), Permute("weight", conv_to_channels_first(n)))


def _conv_transpose(framework: str, n: int, transpose_kernel: bool) -> Rule:
    """Flax ConvTranspose (``transpose_kernel=False``) is a conv of the dilated input with the
    kernel as is; torch/Keras/Gluon use the gradient-of-conv convention: flip space, swap I/O."""
    if framework == "keras":  # kernel (*k, out, in)
        return () if transpose_kernel else (Permute("kernel", swap_last_two(n)), Flip("kernel", spatial(n)))
    # torch / Gluon weight (in, out, *k)
    if transpose_kernel:  # Flax kernel (*k, out, in)
        return (Rename("kernel", "weight"), Permute("weight", conv_to_channels_first(n)))
    return (
        Rename("kernel", "weight"),
        Permute("weight", (n, n + 1) + spatial(n)),
        Flip("weight", spatial(n, 2)),
    )


_TORCH_NAMES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
_KERAS_NAMES = {"scale": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}
_GLUON_NAMES = {"scale": "gamma", "bias": "beta", "mean": "running_mean", "var": "running_var"}
_NORM_NAMES = {"torch": _TORCH_NAMES, "keras": _KERAS_NAMES, "gluon": _GLUON_NAMES}
_RNN = {
    "torch": {"w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"},
    "gluon": {"w_ih": "l0_i2h_weight", "w_hh": "l0_h2h_weight", "b_ih": "l0_i2h_bias", "b_hh": "l0_h2h_bias"},
    "keras": {"w_ih": "kernel", "w_hh": "recurrent_kernel", "b_ih": "~unused", "b_hh": "bias", "bias": "bias"},
}


def _norm(kind: str):
    def build(framework: str, hp: Mapping[str, Any]) -> Rule:
        names = _NORM_NAMES[framework]
        return _renames({k: v for k, v in names.items() if kind == "batch_norm" or k in ("scale", "bias")})

    return build


def _rms(framework: str, hp: Mapping[str, Any]) -> Rule:
    return {"torch": (Rename("scale", "weight"),), "keras": (), "gluon": (Rename("scale", "gamma"),)}[framework]


def _gru_rule(framework: str, hp: Mapping[str, Any]) -> Rule:
    if framework == "keras":
        return _gru(_RNN["keras"], "zrn", transpose=False, stacked_bias=True)
    return _gru(_RNN[framework], "rzn", transpose=True, stacked_bias=False)


def _mha(framework: str, hp: Mapping[str, Any]) -> Rule:
    if framework == "torch":
        return _mha_torch()
    if framework == "keras":
        return (Rename("out/kernel", "attention_output/kernel"), Rename("out/bias", "attention_output/bias"))
    return _mha_separate({f"{p}.{w}": f"{p}.{w}" for p in MHA_PROJ + ("out",) for w in ("weight", "bias")})


#: kind -> (framework, Flax hyper-parameters) -> the layout operations
_BUILD: dict[str, Callable[[str, Mapping[str, Any]], Rule]] = {
    "dense": lambda fw, hp: () if fw == "keras" else _dense_t("kernel", "weight"),
    "embed": lambda fw, hp: (Rename("embedding", "embeddings" if fw == "keras" else "weight"),),
    "layer_norm": _norm("layer_norm"),
    "group_norm": _norm("group_norm"),
    "batch_norm": _norm("batch_norm"),
    "rms_norm": _rms,
    "lstm": lambda fw, hp: _lstm(_RNN[fw], transpose=fw != "keras", split_bias=fw != "keras"),
    "gru": _gru_rule,
    "mha": _mha,
    **{f"conv{n}d": lambda fw, hp, n=n: _conv(fw, n) for n in (1, 2, 3)},
    **{f"conv_transpose{n}d": lambda fw, hp, n=n: _conv_transpose(fw, n, bool(hp["transpose_kernel"]))
       for n in (1, 2, 3)},
}  # fmt: skip


def rule(kind: str, framework: str, hparams: Mapping[str, Any] | None = None) -> Rule:
    """The built-in conversion rule from a Flax layer to a ``framework`` layer of ``kind``.

    Args:
      kind: the target layer kind (see :data:`KIND_CLASS`).
      framework: ``"torch"``, ``"keras"`` or ``"gluon"``.
      hparams: Flax hyper-parameters that change the layout (``transpose_kernel``).

    Raises:
      RuleError: no rule for this kind and framework.

    Examples:
      >>> from jinit.interop._layers import rule
      >>> [op.describe() for op in rule("dense", "torch")]
      ['rename kernel->weight', 'transpose']
      >>> rule("dense", "keras")
      ()
    """
    if framework not in FRAMEWORKS:
        raise RuleError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")
    build = _BUILD.get(kind)
    if build is None:
        raise RuleError(f"no conversion rule for layer kind {kind!r} ({framework}); supported: {sorted(KIND_CLASS)}")
    return build(framework, hparams_for(kind, hparams))


def builtin(kind: str, framework: str, unsupported: Callable[[Any], str] | None = None) -> LayerRule:
    """The :class:`LayerRule` of a built-in kind for ``framework``."""
    return LayerRule(kind, KIND_CLASS[kind], lambda hp: rule(kind, framework, hp), (),
                     hparams(kind, framework), unsupported)  # fmt: skip


def describe_rules() -> list[tuple[str, str, str, str]]:
    """A (kind, torch, keras, gluon) table of the transforms, for docs and reports."""
    rows = []
    for kind in sorted(KIND_CLASS):
        rows.append((kind, *(" ; ".join(op.describe() for op in rule(kind, fw)) or "identity" for fw in FRAMEWORKS)))
    return rows
