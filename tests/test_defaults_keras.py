"""compat.keras.defaults() on Flax trees against real Keras 3 layers (thresholds: _stats.py).

Keras layers are built (``layer.build``) with fixed seeds; their weights are compared with the
jinit-initialized equivalent Flax params: KS two-sample at >= 100k values each (pooled over
fresh layers / keys), std vs the analytic value, exact bounds; constants exactly; the fused
orthogonal recurrent kernel also structurally (rows orthonormal).
"""

from __future__ import annotations

import math
import warnings

import flax.linen as nn
import jax
import numpy as np
import pytest
from _defaults_harness import linen_spec, nnx_spec, ours, theirs
from _stats import check_same_distribution
from conftest import require

import jinit
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


def _mha_keras_weights(num_heads, key_dim, dim):
    keras = _keras()

    def make(i):
        layer = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim)
        layer.build((None, 3, dim), (None, 3, dim))
        return _weights(layer)

    return make


@pytest.mark.slow
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_multi_head_attention_einsum_fans_when_heads_times_dim_differs(api):
    """(32, 8, 16) q/k/v: fans (32, 128) by the einsum, not the conv rule's (256, 512)."""
    heads, head_dim, e = 8, 16, 32
    if api == "linen":
        spec = linen_spec(nn.MultiHeadDotProductAttention(num_heads=heads,
                                                          qkv_features=heads * head_dim),
                          (1, 3, e))
    else:
        from flax import nnx

        spec = nnx_spec(lambda: nnx.MultiHeadAttention(
            num_heads=heads, in_features=e, qkv_features=heads * head_dim, decode=False,
            rngs=nnx.Rngs(0)))
    make = _mha_keras_weights(heads, head_dim, e)
    assert make(0)["query/kernel"].shape == (e, heads, head_dim)
    assert make(0)["attention_output/kernel"].shape == (heads, head_dim, e)
    qkv, out = ours(jk.defaults(), spec, tuple(f"{n}/kernel" for n in ("query", "key", "value")),
                    "out/kernel")
    _glorot_case(qkv, theirs(lambda i: [make(i)[f"{n}/kernel"]
                                        for n in ("query", "key", "value")]), e, heads * head_dim)
    _glorot_case(out, theirs(lambda i: make(i)["attention_output/kernel"]), heads * head_dim, e)


class _Einsums(nn.Module):
    @nn.compact
    def __call__(self, x):
        a = nn.Einsum((32, 8, 16), "abc,cde->abde", name="Einsum_0")(x)
        b = nn.Einsum((32, 8, 16), "abc,cde->abde", use_bias=False, name="Einsum_1")(x)
        return a, b


def test_einsum_dense_with_bias_has_the_equation_fans():
    keras = _keras()
    spec = linen_spec(_Einsums(), (1, 3, 32))

    def make(i):
        layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 8, 16),
                                         bias_axes="de")
        layer.build((None, 3, 32))
        return _weights(layer)

    assert make(0)["kernel"].shape == spec["Einsum_0"]["kernel"].shape == (32, 8, 16)
    init = jinit.rules((r"Einsum_1/kernel", jk.glorot_uniform(input_axes=[0], output_axes=[1, 2])),
                       jk.defaults())
    einsum_0, einsum_1 = ours(init, spec, "Einsum_0/kernel", "Einsum_1/kernel")
    _glorot_case(einsum_0, theirs(lambda i: make(i)["kernel"]), 32, 128)
    _glorot_case(einsum_1, theirs(lambda i: make(i)["kernel"]), 32, 128)
    np.testing.assert_array_equal(init(jax.random.key(0), spec)["Einsum_0"]["bias"],
                                  make(0)["bias"])


def test_einsum_without_bias_warns_with_the_fix():
    spec = linen_spec(_Einsums(), (1, 3, 32))
    with pytest.warns(UserWarning, match=r"'Einsum_1' looks like an Einsum layer without a "
                      r"bias.*glorot_uniform\(input_axes"):
        jk.defaults().plan(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fix silences it
        jinit.rules((r"Einsum_1/kernel", jk.glorot_uniform(input_axes=[0], output_axes=[1, 2])),
                    jk.defaults()).plan(spec)
