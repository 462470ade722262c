"""Load Flax variables into a Keras 3 or tf-keras (Keras 2) model and read them back (``load_keras``).

Keras stores kernels in Flax's layouts (Dense ``(in, out)``, Conv ``(*k, in, out)``, MHA
``(E, H, D)``), so most rules are renames and the transfer stays zero-copy even on TensorFlow,
which accepts compact buffers only. ``Variable.assign`` on the TensorFlow backend aliases the
exported buffer and copies on the first update (TF never writes into JAX memory); on the JAX
backend it stores the array itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinit.interop import _layers, _models
from jinit.interop._layouts import Permute, Rename, Reshape, Spec
from jinit.interop._models import LoadReport, Staged, TargetLayer
from jinit.interop._registry import RAW, LayerRule, builtins, first_time, lookup, register_layer

_KINDS = (
    ("MultiHeadAttention", "mha"), ("Dense", "dense"),
    ("Conv1DTranspose", "conv_transpose1d"), ("Conv2DTranspose", "conv_transpose2d"),
    ("Conv3DTranspose", "conv_transpose3d"), ("Conv1D", "conv1d"), ("Conv2D", "conv2d"), ("Conv3D", "conv3d"),
    ("Embedding", "embed"), ("LayerNormalization", "layer_norm"), ("GroupNormalization", "group_norm"),
    ("BatchNormalization", "batch_norm"), ("LSTM", "lstm"), ("GRU", "gru"), ("RMSNormalization", "rms_norm"),
)  # fmt: skip
_CONVS = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def _unsupported(kind: str):
    def why(layer) -> str:
        if kind == "gru" and not layer.cell.reset_after:
            return "GRU(reset_after=False) applies the reset gate before the recurrent matmul; Flax's GRUCell matches reset_after=True"
        if kind in _CONVS and getattr(layer, "data_format", "channels_last") != "channels_last":
            return "data_format='channels_first': build it channels_last like Flax"
        if kind == "layer_norm" and getattr(layer, "rms_scaling", False):
            return "rms_scaling=True is RMSNorm, not LayerNorm"
        return ""

    return why


def _register(keras: Any) -> None:
    """Registers the built-in rules for one Keras package (``keras`` or ``tf_keras``), once."""
    if not first_time(f"keras package {keras.__name__}"):
        return
    for name, kind in _KINDS:
        cls = getattr(keras.layers, name, None)
        if cls is not None:
            register_layer(cls, _layers.builtin(kind, "keras", _unsupported(kind)))


def _is_linear_in_out(layer) -> bool:
    """A dense layer with weights ``weight (nx, nf)`` and ``bias (1, nf)`` (GPT-style ``TFConv1D``)."""
    return isinstance(getattr(layer, "nf", None), int) and isinstance(getattr(layer, "nx", None), int)


_BIAS_ROW = Reshape("bias", (1, -1))
#: the Flax kernel as is (nn.Dense, (in, out)) or transposed (a Flax layer keeping (out, in))
LINEAR_IN_OUT = LayerRule("linear_in_out", flax="kernel2", ops=(Rename("kernel", "weight"), _BIAS_ROW),
                          alternatives=((Rename("kernel", "weight"), Permute("weight", (1, 0)), _BIAS_ROW),))  # fmt: skip


def _register_keras3() -> None:
    import keras

    _register(keras)


def _is_weight_norm(layer) -> bool:
    """A conv keeping weight-norm factors ``weight_g`` and ``weight_v`` (torch layout for ``v``)."""
    return all(getattr(layer, n, None) is not None and hasattr(getattr(layer, n), "shape") for n in ("weight_g", "weight_v"))


#: Flax keeps ``weight_g`` as torch does, ``(1, 1, k)``; the Keras layer keeps it ``(k, 1, 1)``.
WEIGHT_NORM = LayerRule("weight_norm", flax="*", ops=(Permute("weight_g", (2, 1, 0)),))


def _register_all() -> None:
    _register_keras3()
    register_layer(_is_linear_in_out, LINEAR_IN_OUT, framework="keras")
    register_layer(_is_weight_norm, WEIGHT_NORM, framework="keras", before_classes=True)


builtins("keras", _register_all)


def _package(model: Any) -> Any:
    """The Keras package a model belongs to: ``tf_keras`` (Keras 2, what Hugging Face TF models
    use) or ``keras`` (Keras 3)."""
    import importlib

    for base in type(model).__mro__:
        root = base.__module__.split(".")[0]
        if root in ("tf_keras", "keras"):
            return importlib.import_module(root)
    raise TypeError(f"load_keras expects a Keras 3 or tf-keras Model or Layer, got {type(model).__name__}")


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _children(layer) -> list[Any]:
    subs = getattr(layer, "_layers", None)
    if subs is None or not isinstance(subs, list):  # tf-keras
        subs = list(layer._flatten_layers(include_self=False, recursive=False))
    return subs


def _preorder(model) -> list[tuple[Any, str]]:
    """``(layer, name)`` for ``model`` and its sublayers depth-first in creation order (Keras 3's
    own ``_flatten_layers`` visits each layer's children in reverse); names are the Keras 3
    ``path`` relative to ``model``, or the chain of layer names (tf-keras)."""
    out, seen = [], set()
    root = (getattr(model, "path", None) or model.name) + "/"

    def visit(layer, chain: str):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        path = getattr(layer, "path", None)
        if layer is model:
            name = ""
        elif path:
            name = path[len(root):] if path.startswith(root) else path
        else:
            name = chain
        out.append((layer, name))
        for sub in _children(layer):
            visit(sub, f"{chain}/{sub.name}" if chain else sub.name)

    visit(model, "")
    return out


def _var_name(v) -> str:
    return getattr(v, "path", None) or v.name.split(":")[0]


def _relative(variable, layer, kind: str) -> str:
    path = _var_name(variable)
    prefix = (getattr(layer, "path", None) or layer.name) + "/"
    if path.startswith(prefix):
        rel = path[len(prefix):]
    else:
        found = list(re.finditer(rf"(^|/){re.escape(layer.name)}/", path))  # the last: the layer's own
        rel = path[found[-1].end():] if found else path.rsplit("/", 1)[-1]  # scope may repeat its name
    while rel.startswith(layer.name + "/"):  # built under a name scope of its own name
        rel = rel[len(layer.name) + 1:]
    if kind in ("lstm", "gru"):  # weights live in the cell sublayer
        rel = rel.rsplit("/", 1)[-1]
    return rel


def _spec(v) -> Spec:
    return Spec(tuple(int(d) for d in v.shape), getattr(v.dtype, "name", None) or str(v.dtype))


def _frozen(variables: dict[str, Any]) -> bool:
    """Every weight is non-trainable (a fixed table such as sinusoidal positions)."""
    return bool(variables) and all(getattr(v, "trainable", True) is False for v in variables.values())


def _value(variable) -> Any:
    value = variable.value
    return value() if callable(value) else value  # tf.Variable.value is a method


class KerasTarget(_models.Target):
    framework = "keras"
    ops_on_target = False

    def __init__(self):
        self.keras = None
        self.backend = None
        self.skipped = []

    def layers(self, model) -> list[TargetLayer]:
        keras = _package(model)
        _register(keras)
        self.keras, self.backend = keras, keras.backend.backend()
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(f"load_keras expects a keras Model or Layer, got {type(model).__name__}")
        if not model.built:
            raise _models.PortError(f"the Keras model {model.name!r} is not built: call it once or give it an Input so its weights exist")
        out: list[TargetLayer] = []
        inside: set[int] = set()
        walk = _preorder(model)
        generated = re.compile("|".join(sorted({re.escape(_snake(type(la).__name__)) for la, _ in walk})) + r"(_\d+)?")
        for layer, name in walk:
            if id(layer) in inside:
                continue
            auto = tuple(bool(generated.fullmatch(p)) for p in name.split("/")) if name else ()
            rule = lookup("keras", layer)
            subs = list(layer._flatten_layers(include_self=False, recursive=True))
            if rule is None:
                sub_vars = {id(v) for s in subs for v in s.weights}
                own = [v for v in layer.weights if id(v) not in sub_vars]
                scopes: dict[str, dict[str, Any]] = {}  # weights made under a sub-scope form their own layer
                for v in own:
                    scope, _, leaf = _relative(v, layer, "").rpartition("/")
                    scopes.setdefault(scope, {})[leaf] = v
                for scope, variables in scopes.items():
                    full = "/".join(x for x in (name, scope) if x)
                    specs = {n: _spec(v) for n, v in variables.items()}
                    parts = auto + (False,) * (len(full.split("/")) - len(auto))
                    out.append(TargetLayer(full, RAW.kind, specs, {}, (layer, variables),
                                           f"weights of {type(layer).__name__}", RAW, parts, "/",
                                           _frozen(variables)))  # fmt: skip
                continue
            inside.update(id(s) for s in subs)
            variables = {_relative(v, layer, rule.kind): v for v in layer.weights}
            specs = {n: _spec(v) for n, v in variables.items()}
            hp = {h.name: v for h in rule.hparams if (v := h.read_target(layer)) is not None}
            why = rule.why_unsupported(layer)
            out.append(TargetLayer(name, None if why else rule.kind, specs, hp, (layer, variables), why, rule, auto, "/",
                                   _frozen(variables)))  # fmt: skip
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

            return _tensorflow.import_array(_value(variable), mode)
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
    source: Any = None,
) -> LoadReport:
    """Loads a Flax variables tree into an existing, equivalent (built) Keras 3 or tf-keras model.

    Pairing, checks, strictness and the report are those of :func:`jinit.interop.load_torch`;
    target names are Keras layer paths relative to ``model`` (``"dense_1"``). Layouts equal
    Flax's except gate concatenations (LSTM/GRU, Keras GRU gate order z, r, h) and
    ConvTranspose (``transpose_kernel=False`` needs a spatial flip), which are computed in JAX
    and handed over without a further copy.

    Args:
      model: a built ``keras.Model`` or layer (TensorFlow or JAX backend: zero-copy paths;
        other backends copy), or a built ``tf_keras`` (Keras 2) model or layer, such as a
        Hugging Face TF model.
      variables: linen variables, ``nnx.State`` or ``nnx.Module``.
      mode: ``"copy"``, ``"move"`` or ``"share"`` (see ``load_torch``).
      strict, mapping, hparams, source: as in ``load_torch`` (mapping values are Keras layer
        paths).

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
    return _models.load(KerasTarget(), model, variables, mode=mode, strict=strict, mapping=mapping, hparams=hparams,
                        source=source)  # fmt: skip


def params_from_keras(
    model: Any,
    like: Any,
    mode: str = "copy",
    strict: bool = True,
    mapping: Mapping[str, str] | None = None,
    *,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    source: Any = None,
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
                        hparams=hparams, report=report, source=source)  # fmt: skip
