"""Load Flax variables into an MXNet Gluon block and read them back (``load_gluon``).

Gluon 1.9 uses torch's layouts (Dense ``(out, in)``, Conv ``(O, I/G, *k)``, NCHW) and MXNet
accepts compact buffers only, so every non-identity rule runs in JAX and the result is handed
over without a further copy. ``Parameter.set_data`` copies (mode ``"copy"``); ``"move"`` and
``"share"`` replace the parameter's buffer with the exported NDArray (zero-copy for identity
layouts). Gluon 1.9 has no multi-head attention layer: :func:`gluon_attention` builds one from
four Dense layers that the rules recognise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinit.interop import _layers, _models
from jinit.interop._layouts import Spec
from jinit.interop._models import LoadReport, Staged, TargetLayer
from jinit.interop._mxnet import import_mxnet
from jinit.interop._registry import RAW, builtins, lookup, register_layer, singleton


def _mx():
    return import_mxnet()


def _attention_class():
    return singleton("gluon MultiHeadAttention", _make_attention_class)


def _make_attention_class():
    mx = _mx()
    nn = mx.gluon.nn

    class MultiHeadAttention(mx.gluon.HybridBlock):
        """Flax-compatible multi-head attention: ``out(softmax(q k^T / sqrt(D)) v)`` per head."""

        def __init__(self, embed_dim: int, num_heads: int, **kwargs):
            super().__init__(**kwargs)
            if embed_dim % num_heads:
                raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
            self._heads = int(num_heads)
            self._scale = float((embed_dim // num_heads) ** -0.5)
            with self.name_scope():
                for name in ("query", "key", "value", "out"):
                    setattr(self, name, nn.Dense(int(embed_dim), flatten=False, in_units=int(embed_dim)))

        def _split(self, F, x):  # (B, T, E) -> (B*H, T, D)
            x = F.reshape(x, shape=(0, 0, -4, self._heads, -1))
            return F.reshape(F.transpose(x, axes=(0, 2, 1, 3)), shape=(-3, 0, 0))

        def hybrid_forward(self, F, q, kv):
            Q = self._split(F, self.query(q)) * self._scale
            K, V = self._split(F, self.key(kv)), self._split(F, self.value(kv))
            att = F.softmax(F.batch_dot(Q, K, transpose_b=True), axis=-1)
            o = F.reshape(F.batch_dot(att, V), shape=(-4, -1, self._heads, 0, 0))
            return self.out(F.reshape(F.transpose(o, axes=(0, 2, 1, 3)), shape=(0, 0, -3)))

    return MultiHeadAttention


def gluon_attention(embed_dim: int, num_heads: int, **kwargs: Any) -> Any:
    """A Gluon HybridBlock computing Flax's ``MultiHeadDotProductAttention`` (MXNet 1.9 has none).

    Call it as ``block(x_q, x_kv)`` on ``(batch, time, embed_dim)`` arrays. Its four Dense
    children ``query``, ``key``, ``value``, ``out`` take the Flax ``(E, H, D)`` / ``(H, D, E)``
    kernels reshaped and transposed; ``load_gluon`` pairs it with a Flax attention layer.

    Examples:
      >>> from jinit.interop import gluon_attention
      >>> block = gluon_attention(8, 2)
      >>> sorted(block._children)
      ['key', 'out', 'query', 'value']
    """
    return _attention_class()(int(embed_dim), int(num_heads), **kwargs)


def _unsupported(kind: str):
    def why(block) -> str:
        kw = getattr(block, "_kwargs", None) or {}
        if kind in ("lstm", "gru") and (block._num_layers != 1 or block._dir != 1):
            return "only a one-layer unidirectional RNN maps to a Flax cell"
        if kind.startswith("conv") and not str(kw.get("layout", "NC")).startswith("NC"):
            return f"layout {kw.get('layout')}: only channels-first (NCW/NCHW/NCDHW) layouts are supported"
        if kind == "batch_norm" and kw.get("fix_gamma"):
            return "BatchNorm(scale=False) fixes gamma to 1 and ignores it"
        return ""

    return why


def _register_builtins() -> None:
    mx = _mx()
    nn, rnn = mx.gluon.nn, mx.gluon.rnn
    kinds = [
        (nn.Dense, "dense"), (nn.Conv1DTranspose, "conv_transpose1d"), (nn.Conv2DTranspose, "conv_transpose2d"),
        (nn.Conv3DTranspose, "conv_transpose3d"), (nn.Conv1D, "conv1d"), (nn.Conv2D, "conv2d"),
        (nn.Conv3D, "conv3d"), (nn.Embedding, "embed"), (nn.LayerNorm, "layer_norm"), (nn.BatchNorm, "batch_norm"),
        (rnn.LSTM, "lstm"), (rnn.GRU, "gru"), (_attention_class(), "mha"),
    ]  # fmt: skip
    for cls, kind in kinds:
        register_layer(cls, _layers.builtin(kind, "gluon", _unsupported(kind)))


builtins("gluon", _register_builtins)


def _params(block, prefix: str = "") -> dict[str, Any]:
    out = {prefix + n: p for n, p in block._reg_params.items()}
    for name, child in block._children.items():
        out |= _params(child, f"{prefix}{name}.")
    return out


def _state(params: dict[str, Any], prefix: str, skipped: list[str]) -> dict[str, Any]:
    """The parameters that are state: Gluon constants (``params.get_constant``) are skipped."""
    mx = _mx()
    out = {}
    for n, p in params.items():
        if isinstance(p, mx.gluon.Constant):
            skipped.append(f"{prefix + '.' if prefix else ''}{n} (constant)")
        else:
            out[n] = p
    return out


def _deferred(params) -> str:
    deferred = [n for n, p in params.items() if p._data is None or 0 in p.shape]
    if deferred:
        return f"deferred initialization of {deferred}: initialize() with in_units/in_channels given, or run one forward pass"
    return ""


class GluonTarget(_models.Target):
    framework = "gluon"
    ops_on_target = False

    def __init__(self):
        self.mx = _mx()
        from jinit.interop import _mxnet

        self.io = _mxnet
        self.skipped = []

    def layers(self, model) -> list[TargetLayer]:
        mx = self.mx
        if not isinstance(model, mx.gluon.Block):
            raise TypeError(f"load_gluon expects a gluon Block, got {type(model).__name__}")
        out: list[TargetLayer] = []
        ties = _models.Ties()  # Gluon params= sharing
        self.skipped = []

        def visit(block, name):
            rule = lookup("gluon", block)
            if rule is None:
                own, _ = ties.split(name, _state(dict(block._reg_params), name, self.skipped))
                if own:
                    specs = {n: Spec(tuple(int(d) for d in p.shape), _dtype(p.dtype)) for n, p in own.items()}
                    note = f"parameters of {type(block).__name__}"
                    if type(block).__name__ == "GroupNorm":
                        note += " (MXNet 1.x GroupNorm has one gamma per group, Flax one scale per channel)"
                    out.append(TargetLayer(name, RAW.kind, specs, {}, (block, own), note, RAW))
                for child_name, child in block._children.items():
                    visit(child, f"{name}.{child_name}" if name else child_name)
                return
            params = _state(_params(block), name, self.skipped)
            own, tied = ties.split(name, params)
            if params and not own:  # e.g. a Dense built with params=other.params: loaded with the other
                return
            specs = {n: Spec(tuple(int(d) for d in p.shape), _dtype(p.dtype)) for n, p in params.items()}
            hp = {h.name: v for h in rule.hparams if (v := h.read_target(block)) is not None}
            why = _deferred(params) or rule.why_unsupported(block) or tied
            out.append(TargetLayer(name, None if why else rule.kind, specs, hp, (block, params), why, rule))

        visit(model, "")
        return out

    def export(self, x, mode):
        return self.io.export_array(x, mode)

    def commit(self, layer: TargetLayer, name: str, staged: Staged, mode: str) -> Staged:
        param = layer.ref[1][name]
        nd = staged.value
        if mode == "copy" or not staged.zero_copy or len(param.list_ctx()) != 1 or param.list_ctx()[0] != nd.context:
            param.set_data(nd)
            why = "Parameter.set_data copies" + ("" if mode == "copy" else f" (after: {staged.detail})")
            return Staged(param, False, why)
        param._data = [nd]  # the zero-copy route: Gluon has no public one (set_data copies)
        return Staged(param, True, staged.detail + "; Parameter buffer replaced (no copy)")

    def read(self, layer: TargetLayer, name: str, mode: str):
        return self.io.import_array(layer.ref[1][name].data(), mode)

    def finish(self) -> None:
        self.mx.nd.waitall()


def _dtype(dtype) -> str:
    import numpy as np

    return np.dtype(dtype).name


def load_gluon(
    block: Any,
    variables: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    source: Any = None,
) -> LoadReport:
    """Loads a Flax variables tree into an existing, equivalent, initialized Gluon block.

    Pairing, checks, strictness and the report are those of :func:`jinit.interop.load_torch`;
    target names are child paths (``"0"``, ``"attn.query"``). Parameters must be initialized
    with known shapes (give ``in_units``/``in_channels`` or run one forward pass first).

    Args:
      block: the target ``mxnet.gluon.Block``.
      variables: linen variables, ``nnx.State`` or ``nnx.Module``.
      mode: ``"copy"`` (``set_data``), ``"move"`` or ``"share"`` (the parameter's buffer is the
        exported NDArray: zero-copy where the layout is the identity).
      strict, mapping, hparams, source: as in ``load_torch``.

    Returns:
      A :class:`LoadReport`.

    Raises:
      PortError: strict and the tree does not fit the block.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from jinit.interop import load_gluon
      >>> from jinit.interop import import_mxnet
      >>> mx = import_mxnet()
      >>> variables = nn.Dense(3).init(jax.random.key(0), jnp.ones((1, 2)))
      >>> dense = mx.gluon.nn.Dense(3, in_units=2); dense.initialize()
      >>> [p.transform for p in load_gluon(dense, variables).params]
      ['rename kernel->weight; transpose', 'identity']
    """
    return _models.load(GluonTarget(), block, variables, mode=mode, strict=strict, mapping=mapping, hparams=hparams,
                        source=source)  # fmt: skip


def params_from_gluon(
    block: Any,
    like: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    source: Any = None,
    report: bool = False,
) -> Any:
    """Builds a Flax variables tree shaped like ``like`` from a Gluon block's parameters.

    See :func:`jinit.interop.params_from_torch`.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from jinit.interop import params_from_gluon
      >>> from jinit.interop import import_mxnet
      >>> mx = import_mxnet()
      >>> like = nn.Dense(3).init(jax.random.key(0), jnp.ones((1, 2)))
      >>> dense = mx.gluon.nn.Dense(3, in_units=2); dense.initialize()
      >>> jax.tree.map(jnp.shape, params_from_gluon(dense, like))
      {'params': {'bias': (3,), 'kernel': (2, 3)}}
    """
    return _models.read(GluonTarget(), block, like, mode=mode, strict=strict, mapping=mapping,
                        hparams=hparams, report=report, source=source)  # fmt: skip
