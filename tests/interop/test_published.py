"""Published models ported with one call, proven by equal outputs.

HF transformers BERT, GPT-2 and ViT (Flax twin <-> torch model, built from tiny configs with
random weights) and a Flax ResNet-18 (Flax's ImageNet example) <-> torchvision ``resnet18``.
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
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest
from flax_resnet import ResNet18
from published import (
    jitter,
    jitter_torch,
    rel_diff,
    require_torchvision,
    require_transformers,
    resorted,
)

from jinit.interop import load_torch, params_from_torch

TOL = 1e-5  # max |diff| / max |reference output|
WRONG = 1e-2  # a wrong load moves the outputs by more than this


@dataclasses.dataclass
class Case:
    variables: dict  # the Flax side, creation order
    source: Any  # the Flax module the variables belong to (compact: with an example input)
    flax_fwd: Callable[[dict], dict[str, np.ndarray]]
    torch_model: Any  # independent random weights
    torch_fwd: Callable[[Any], dict[str, np.ndarray]]
    swap: tuple[str, str]  # two same-shaped torch tensors whose exchange must show

    def __post_init__(self):
        self.flax_out = self.flax_fwd(self.variables)
        self.torch_out = self.torch_fwd(self.torch_model)


def _hf(name: str) -> Case:
    T = require_transformers()
    import torch

    rng = np.random.default_rng(0)
    small = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                 initializer_range=0.2)  # fmt: skip
    ids = rng.integers(0, 100, (2, 7))
    if name == "bert":
        cfg = T.BertConfig(vocab_size=100, max_position_embeddings=16, **small)
        fc, tc, x, outs = T.FlaxBertModel, T.BertModel, ids, ("last_hidden_state", "pooler_output")
        swap = ("encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.weight")
    elif name == "gpt2":
        cfg = T.GPT2Config(vocab_size=100, n_positions=16, n_layer=2, n_embd=32, n_head=4,
                           initializer_range=0.2)  # fmt: skip
        fc, tc, x, outs = T.FlaxGPT2Model, T.GPT2Model, ids, ("last_hidden_state",)
        swap = ("h.0.attn.c_proj.weight", "h.1.attn.c_proj.weight")
    else:
        cfg = T.ViTConfig(image_size=16, patch_size=4, **small)
        fc, tc, outs = T.FlaxViTModel, T.ViTModel, ("last_hidden_state", "pooler_output")
        x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
        swap = ("encoder.layer.0.attention.attention.key.weight",
                "encoder.layer.0.attention.attention.value.weight")  # fmt: skip
    with jax.numpy_rank_promotion("allow"):  # HF Flax code broadcasts ranks implicitly
        flax_model = fc(cfg, seed=0)
    tx = torch.from_numpy(x if x.dtype == np.float32 else x.astype(np.int64))

    def flax_fwd(params):
        with jax.numpy_rank_promotion("allow"):
            o = flax_model(x if x.dtype == np.float32 else x.astype(np.int32), params=params)
        return {k: np.asarray(getattr(o, k)) for k in outs}

    def torch_fwd(m):
        with torch.no_grad():
            o = m(tx)
        return {k: getattr(o, k).numpy() for k in outs}

    torch_model = tc(cfg).eval()
    jitter_torch(torch_model, seed=1)
    return Case(jitter(flax_model.params, seed=2), flax_model.module, flax_fwd, torch_model,
                torch_fwd, swap)  # fmt: skip


def _resnet18() -> Case:
    tv = require_torchvision()
    import torch

    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    module = ResNet18(num_classes=10)
    variables = jitter(module.init(jax.random.key(0), x), seed=2)
    torch_model = tv.models.resnet18(num_classes=10).eval()
    jitter_torch(torch_model, seed=1)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    def torch_fwd(m):
        with torch.no_grad():
            return {"logits": m(tx).numpy()}

    return Case(variables, (module, x), lambda v: {"logits": np.asarray(module.apply(v, x))},
                torch_model, torch_fwd, ("layer1.0.conv1.weight", "layer1.0.conv2.weight"))  # fmt: skip


@pytest.fixture(scope="module", params=["bert", "gpt2", "vit", "resnet18"])
def case(request) -> Case:
    return _resnet18() if request.param == "resnet18" else _hf(request.param)


ORDERS = {"created": lambda tree: tree, "sorted": resorted}


@pytest.mark.parametrize("order", ORDERS)
def test_flax_to_torch(case, order):
    target = copy.deepcopy(case.torch_model)
    assert rel_diff(case.torch_fwd(target), case.flax_out) > WRONG  # the outputs tell
    report = load_torch(target, ORDERS[order](case.variables), source=case.source)
    assert not report.warnings, report.warnings
    assert rel_diff(case.torch_fwd(target), case.flax_out) <= TOL


@pytest.mark.parametrize("order", ORDERS)
def test_torch_to_flax(case, order):
    assert rel_diff(case.flax_out, case.torch_out) > WRONG
    like = ORDERS[order](case.variables)
    params, report = params_from_torch(case.torch_model, like, source=case.source, report=True)
    assert not report.warnings, report.warnings
    assert rel_diff(case.flax_fwd(params), case.torch_out) <= TOL


def test_a_swapped_pair_shows(case):
    """The tolerance catches the failure these tests guard against: two tensors exchanged."""
    import torch

    model = copy.deepcopy(case.torch_model)
    a, b = (model.get_parameter(n) for n in case.swap)
    assert a.shape == b.shape
    with torch.no_grad():
        t = a.clone()
        a.copy_(b)
        b.copy_(t)
    assert rel_diff(case.torch_fwd(model), case.torch_out) > 1000 * TOL
