"""Load Flax variables into a Keras 3 model and read them back (``load_keras``).

Keras stores kernels in Flax's layouts (Dense ``(in, out)``, Conv ``(*k, in, out)``, MHA
``(E, H, D)``), so most rules are renames and the transfer stays zero-copy even on TensorFlow,
which accepts compact buffers only. ``Variable.assign`` on the TensorFlow backend aliases the
exported buffer and copies on the first update (TF never writes into JAX memory); on the JAX
backend it stores the array itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinit.interop import _models
from jinit.interop._layouts import Spec
from jinit.interop._models import LoadReport, Staged, TargetLayer


def _kinds(layers) -> list[tuple[type, str]]:
    return [
        (layers.MultiHeadAttention, "mha"),
        (layers.Dense, "dense"),
        (layers.Conv1DTranspose, "conv_transpose1d"),
        (layers.Conv2DTranspose, "conv_transpose2d"),
        (layers.Conv3DTranspose, "conv_transpose3d"),
        (layers.Conv1D, "conv1d"),
        (layers.Conv2D, "conv2d"),
        (layers.Conv3D, "conv3d"),
        (layers.Embedding, "embed"),
        (layers.LayerNormalization, "layer_norm"),
        (layers.GroupNormalization, "group_norm"),
        (layers.BatchNormalization, "batch_norm"),
        (layers.LSTM, "lstm"),
        (layers.GRU, "gru"),
    ]


def _unsupported(layer, kind: str) -> str:
    if kind == "gru" and not layer.cell.reset_after:
        return "GRU(reset_after=False) applies the reset gate before the recurrent matmul; Flax's GRUCell matches reset_after=True"
    if kind in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return "data_format='channels_first': build it channels_last like Flax"
    if kind == "layer_norm" and getattr(layer, "rms_scaling", False):
        return "rms_scaling=True is RMSNorm, not LayerNorm"
    return ""


def _hparams(layer, kind: str) -> dict[str, Any]:
    hp: dict[str, Any] = {}
    if kind in ("layer_norm", "batch_norm", "group_norm"):
        hp["epsilon"] = layer.epsilon
    if kind == "batch_norm":
        hp["momentum"] = layer.momentum
    if kind == "group_norm":
        hp["num_groups"] = layer.groups
    return hp


def _relative(variable, layer, kind: str) -> str:
    path = variable.path
    prefix = (layer.path or layer.name) + "/"
    rel = path[len(prefix):] if path.startswith(prefix) else path.rsplit("/", 1)[-1]
    if kind in ("lstm", "gru"):  # weights live in the cell sublayer
        rel = rel.rsplit("/", 1)[-1]
    return rel


def _preorder(model) -> list[Any]:
    """``model`` and its sublayers depth-first in creation order (Keras' own
    ``_flatten_layers`` visits each layer's children in reverse)."""
    out, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        out.append(layer)
        for sub in layer._layers:
            visit(sub)

    visit(model)
    return out


class KerasTarget(_models.Target):
    framework = "keras"
    ops_on_target = False

    def __init__(self):
        import keras

        self.keras = keras
        self.backend = keras.backend.backend()

    def layers(self, model) -> list[TargetLayer]:
        keras = self.keras
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(f"load_keras expects a keras Model or Layer, got {type(model).__name__}")
        if not model.built:
            raise _models.PortError(f"the Keras model {model.name!r} is not built: call it once or give it an Input so its weights exist")
        kinds = _kinds(keras.layers)
        root = (model.path or model.name) + "/"
        out: list[TargetLayer] = []
        inside: set[int] = set()
        for layer in _preorder(model):
            if id(layer) in inside:
                continue
            kind = next((k for cls, k in kinds if isinstance(layer, cls)), None)
            name = (layer.path or layer.name)
            name = name[len(root):] if name.startswith(root) else ("" if layer is model else name)
            subs = list(layer._flatten_layers(include_self=False, recursive=True))
            if kind is None:
                sub_vars = {id(v) for s in subs for v in s.weights}
                own = [v for v in layer.weights if id(v) not in sub_vars]
                if own:
                    specs = {_relative(v, layer, ""): Spec(tuple(v.shape), str(v.dtype)) for v in own}
                    out.append(TargetLayer(name, None, specs, {}, (layer, {}), f"unsupported type {type(layer).__name__}"))
                continue
            inside.update(id(s) for s in subs)
            variables = {_relative(v, layer, kind): v for v in layer.weights}
            specs = {n: Spec(tuple(int(d) for d in v.shape), str(v.dtype)) for n, v in variables.items()}
            why = _unsupported(layer, kind)
            out.append(TargetLayer(name, None if why else kind, specs, _hparams(layer, kind), (layer, variables), why))
        return out

    def export(self, x, mode):
        if self.backend == "tensorflow":
            from jinit.interop import _tensorflow

            return _tensorflow.export_array(x, mode)
        if self.backend == "jax":
            import jax.numpy as jnp

            y = jnp.array(x, copy=True) if mode == "copy" else x
            why = {"copy": "copy mode", "share": "the JAX array itself (Keras JAX backend)",
                   "move": "the JAX array itself (Keras JAX backend): the model holds it, so it is not deleted"}  # fmt: skip
            return y, _Record(mode != "copy", why[mode])
        import numpy as np

        return np.asarray(x), _Record(False, f"Keras {self.backend} backend: Variable.assign copies")

    def commit(self, layer: TargetLayer, name: str, staged: Staged, mode: str) -> Staged:
        variable = layer.ref[1][name]
        variable.assign(staged.value)
        detail = staged.detail
        if staged.zero_copy and self.backend == "tensorflow":
            detail += "; tf.Variable.assign aliases it (TF copies on its first update, never writing into JAX)"
        return Staged(variable, staged.zero_copy, detail)

    def read(self, layer: TargetLayer, name: str, mode: str):
        variable = layer.ref[1][name]
        if self.backend == "tensorflow":
            from jinit.interop import _tensorflow

            return _tensorflow.import_array(variable.value, mode)
        import jax.numpy as jnp

        return jnp.array(self.keras.ops.convert_to_numpy(variable.value)) if self.backend != "jax" else (
            jnp.array(variable.value, copy=True) if mode == "copy" else variable.value)


class _Record:
    def __init__(self, zero_copy: bool, reason: str):
        self.zero_copy, self.reason = zero_copy, reason


def load_keras(
    model: Any,
    variables: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
) -> LoadReport:
    """Loads a Flax variables tree into an existing, equivalent (built) Keras 3 model.

    Pairing, checks, strictness and the report are those of :func:`jinit.interop.load_torch`;
    target names are Keras layer paths relative to ``model`` (``"dense_1"``). Layouts equal
    Flax's except gate concatenations (LSTM/GRU, Keras GRU gate order z, r, h) and
    ConvTranspose (``transpose_kernel=False`` needs a spatial flip), which are computed in JAX
    and handed over without a further copy.

    Args:
      model: a built ``keras.Model`` or layer (TensorFlow or JAX backend: zero-copy paths;
        other backends copy).
      variables: linen variables, ``nnx.State`` or ``nnx.Module``.
      mode: ``"copy"``, ``"move"`` or ``"share"`` (see ``load_torch``).
      strict, mapping, hparams: as in ``load_torch`` (mapping values are Keras layer paths).

    Returns:
      A :class:`LoadReport`.

    Raises:
      PortError: strict and the tree does not fit the model.

    Examples:
      >>> import os; os.environ.setdefault("KERAS_BACKEND", "tensorflow")
      'tensorflow'
      >>> import jax, jax.numpy as jnp, flax.linen as nn, keras
      >>> from jinit.interop import load_keras
      >>> variables = nn.Dense(3).init(jax.random.key(0), jnp.ones((1, 2)))
      >>> km = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
      >>> [p.transform for p in load_keras(km, variables).params]
      ['identity', 'identity']
    """
    return _models.load(KerasTarget(), model, variables, mode=mode, strict=strict, mapping=mapping, hparams=hparams)


def params_from_keras(
    model: Any,
    like: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    report: bool = False,
) -> Any:
    """Builds a Flax variables tree shaped like ``like`` from a Keras model's weights.

    See :func:`jinit.interop.params_from_torch`; ``mode="share"`` aliases TF buffers (safe:
    TF never writes in place).

    Examples:
      >>> import os; os.environ.setdefault("KERAS_BACKEND", "tensorflow")
      'tensorflow'
      >>> import jax, jax.numpy as jnp, flax.linen as nn, keras
      >>> from jinit.interop import params_from_keras
      >>> like = nn.Dense(3).init(jax.random.key(0), jnp.ones((1, 2)))
      >>> km = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
      >>> jax.tree.map(jnp.shape, params_from_keras(km, like))
      {'params': {'bias': (3,), 'kernel': (2, 3)}}
    """
    return _models.read(KerasTarget(), model, like, mode=mode, strict=strict, mapping=mapping,
                        hparams=hparams, report=report)  # fmt: skip
