"""Load Flax variables into a torch ``nn.Module`` and read them back (``load_torch``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinit.interop import _models
from jinit.interop._layouts import spec_of
from jinit.interop._models import LoadReport, Staged, TargetLayer

_SKIP_BUFFERS = {"num_batches_tracked"}


def _kinds(nn) -> list[tuple[type, str]]:
    return [
        (nn.MultiheadAttention, "mha"),
        (nn.Linear, "dense"),
        (nn.Conv1d, "conv1d"),
        (nn.Conv2d, "conv2d"),
        (nn.Conv3d, "conv3d"),
        (nn.ConvTranspose1d, "conv_transpose1d"),
        (nn.ConvTranspose2d, "conv_transpose2d"),
        (nn.ConvTranspose3d, "conv_transpose3d"),
        (nn.Embedding, "embed"),
        (nn.LayerNorm, "layer_norm"),
        (nn.GroupNorm, "group_norm"),
        (nn.modules.batchnorm._BatchNorm, "batch_norm"),
        (nn.LSTM, "lstm"),
        (nn.GRU, "gru"),
    ]


def _unsupported(m, kind: str) -> str:
    """Why a module of a known type still cannot be paired (a configuration Flax lacks)."""
    if kind in ("lstm", "gru"):
        if m.num_layers != 1 or m.bidirectional or getattr(m, "proj_size", 0) or not m.bias:
            return (f"{type(m).__name__} with num_layers={m.num_layers}, bidirectional={m.bidirectional}, "
                    f"bias={m.bias}: only one unidirectional layer with biases maps to a Flax cell")  # fmt: skip
    if kind == "mha" and (not m._qkv_same_embed_dim or m.bias_k is not None or m.in_proj_bias is None):
        return "MultiheadAttention needs kdim == vdim == embed_dim, bias=True and add_bias_kv=False"
    return ""


def _hparams(m, kind: str) -> dict[str, Any]:
    if kind in ("layer_norm", "batch_norm", "group_norm"):
        hp = {"epsilon": m.eps}
        if kind == "batch_norm":
            hp["momentum"] = m.momentum
        if kind == "group_norm":
            hp["num_groups"] = m.num_groups
        return hp
    return {}


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

    def layers(self, model) -> list[TargetLayer]:
        nn = self.torch.nn
        if not isinstance(model, nn.Module):
            raise TypeError(f"load_torch expects a torch.nn.Module, got {type(model).__name__}")
        kinds = _kinds(nn)
        out: list[TargetLayer] = []
        taken: list[str] = []
        ties = _models.Ties()
        self.aliases = _aliases(model)
        for name, m in model.named_modules():
            if any(name == t or name.startswith(t + ".") if t else True for t in taken):
                continue
            kind = next((k for cls, k in kinds if isinstance(m, cls)), None)
            if kind is None:
                own, _ = ties.split(name, dict(m.named_parameters(recurse=False)) | {
                    n: b for n, b in m.named_buffers(recurse=False) if n not in _SKIP_BUFFERS
                })  # fmt: skip
                if own:
                    specs = {n: spec_of(t) for n, t in own.items()}
                    out.append(TargetLayer(name, None, specs, {}, m, f"unsupported type {type(m).__name__}"))
                continue
            taken.append(name)
            tensors = dict(m.named_parameters())
            tensors |= {n: t for n, t in m.named_buffers() if n.split(".")[-1] not in _SKIP_BUFFERS}
            own, tied = ties.split(name, tensors)
            if tensors and not own:  # e.g. an output head tied to the embedding: loaded with it
                continue
            specs = {n: spec_of(t) for n, t in tensors.items()}
            why = _unsupported(m, kind) or tied
            out.append(TargetLayer(name, None if why else kind, specs, _hparams(m, kind), m, why))
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
) -> LoadReport:
    """Loads a Flax variables tree into an existing, equivalent torch module.

    Layers are paired by structure: for each layer class (dense, conv of each rank, norms,
    embeddings, LSTM, GRU, attention), the Flax layers in creation order and the module's
    layers in registration order are aligned, and every pair is checked by its conversion rule:
    converted shapes and dtypes must equal the module's exactly, and eps must agree (torch
    momentum is ``1 - m`` of Flax's). ``mapping`` pins pairs explicitly
    (``{"Dense_0": "fc1"}``); the rest is still paired by structure.

    Args:
      module: the target ``torch.nn.Module`` (built with the Flax model's hyper-parameters).
      variables: linen ``{"params": ..., "batch_stats": ...}``, an ``nnx.State`` or ``nnx.Module``.
      mode: ``"copy"`` (default: values are copied into the module's existing tensors, so
        optimizers holding them stay valid), ``"move"`` (new parameters alias the Flax buffers
        where the layout allows, e.g. a Linear weight is a transposed view; the Flax arrays are
        then deleted) or ``"share"`` (alias, the Flax arrays stay usable: writes are visible on
        both sides).
      strict: raise :class:`jinit.PortError` listing every missing, unexpected and mismatched
        entry (and change nothing) unless the whole tree fits; with False, load the pairs that
        fit and list the rest in the report.
      mapping: Flax layer path -> torch module name, for pairs structure cannot find.
      hparams: Flax hyper-parameters that differ from Flax's defaults, per Flax layer path
        (``{"LayerNorm_0": {"epsilon": 1e-5}}``); read automatically from an ``nnx.Module``.

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
    return _models.load(TorchTarget(), module, variables, mode=mode, strict=strict, mapping=mapping, hparams=hparams)


def params_from_torch(
    module: Any,
    like: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
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
      strict, mapping, hparams: as in :func:`load_torch`.
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
                        hparams=hparams, report=report)  # fmt: skip
