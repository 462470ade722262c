"""Load Flax variables into a torch ``nn.Module`` and read them back (``load_torch``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinit.interop import _layers, _models
from jinit.interop._layouts import Permute, Rename, spec_of
from jinit.interop._models import LoadReport, Staged, TargetLayer
from jinit.interop._registry import RAW, LayerRule, builtins, lookup, register_layer
from jinit.interop._torch import import_torch

_COUNTERS = {"num_batches_tracked"}  # BatchNorm's step counter: no Flax counterpart


def _unsupported(kind: str):
    """Why a module of a known type still cannot be paired (a configuration Flax lacks)."""

    def why(m) -> str:
        if kind in ("lstm", "gru"):
            if m.num_layers != 1 or m.bidirectional or getattr(m, "proj_size", 0) or not m.bias:
                return (f"{type(m).__name__} with num_layers={m.num_layers}, bidirectional={m.bidirectional}, "
                        f"bias={m.bias}: only one unidirectional layer with biases maps to a Flax cell")  # fmt: skip
        if kind == "mha" and (not m._qkv_same_embed_dim or m.bias_k is not None or m.in_proj_bias is None):
            return "MultiheadAttention needs kdim == vdim == embed_dim, bias=True and add_bias_kv=False"
        return ""

    return why


_EPS = ("eps", "variance_epsilon", "epsilon")


def _direct(m) -> dict[str, Any]:
    return {n: p for n, p in m._parameters.items() if p is not None}


def _is_rms_norm(m) -> bool:
    """A norm holding only a 1-D ``weight`` and an eps (T5LayerNorm, LlamaRMSNorm, ...)."""
    params = _direct(m)
    return (not m._modules and set(params) == {"weight"} and params["weight"].dim() == 1
            and not _state_buffers(m) and any(isinstance(getattr(m, a, None), float) for a in _EPS))  # fmt: skip


def _is_linear_in_out(m) -> bool:
    """A Linear storing its weight as (in, out) with ``nf`` outputs (GPT-style ``Conv1D``)."""
    params = _direct(m)
    w = params.get("weight")
    return (not m._modules and w is not None and w.dim() == 2 and set(params) <= {"weight", "bias"}
            and getattr(m, "nf", None) == w.shape[1])  # fmt: skip


def _state_buffers(m) -> dict[str, Any]:
    return {n: b for n, b in m._buffers.items() if b is not None and n not in m._non_persistent_buffers_set}


def _register_builtins() -> None:
    nn = import_torch().nn
    kinds = [
        (nn.MultiheadAttention, "mha"), (nn.Linear, "dense"),
        (nn.Conv1d, "conv1d"), (nn.Conv2d, "conv2d"), (nn.Conv3d, "conv3d"),
        (nn.ConvTranspose1d, "conv_transpose1d"), (nn.ConvTranspose2d, "conv_transpose2d"),
        (nn.ConvTranspose3d, "conv_transpose3d"), (nn.Embedding, "embed"), (nn.LayerNorm, "layer_norm"),
        (nn.GroupNorm, "group_norm"), (nn.modules.batchnorm._BatchNorm, "batch_norm"), (nn.LSTM, "lstm"),
        (nn.GRU, "gru"),
    ]  # fmt: skip
    for cls, kind in kinds:
        register_layer(cls, _layers.builtin(kind, "torch", _unsupported(kind)))
    rms = _layers.builtin("rms_norm", "torch")
    if hasattr(nn, "RMSNorm"):
        register_layer(nn.RMSNorm, rms)
    register_layer(_is_rms_norm, rms, framework="torch")
    register_layer(_is_linear_in_out, LINEAR_IN_OUT, framework="torch")
    register_layer(_is_weight_norm, WEIGHT_NORM, framework="torch", before_classes=True)


def _is_weight_norm(m) -> bool:
    """A module whose ``weight`` is parametrized by ``torch.nn.utils.parametrizations.weight_norm``."""
    plist = getattr(getattr(m, "parametrizations", None), "weight", None)
    return plist is not None and len(plist) == 1 and type(plist[0]).__name__ == "_WeightNorm"


#: weight norm: the Flax layer keeps the magnitude ``weight_g`` and direction ``weight_v`` in torch's layout
WEIGHT_NORM = LayerRule("weight_norm", flax="*", ops=(
    Rename("weight_g", "parametrizations.weight.original0"), Rename("weight_v", "parametrizations.weight.original1")))


#: a Linear whose weight is (in, out): the Flax kernel as is (nn.Dense), or transposed when the
#: Flax layer keeps (out, in) like the weight of a torch Linear.
LINEAR_IN_OUT = LayerRule("linear_in_out", flax="kernel2", ops=(Rename("kernel", "weight"),),
                          alternatives=((Rename("kernel", "weight"), Permute("weight", (1, 0))),))  # fmt: skip

builtins("torch", _register_builtins)


def _tensors(m, recurse: bool, prefix: str, skipped: list[str]) -> dict[str, Any]:
    """Parameters and state buffers of ``m`` (non-persistent buffers go to ``skipped``)."""
    out = {}
    for sub_name, sub in m.named_modules() if recurse else [("", m)]:
        pre = f"{sub_name}." if sub_name else ""
        out |= {pre + n: p for n, p in sub._parameters.items() if p is not None}
        for n, b in sub._buffers.items():
            if b is None:
                continue
            full = ".".join(x for x in (prefix, pre + n) if x)
            if n in sub._non_persistent_buffers_set:
                skipped.append(f"{full} (non-persistent buffer)")
            elif n in _COUNTERS:
                skipped.append(f"{full} (BatchNorm step counter; Flax keeps none)")
            else:
                out[pre + n] = b
    return out


def _frozen(tensors: dict[str, Any]) -> bool:
    """Every tensor is a parameter that is not trained (requires_grad=False)."""
    return bool(tensors) and all(getattr(t, "requires_grad", True) is False and t.is_leaf and
                                 type(t).__name__ == "Parameter" for t in tensors.values())  # fmt: skip


def _aliases(model) -> dict[int, list[tuple[Any, str]]]:
    """Tensors registered in more than one place: id -> every (module, attribute) holding it."""
    places: dict[int, list[tuple[Any, str]]] = {}
    for m in model.modules():
        for attr, t in list(m._parameters.items()) + list(m._buffers.items()):
            if t is not None:
                places.setdefault(id(t), []).append((m, attr))
    return {k: v for k, v in places.items() if len(v) > 1}


class TorchTarget(_models.Target):
    framework = "torch"
    ops_on_target = True

    def __init__(self):
        from jinit.interop import _torch

        self.torch = _torch.import_torch()
        self.io = _torch
        self.skipped = []

    def layers(self, model) -> list[TargetLayer]:
        nn = self.torch.nn
        if not isinstance(model, nn.Module):
            raise TypeError(f"load_torch expects a torch.nn.Module, got {type(model).__name__}")
        out: list[TargetLayer] = []
        taken: list[str] = []
        ties = _models.Ties()
        self.aliases = _aliases(model)
        self.skipped = []
        for name, m in model.named_modules():
            if any(name == t or name.startswith(t + ".") if t else True for t in taken):
                continue
            rule = lookup("torch", m)
            if rule is None:
                own, _ = ties.split(name, _tensors(m, False, name, self.skipped))
                if own:
                    specs = {n: spec_of(t) for n, t in own.items()}
                    out.append(TargetLayer(name, RAW.kind, specs, {}, m, f"parameters of {type(m).__name__}", RAW,
                                           frozen=_frozen(own)))  # fmt: skip
                continue
            taken.append(name)
            tensors = _tensors(m, True, name, self.skipped)
            own, tied = ties.split(name, tensors)
            if tensors and not own:  # e.g. an output head tied to the embedding: loaded with it
                continue
            specs = {n: spec_of(t) for n, t in tensors.items()}
            hp = {h.name: v for h in rule.hparams if (v := h.read_target(m)) is not None}
            why = rule.why_unsupported(m) or tied
            out.append(TargetLayer(name, None if why else rule.kind, specs, hp, m, why, rule, frozen=_frozen(tensors)))
        return out
    def export(self, x, mode):
        return self.io.export_array(x, mode)

    def shares(self, a, b) -> bool:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()

    def commit(self, layer: TargetLayer, name: str, staged: Staged, mode: str) -> Staged:
        owner_name, _, leaf = name.rpartition(".")
        owner = layer.ref.get_submodule(owner_name) if owner_name else layer.ref
        old = getattr(owner, leaf)
        value = staged.value
        if mode == "copy":
            with self.torch.no_grad():
                old.copy_(value)
            return Staged(old, False, "copied into the module's existing tensor (copy mode)")
        if leaf in owner._parameters:
            new = self.torch.nn.Parameter(value, requires_grad=old.requires_grad)
        else:
            new = value
        setattr(owner, leaf, new)  # RNN modules refresh their flat weight list in __setattr__
        for module, attr in self.aliases.get(id(old), ()):  # keep tied weights tied
            if getattr(module, attr) is old:
                setattr(module, attr, new)
        detail = staged.detail
        if staged.zero_copy and not value.is_contiguous():
            detail += (" (non-contiguous: F.linear runs at full speed on it)" if layer.kind in ("dense", "mha")
                       else " (non-contiguous: torch repacks it on every call; mode='copy' gives a packed tensor)")  # fmt: skip
        return Staged(new, staged.zero_copy, detail)

    def read(self, layer: TargetLayer, name: str, mode: str):
        tensors = dict(layer.ref.named_parameters()) | dict(layer.ref.named_buffers())
        return self.io.import_array(tensors[name], mode)


def load_torch(
    module: Any,
    variables: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    source: Any = None,
) -> LoadReport:
    """Loads a Flax variables tree into an existing, equivalent torch module.

    Layers are paired by name first (normalized paths: ``bert/encoder/layer/0/attention/self/query``
    pairs with ``bert.encoder.layer.0.attention.self.query``), then, for the layers left (linen's
    ``Dense_0`` against ``fc1``), by class and order; ``mapping`` pins pairs explicitly. Dict key
    order never matters. Every pair is checked by its conversion rule: converted shapes and dtypes
    must equal the module's exactly, and hyper-parameters (eps, heads; torch momentum is ``1 - m``
    of Flax's) must agree. Non-persistent buffers (``position_ids``, causal masks) are skipped
    and listed in ``report.skipped``. Layer types without a built-in rule get one from
    :func:`jinit.interop.register_layer`; :func:`jinit.interop.plan` shows the pairing first.

    Args:
      module: the target ``torch.nn.Module`` (built with the Flax model's hyper-parameters).
      variables: linen ``{"params": ..., "batch_stats": ...}``, an ``nnx.State`` or ``nnx.Module``.
      mode: ``"copy"`` (default: values are copied into the module's existing tensors, so
        optimizers holding them stay valid), ``"move"`` (new parameters alias the Flax buffers
        where the layout allows, e.g. a Linear weight is a transposed view; the Flax arrays are
        then deleted) or ``"share"`` (alias, the Flax arrays stay usable: writes are visible on
        both sides).
      strict: raise :class:`jinit.PortError` listing every missing, unexpected, mismatched and
        ambiguous entry (and change nothing) unless the whole tree fits; with False, load the
        pairs that fit, list the rest in the report and warn about ambiguous pairs.
      mapping: Flax layer path -> torch module name, for pairs names and structure cannot find.
      hparams: Flax hyper-parameters per Flax layer path (``{"LayerNorm_0": {"epsilon": 1e-5}}``),
        per regular expression (``{r".*LayerNorm": {...}}``) or for every layer (``{"*": {...}}``).
      source: the Flax module the variables belong to (a linen Module, an nnx Module, or
        ``model.module`` of a Hugging Face Flax model): hyper-parameters are read from it. An
        ``nnx.Module`` passed as ``variables`` is its own source.

    Returns:
      A :class:`LoadReport` with one entry per torch parameter (source paths, transform,
      zero-copy or copied and why).

    Raises:
      PortError: strict and the tree does not fit the module (``.report`` has the lists).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, torch
      >>> from jinit.interop import load_torch
      >>> mlp = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(1)])
      >>> variables = mlp.init(jax.random.key(0), jnp.ones((2, 4)))
      >>> tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
      >>> report = load_torch(tm, variables)
      >>> [(p.target, p.transform) for p in report.params][:2]
      [('0.weight', 'rename kernel->weight; transpose'), ('0.bias', 'identity')]
    """
    return _models.load(TorchTarget(), module, variables, mode=mode, strict=strict, mapping=mapping, hparams=hparams,
                        source=source)  # fmt: skip


def params_from_torch(
    module: Any,
    like: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    source: Any = None,
    report: bool = False,
) -> Any:
    """Builds a Flax variables tree from a torch module's parameters.

    ``like`` (a Flax variables tree, ``nnx.State`` or ``nnx.Module``) gives the structure,
    paths, shapes and dtypes; pairing and checks are those of :func:`load_torch`, and every
    rule is inverted (torch LSTM ``b_ih + b_hh`` is summed into Flax's one bias).

    Args:
      module: the source ``torch.nn.Module``.
      like: the Flax tree to mirror; its values are not used (only kept for unpaired leaves
        when ``strict=False``).
      mode: ``"copy"`` (default) or ``"share"`` (identity-layout leaves alias torch memory).
      strict, mapping, hparams, source: as in :func:`load_torch`.
      report: also return a :class:`LoadReport`.

    Returns:
      A tree of the same type and structure as ``like`` (and the report if asked).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, torch
      >>> from jinit.interop import params_from_torch
      >>> like = nn.Dense(3).init(jax.random.key(0), jnp.ones((1, 2)))
      >>> out = params_from_torch(torch.nn.Linear(2, 3), like)
      >>> jax.tree.map(jnp.shape, out)
      {'params': {'bias': (3,), 'kernel': (2, 3)}}
    """
    return _models.read(TorchTarget(), module, like, mode=mode, strict=strict, mapping=mapping,
                        hparams=hparams, report=report, source=source)  # fmt: skip
