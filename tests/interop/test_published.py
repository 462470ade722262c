"""Published models ported with one call, proven by equal outputs.

HF transformers BERT, GPT-2 and ViT (Flax twin <-> torch model and <-> TF twin, a tf-keras
model; tiny configs, random weights) and a Flax ResNet-18 (Flax's ImageNet example) <->
torchvision ``resnet18``.
Each is ported in both directions, from the variables tree in creation order and re-sorted
(what ``jax.tree.map``, optax or a checkpoint library returns), with no ``mapping``, no
``hparams`` and ``strict=True``: hyper-parameters are read from ``source=`` (the HF model's
``module``; for the compact ResNet, the module and an example input to trace), and the reports
carry no warning (no value was checked on an assumption). Eval-mode outputs
must agree within 1e-5 of their scale. ``initializer_range=0.2`` and jittered norms/biases make
every tensor distinct, so a swapped pair (q/k/v, two layers) moves the outputs by far more.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest
from conftest import require
from flax_resnet import ResNet18
from published import (
    jitter,
    jitter_keras,
    jitter_torch,
    rel_diff,
    require_torchvision,
    require_transformers,
    resorted,
)

from jinit.interop import load_keras, load_torch, params_from_keras, params_from_torch

TOL = 1e-5  # max |diff| / max |reference output|
WRONG = 1e-2  # a wrong load moves the outputs by more than this


@dataclasses.dataclass
class FlaxSide:
    variables: dict  # creation order
    source: Any  # the Flax module the variables belong to (compact: with an example input)
    fwd: Callable[[dict], dict[str, np.ndarray]]

    def __post_init__(self):
        self.out = self.fwd(self.variables)


@dataclasses.dataclass
class Case:
    flax: FlaxSide
    model: Any  # the other framework's model, independent random weights
    fwd: Callable[[Any], dict[str, np.ndarray]]
    swap: tuple[str, str] = ("", "")  # two same-shaped torch tensors whose exchange must show

    def __post_init__(self):
        self.out = self.fwd(self.model)


@dataclasses.dataclass(frozen=True)
class HFSpec:
    cfg: Any
    stem: str  # FlaxBertModel / BertModel / TFBertModel
    x: np.ndarray  # token ids or NCHW pixels
    outs: tuple[str, ...]
    swap: tuple[str, str]

    def inputs(self, dtype) -> np.ndarray:
        return self.x if self.x.dtype == np.float32 else self.x.astype(dtype)

    def outputs(self, o) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(o, k)) for k in self.outs}


@functools.cache
def _spec(name: str) -> HFSpec:
    T = require_transformers()
    rng = np.random.default_rng(0)
    small = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                 initializer_range=0.2)  # fmt: skip
    ids = rng.integers(0, 100, (2, 7))
    if name == "bert":
        return HFSpec(T.BertConfig(vocab_size=100, max_position_embeddings=16, **small), "Bert", ids,
                      ("last_hidden_state", "pooler_output"),
                      ("encoder.layer.0.attention.self.query.weight",
                       "encoder.layer.0.attention.self.key.weight"))  # fmt: skip
    if name == "gpt2":
        cfg = T.GPT2Config(vocab_size=100, n_positions=16, n_layer=2, n_embd=32, n_head=4,
                           initializer_range=0.2)  # fmt: skip
        return HFSpec(cfg, "GPT2", ids, ("last_hidden_state",),
                      ("h.0.attn.c_proj.weight", "h.1.attn.c_proj.weight"))  # fmt: skip
    return HFSpec(T.ViTConfig(image_size=16, patch_size=4, **small), "ViT",
                  rng.standard_normal((2, 3, 16, 16)).astype(np.float32),
                  ("last_hidden_state", "pooler_output"),
                  ("encoder.layer.0.attention.attention.key.weight",
                   "encoder.layer.0.attention.attention.value.weight"))  # fmt: skip


@functools.cache
def _flax_hf(name: str) -> FlaxSide:
    T, spec = require_transformers(), _spec(name)
    with jax.numpy_rank_promotion("allow"):  # HF Flax code broadcasts ranks implicitly
        model = getattr(T, f"Flax{spec.stem}Model")(spec.cfg, seed=0)

    def fwd(params):
        with jax.numpy_rank_promotion("allow"):
            return spec.outputs(model(spec.inputs(np.int32), params=params))

    return FlaxSide(jitter(model.params, seed=2), model.module, fwd)


def _torch_hf(name: str) -> Case:
    T, spec = require_transformers(), _spec(name)
    import torch

    model = getattr(T, f"{spec.stem}Model")(spec.cfg).eval()
    jitter_torch(model, seed=1)
    x = torch.from_numpy(spec.inputs(np.int64))

    def fwd(m):
        with torch.no_grad():
            return spec.outputs(m(x))

    return Case(_flax_hf(name), model, fwd, spec.swap)


def _keras_hf(name: str) -> Case:
    """The HF TF twin (a tf-keras model), built by one call."""
    T, spec = require_transformers(), _spec(name)
    tf = require("tensorflow")
    x = tf.constant(spec.inputs(np.int32))
    model = getattr(T, f"TF{spec.stem}Model")(spec.cfg)
    model(x, training=False)
    jitter_keras(model, seed=1)
    return Case(_flax_hf(name), model, lambda m: spec.outputs(m(x, training=False)))


def _resnet18() -> Case:
    tv = require_torchvision()
    import torch

    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    module = ResNet18(num_classes=10)
    flax = FlaxSide(jitter(module.init(jax.random.key(0), x), seed=2), (module, x),
                    lambda v: {"logits": np.asarray(module.apply(v, x))})  # fmt: skip
    torch_model = tv.models.resnet18(num_classes=10).eval()
    jitter_torch(torch_model, seed=1)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    def torch_fwd(m):
        with torch.no_grad():
            return {"logits": m(tx).numpy()}

    return Case(flax, torch_model, torch_fwd, ("layer1.0.conv1.weight", "layer1.0.conv2.weight"))


@pytest.fixture(scope="module", params=["bert", "gpt2", "vit", "resnet18"])
def case(request) -> Case:
    return _resnet18() if request.param == "resnet18" else _torch_hf(request.param)


@pytest.fixture(scope="module", params=["bert", "gpt2", "vit"])
def keras_case(request) -> Case:
    return _keras_hf(request.param)


ORDERS = {"created": lambda tree: tree, "sorted": resorted}


@pytest.mark.parametrize("order", ORDERS)
def test_flax_to_torch(case, order):
    _flax_to(load_torch, case, copy.deepcopy(case.model), order)


@pytest.mark.parametrize("order", ORDERS)
def test_torch_to_flax(case, order):
    _to_flax(params_from_torch, case, order)


@pytest.mark.parametrize("order", ORDERS)
def test_flax_to_keras(keras_case, order):
    """HF TF models are tf-keras (Keras 2) models."""
    model = type(keras_case.model)(keras_case.model.config)
    model(keras_case.model.dummy_inputs, training=False)
    _flax_to(load_keras, keras_case, model, order)


@pytest.mark.parametrize("order", ORDERS)
def test_keras_to_flax(keras_case, order):
    _to_flax(params_from_keras, keras_case, order)


def _flax_to(load, case, target, order):
    assert rel_diff(case.fwd(target), case.flax.out) > WRONG  # the outputs tell
    report = load(target, ORDERS[order](case.flax.variables), source=case.flax.source)
    assert not report.warnings, report.warnings
    assert rel_diff(case.fwd(target), case.flax.out) <= TOL


def _to_flax(read, case, order):
    assert rel_diff(case.flax.out, case.out) > WRONG
    like = ORDERS[order](case.flax.variables)
    params, report = read(case.model, like, source=case.flax.source, report=True)
    assert not report.warnings, report.warnings
    assert rel_diff(case.flax.fwd(params), case.out) <= TOL


def test_a_swapped_pair_shows(case):
    """The tolerance catches the failure these tests guard against: two tensors exchanged."""
    import torch

    model = copy.deepcopy(case.model)
    a, b = (model.get_parameter(n) for n in case.swap)
    assert a.shape == b.shape
    with torch.no_grad():
        t = a.clone()
        a.copy_(b)
        b.copy_(t)
    assert rel_diff(case.fwd(model), case.out) > 1000 * TOL
