"""compat.torch.defaults() on Flax trees against real torch.nn layers (thresholds: _stats.py).

Each test builds the torch layer (fixed seed), samples the jinit-initialized equivalent Flax
param (linen trees from ``jax.eval_shape``, or nnx state), and compares the distributions
(KS two-sample, >= 100k values each, pooled over fresh layers / keys when a layer is small),
the std against the analytic value and the exact bounds; constant parameters exactly.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
import pytest
from _defaults_harness import linen_spec, nnx_spec, ours, theirs
from _stats import check_same_distribution
from conftest import require

from jinit.compat import torch as jt


def _torch():
    torch = require("torch")
    torch.manual_seed(0)
    return torch


def _uniform_case(ours_values, theirs_values, bound):
    check_same_distribution(ours_values, theirs_values, std=bound / math.sqrt(3), lo=-bound,
                            hi=bound)


def test_linear():
    torch = _torch()
    spec = linen_spec(nn.Dense(512), (1, 256))
    kernel, bias = ours(jt.defaults(), spec, "kernel", "bias")
    _uniform_case(kernel, theirs(lambda i: torch.nn.Linear(256, 512).weight.detach().numpy()),
                  1 / 16)
    _uniform_case(bias, theirs(lambda i: torch.nn.Linear(256, 512).bias.detach().numpy()),
                  1 / 16)


@pytest.mark.parametrize("groups", [1, 16])
def test_conv2d_and_grouped(groups):
    torch = _torch()
    spec = linen_spec(nn.Conv(64, (3, 3), feature_group_count=groups), (1, 8, 8, 32))
    bound = 1 / math.sqrt(32 // groups * 9)
    values = ours(jt.defaults(), spec, "kernel", "bias")
    for got, torch_name in zip(values, ("weight", "bias"), strict=True):
        _uniform_case(got, theirs(lambda i, t=torch_name: getattr(
            torch.nn.Conv2d(32, 64, 3, groups=groups), t).detach().numpy()), bound)


def test_conv_transpose_takes_fan_in_from_output_channels():
    torch = _torch()
    class Up(nn.Module):  # a named layer: "ConvTranspose_0" is how it is recognized
        @nn.compact
        def __call__(self, x):
            return nn.ConvTranspose(24, (3, 3))(x)

    spec = linen_spec(Up(), (1, 8, 8, 48))
    layer = torch.nn.ConvTranspose2d(48, 24, 3)
    assert tuple(layer.weight.shape) == (48, 24, 3, 3)  # (I, O, kh, kw): fan_in = O * 9
    bound = 1 / math.sqrt(24 * 9)
    values = ours(jt.defaults(), spec, "ConvTranspose_0/kernel", "ConvTranspose_0/bias")
    for got, torch_name in zip(values, ("weight", "bias"), strict=True):
        _uniform_case(got, theirs(lambda i, t=torch_name: getattr(
            torch.nn.ConvTranspose2d(48, 24, 3), t).detach().numpy()), bound)


def test_embedding():
    torch = _torch()
    spec = linen_spec(nn.Embed(1000, 128), (1, 4), dtype=int)
    check_same_distribution(
        ours(jt.defaults(), spec, "embedding"),
        theirs(lambda i: torch.nn.Embedding(1000, 128).weight.detach().numpy()), std=1.0)


def _lstm_linen_spec():
    return linen_spec(nn.RNN(nn.LSTMCell(64)), (1, 3, 32))


@pytest.mark.slow
def test_lstm_linen_cell():
    torch = _torch()
    spec = _lstm_linen_spec()
    bound = 1 / 8  # 1/sqrt(H)
    make = lambda i: torch.nn.LSTM(32, 64)  # noqa: E731
    w_i, w_h, b = ours(jt.defaults(), spec, tuple(f"cell/i{g}/kernel" for g in "ifgo"),
                       tuple(f"cell/h{g}/kernel" for g in "ifgo"),
                       tuple(f"cell/h{g}/bias" for g in "ifgo"))
    _uniform_case(w_i, theirs(lambda i: make(i).weight_ih_l0.detach().numpy()), bound)
    _uniform_case(w_h, theirs(lambda i: make(i).weight_hh_l0.detach().numpy()), bound)
    # Flax has one bias per gate (on the h side): torch's b_ih + b_hh, triangular.
    check_same_distribution(b, theirs(_summed_bias(make)), std=math.sqrt(2 / 3) * bound,
                            lo=-2 * bound, hi=2 * bound, tight=False)


def _summed_bias(make):
    def summed(i):
        m = make(i)
        return (m.bias_ih_l0 + m.bias_hh_l0).detach().numpy()
    return summed


def test_lstm_nnx_fused_cell():
    torch = _torch()
    from flax import nnx

    spec = nnx_spec(lambda: nnx.OptimizedLSTMCell(32, 64, rngs=nnx.Rngs(0)))
    bound = 1 / 8
    make = lambda i: torch.nn.LSTM(32, 64)  # noqa: E731
    w_h, b = ours(jt.defaults(), spec, "dense_h/kernel", "dense_h/bias")
    _uniform_case(w_h, theirs(lambda i: make(i).weight_hh_l0.detach().numpy()), bound)
    check_same_distribution(b, theirs(_summed_bias(make)), std=math.sqrt(2 / 3) * bound,
                            lo=-2 * bound, hi=2 * bound, tight=False)


@pytest.mark.slow
def test_gru_linen_cell_bias_sources():
    """r, z: b_i + b_h summed into Flax's input bias; n: b_in and b_hn stay separate."""
    torch = _torch()
    spec = linen_spec(nn.RNN(nn.GRUCell(64)), (1, 3, 32))
    bound = 1 / 8
    make = lambda i: torch.nn.GRU(32, 64)  # noqa: E731
    rz, n = ours(jt.defaults(), spec, ("cell/ir/bias", "cell/iz/bias"),
                 ("cell/in/bias", "cell/hn/bias"))
    summed = _summed_bias(make)  # torch order r, z, n
    check_same_distribution(rz, theirs(lambda i: summed(i)[:128]), std=math.sqrt(2 / 3) * bound,
                            lo=-2 * bound, hi=2 * bound, tight=False)
    _uniform_case(n, theirs(lambda i: make(i).bias_ih_l0.detach().numpy()[128:]), bound)


