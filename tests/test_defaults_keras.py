"""compat.keras.defaults() on Flax trees against real Keras 3 layers (thresholds: _stats.py).

Keras layers are built (``layer.build``) with fixed seeds; their weights are compared with the
jinit-initialized equivalent Flax params: KS two-sample at >= 100k values each (pooled over
fresh layers / keys), std vs the analytic value, exact bounds; constants exactly; the fused
orthogonal recurrent kernel also structurally (rows orthonormal).
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

from jinit.compat import keras as jk


def _keras():
    keras = require("keras")
    keras.utils.set_random_seed(0)
    return keras


def _built(layer, *shape):
    layer.build(shape)
    return layer


def _weights(layer) -> dict[str, np.ndarray]:
    return {w.path.split("/", 1)[1]: np.asarray(w.numpy()) for w in layer.weights}


def _glorot_case(got, want, fan_in, fan_out):
    bound = math.sqrt(6 / (fan_in + fan_out))
    check_same_distribution(got, want, std=bound / math.sqrt(3), lo=-bound, hi=bound)


def test_dense_and_conv():
    keras = _keras()
    dense = linen_spec(nn.Dense(512), (1, 256))
    conv = linen_spec(nn.Conv(128, (3, 3)), (1, 8, 8, 64))
    init = jk.defaults()
    _glorot_case(ours(init, dense, "kernel"), theirs(lambda i: _weights(
        _built(keras.layers.Dense(512), None, 256))["kernel"]), 256, 512)
    _glorot_case(ours(init, conv, "kernel"), theirs(lambda i: _weights(
        _built(keras.layers.Conv2D(128, 3), None, 8, 8, 64))["kernel"]), 576, 1152)
    params = init(jax.random.key(0), dense)
    np.testing.assert_array_equal(params["bias"], np.zeros(512))


def test_grouped_conv_uses_the_flax_kernel_shape():
    keras = _keras()
    spec = linen_spec(nn.Conv(64, (3, 3), feature_group_count=16), (1, 8, 8, 32))
    layer = _built(keras.layers.Conv2D(64, 3, groups=16), None, 8, 8, 32)
    assert _weights(layer)["kernel"].shape == spec["kernel"].shape == (3, 3, 2, 64)
    _glorot_case(ours(jk.defaults(), spec, "kernel"), theirs(lambda i: _weights(
        _built(keras.layers.Conv2D(64, 3, groups=16), None, 8, 8, 32))["kernel"]), 18, 576)


def test_embedding():
    keras = _keras()
    spec = linen_spec(nn.Embed(1000, 128), (1, 4), dtype=int)
    check_same_distribution(
        ours(jk.defaults(), spec, "embedding"),
        theirs(lambda i: _weights(_built(keras.layers.Embedding(1000, 128), None))["embeddings"]),
        std=0.05 / math.sqrt(3), lo=-0.05, hi=0.05)


def _orthonormal_rows(w):
    np.testing.assert_allclose(w @ w.T, np.eye(w.shape[0]), atol=2e-5)


def test_lstm_fused_nnx_cell():
    keras = _keras()
    from flax import nnx

    spec = nnx_spec(lambda: nnx.OptimizedLSTMCell(32, 64, rngs=nnx.Rngs(0)))
    make = lambda i: _weights(_built(keras.layers.LSTM(64), None, 3, 32))  # noqa: E731
    w_i, w_h = ours(jk.defaults(), spec, "dense_i/kernel", "dense_h/kernel")
    _glorot_case(w_i, theirs(lambda i: make(i)["lstm_cell/kernel"]), 32, 256)
    check_same_distribution(w_h, theirs(lambda i: make(i)["lstm_cell/recurrent_kernel"]),
                            std=1 / math.sqrt(256))
    state = jk.defaults()(jax.random.key(0), spec)
    _orthonormal_rows(np.asarray(state["dense_h"]["kernel"][...]))  # (64, 256), as Keras's
    _orthonormal_rows(make(0)["lstm_cell/recurrent_kernel"])
    # unit_forget_bias: the same deterministic vector as Keras's.
    np.testing.assert_array_equal(state["dense_h"]["bias"][...], make(0)["lstm_cell/bias"])
    no_forget = jk.defaults(unit_forget_bias=False)(jax.random.key(0), spec)
    assert not np.asarray(no_forget["dense_h"]["bias"][...]).any()


@pytest.mark.slow
def test_lstm_linen_cell_blocks():
    """Per-gate (H, H) recurrent leaves are the blocks of one fused orthogonal (H, 4H)."""
    keras = _keras()
    spec = linen_spec(nn.RNN(nn.LSTMCell(64)), (1, 3, 32))
    make = lambda i: _weights(_built(keras.layers.LSTM(64), None, 3, 32))  # noqa: E731
    w_i, w_h = ours(jk.defaults(), spec, tuple(f"cell/i{g}/kernel" for g in "ifgo"),
                    tuple(f"cell/h{g}/kernel" for g in "ifgo"))
    _glorot_case(w_i, theirs(lambda i: make(i)["lstm_cell/kernel"]), 32, 256)
    check_same_distribution(w_h, theirs(lambda i: make(i)["lstm_cell/recurrent_kernel"]),
                            std=1 / math.sqrt(256))
    params = jk.defaults()(jax.random.key(0), spec)["cell"]
    # The four blocks come from one draw: together they are Keras's orthogonal (H, 4H) matrix.
    fused = np.concatenate([np.asarray(params[f"h{g}"]["kernel"]) for g in "ifgo"], axis=1)
    np.testing.assert_allclose(fused @ fused.T, np.eye(64), atol=1e-5)
    np.testing.assert_array_equal(params["hf"]["bias"], np.ones(64))
    for g in "igo":
        np.testing.assert_array_equal(params[f"h{g}"]["bias"], np.zeros(64))


@pytest.mark.slow
def test_gru_fused_nnx_cell():
    keras = _keras()
    from flax import nnx

    spec = nnx_spec(lambda: nnx.GRUCell(32, 64, rngs=nnx.Rngs(0)))
    make = lambda i: _weights(_built(keras.layers.GRU(64), None, 3, 32))  # noqa: E731
    w_i, w_h = ours(jk.defaults(), spec, "dense_i/kernel", "dense_h/kernel")
    _glorot_case(w_i, theirs(lambda i: make(i)["gru_cell/kernel"]), 32, 192)
    check_same_distribution(w_h, theirs(lambda i: make(i)["gru_cell/recurrent_kernel"]),
                            std=1 / math.sqrt(192))
    state = jk.defaults()(jax.random.key(0), spec)
    assert not np.asarray(state["dense_i"]["bias"][...]).any()
    assert not make(0)["gru_cell/bias"].any()


@pytest.mark.slow
def test_multi_head_attention_einsum_fans():
    keras = _keras()
    e = 64
    spec = linen_spec(nn.MultiHeadDotProductAttention(num_heads=4), (1, 3, e))

    def make(i):
        layer = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)
        x = np.zeros((1, 3, e), np.float32)
        layer(x, x)
        return _weights(layer)

    qkv, out = ours(jk.defaults(), spec, tuple(f"{n}/kernel" for n in ("query", "key", "value")),
                    "out/kernel")
    keras_qkv = lambda i: [make(i)[f"{n}/kernel"] for n in ("query", "key", "value")]  # noqa: E731
    assert make(0)["query/kernel"].shape == spec["query"]["kernel"].shape == (e, 4, 16)
    _glorot_case(qkv, theirs(keras_qkv), e, e)
    _glorot_case(out, theirs(lambda i: make(i)["attention_output/kernel"]), e, e)


@pytest.mark.parametrize("layer", ["LayerNormalization", "BatchNormalization"])
def test_norms_exact(layer):
    keras = _keras()

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.LayerNorm()(nn.BatchNorm(use_running_average=True)(x))

    out = jk.defaults()(jax.random.key(0), linen_spec(Net(), (2, 16), collection=None))
    w = _weights(_built(getattr(keras.layers, layer)(), None, 16))
    if layer == "LayerNormalization":
        np.testing.assert_array_equal(out["params"]["LayerNorm_0"]["scale"], w["gamma"])
        np.testing.assert_array_equal(out["params"]["LayerNorm_0"]["bias"], w["beta"])
    else:
        np.testing.assert_array_equal(out["params"]["BatchNorm_0"]["scale"], w["gamma"])
        np.testing.assert_array_equal(out["params"]["BatchNorm_0"]["bias"], w["beta"])
        np.testing.assert_array_equal(out["batch_stats"]["BatchNorm_0"]["mean"],
                                      w["moving_mean"])
        np.testing.assert_array_equal(out["batch_stats"]["BatchNorm_0"]["var"],
                                      w["moving_variance"])