@pytest.mark.slow
def test_multihead_attention_packed_in_proj():
    """q/k/v: xavier_uniform of the packed (3E, E) in_proj_weight; out_proj U(±1/sqrt(E))."""
    torch = _torch()
    e = 64
    spec = linen_spec(nn.MultiHeadDotProductAttention(num_heads=4), (1, 3, e))
    init = jt.defaults()
    make = lambda i: torch.nn.MultiheadAttention(e, 4)  # noqa: E731
    qkv, out = ours(init, spec, tuple(f"{n}/kernel" for n in ("query", "key", "value")),
                    "out/kernel")
    _uniform_case(qkv, theirs(lambda i: make(i).in_proj_weight.detach().numpy()),
                  math.sqrt(6 / (e + 3 * e)))
    _uniform_case(out, theirs(lambda i: make(i).out_proj.weight.detach().numpy()),
                  1 / math.sqrt(e))
    m = make(0)
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().any()
    p = init(jax.random.key(0), spec)
    assert all(not np.asarray(p[n]["bias"]).any() for n in ("query", "key", "value", "out"))


def test_norms_and_batch_stats_exact():
    torch = _torch()

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.LayerNorm()(nn.BatchNorm(use_running_average=True)(x))

    spec = linen_spec(Net(), (2, 16), collection=None)
    out = jt.defaults()(jax.random.key(0), spec)
    bn, ln = torch.nn.BatchNorm1d(16), torch.nn.LayerNorm(16)
    np.testing.assert_array_equal(out["params"]["BatchNorm_0"]["scale"], bn.weight.detach())
    np.testing.assert_array_equal(out["params"]["BatchNorm_0"]["bias"], bn.bias.detach())
    np.testing.assert_array_equal(out["batch_stats"]["BatchNorm_0"]["mean"], bn.running_mean)
    np.testing.assert_array_equal(out["batch_stats"]["BatchNorm_0"]["var"], bn.running_var)
    np.testing.assert_array_equal(out["params"]["LayerNorm_0"]["scale"], ln.weight.detach())
    np.testing.assert_array_equal(out["params"]["LayerNorm_0"]["bias"], ln.bias.detach())
