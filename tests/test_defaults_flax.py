"""compat.flax.defaults() against Flax's own layer inits, and the layer recognition behind
every compat.*.defaults() (kinds, fallbacks, overrides, errors).

Flax's defaults are checked bit for bit: each leaf equals the initializer the Flax layer uses,
called as the layer calls it (DenseGeneral kernels flattened to 2-D first) with the leaf's
jinit key. One KS test (>= 100k values each, p > 1e-4, see _stats.py) compares against
``model.init`` itself.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _defaults_harness import linen_spec, nnx_spec, ours, theirs
from _stats import check_same_distribution
from flax import nnx

import jinit
from jinit.compat import flax as jf
from jinit.compat import keras as jk
from jinit.compat import torch as jt
from jinit.compat._defaults import Block, LayerDefault, UniformSum

KEY = jax.random.key(0)
init_fns = nn.initializers


class Zoo(nn.Module):
    """One of every recognized linen layer, with Flax's default names."""

    @nn.compact
    def __call__(self, x, tokens):
        h = nn.Dense(8)(x)
        img = jnp.zeros((x.shape[0], 6, 6, 5))
        c = nn.Conv(6, (3, 3))(img)
        c = nn.Conv(6, (3, 3), feature_group_count=6)(c)
        c = nn.ConvTranspose(4, (3, 3))(c)
        nn.BatchNorm(use_running_average=False)(c)
        h = nn.LayerNorm()(h + nn.Embed(10, 8)(tokens).mean(1))
        nn.RNN(nn.LSTMCell(7))(x[:, None])
        nn.RNN(nn.GRUCell(7))(x[:, None])
        nn.RNN(nn.SimpleCell(7))(x[:, None])
        nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)(h[:, None])
        nn.DenseGeneral(3, axis=(-2, -1))(nn.DenseGeneral((2, 4))(h))  # the outer is _0
        return nn.PReLU()(h)


def zoo_spec():
    return jax.eval_shape(Zoo().init, KEY, jnp.ones((2, 5)), jnp.ones((2, 3), jnp.int32))


EXPECTED_LINEN = {
    "batch_stats/BatchNorm_0/mean": "mean", "batch_stats/BatchNorm_0/var": "var",
    "params/BatchNorm_0/scale": "scale", "params/BatchNorm_0/bias": "shift",
    "params/Dense_0/kernel": "kernel", "params/Dense_0/bias": "bias",
    "params/Conv_0/kernel": "kernel", "params/Conv_1/kernel": "kernel",
    "params/ConvTranspose_0/kernel": "kernel", "params/ConvTranspose_0/bias": "bias",
    "params/Embed_0/embedding": "embedding",
    "params/LayerNorm_0/scale": "scale", "params/LayerNorm_0/bias": "shift",
    "params/LSTMCell_0/ii/kernel": "rnn_input_kernel",
    "params/LSTMCell_0/hf/kernel": "rnn_hidden_kernel", "params/LSTMCell_0/hf/bias": "rnn_bias",
    "params/GRUCell_0/in/bias": "rnn_bias", "params/GRUCell_0/hn/kernel": "rnn_hidden_kernel",
    "params/SimpleCell_0/i/kernel": "rnn_input_kernel", "params/SimpleCell_0/h/kernel":
        "rnn_hidden_kernel",
    "params/MultiHeadDotProductAttention_0/query/kernel": "attention_kernel",
    "params/MultiHeadDotProductAttention_0/out/kernel": "attention_out_kernel",
    "params/MultiHeadDotProductAttention_0/value/bias": "attention_bias",
    "params/DenseGeneral_0/kernel": "kernel", "params/DenseGeneral_1/kernel": "kernel",
    "params/PReLU_0/negative_slope": "prelu",
}


def test_recognizes_every_linen_layer():
    layers = jf.recognize(zoo_spec())
    assert {p: layers[p].kind for p in EXPECTED_LINEN} == EXPECTED_LINEN
    assert set(layers) == set(jinit.paths(zoo_spec()))  # nothing left over
    conv_t = layers["params/ConvTranspose_0/kernel"]
    assert conv_t.transposed and (conv_t.fan_in, conv_t.torch_fan_in) == (54, 36)
    assert layers["params/Conv_1/kernel"].fan_in == 9  # depthwise: (3, 3, 1, 6)
    dg0, dg1 = layers["params/DenseGeneral_0/kernel"], layers["params/DenseGeneral_1/kernel"]
    assert (dg0.in_axes, dg0.out_axes, dg1.in_axes, dg1.out_axes) == ((0, 1), (2,), (0,), (1, 2))
    gru = "params/GRUCell_0/"
    assert [layers[gru + n].sources for n in ("ir/bias", "iz/bias", "in/bias", "hn/bias")] == [
        (2,), (2,), (1,), (1,)]


def test_recognizes_every_nnx_layer_with_clean_paths():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(3, 3, rngs=rngs)])
            self.bn = nnx.BatchNorm(6, rngs=rngs)
            self.lstm = nnx.LSTMCell(5, 7, rngs=rngs)
            self.olstm = nnx.OptimizedLSTMCell(5, 7, rngs=rngs)
            self.gru = nnx.GRUCell(5, 7, rngs=rngs)
            self.mha = nnx.MultiHeadAttention(2, 8, qkv_features=8, decode=False, rngs=rngs)

    layers = jf.recognize(nnx_spec(lambda: Net(nnx.Rngs(0))))
    kinds = {p: layer.kind for p, layer in layers.items()}
    assert kinds["layers/0/kernel"] == "kernel" and kinds["bn/var"] == "var"
    assert kinds["lstm/if_/kernel"] == "rnn_input_kernel"  # nnx spells "if" as "if_"
    assert layers["lstm/hf/bias"].gates == "f" and layers["lstm/hf/bias"].sources == (2,)
    fused = layers["olstm/dense_h/bias"]
    assert (fused.cell, fused.gates, fused.sources) == ("lstm", "ifgo", (2, 2, 2, 2))
    assert layers["gru/dense_i/bias"].sources == (2, 2, 1)  # b_hn has no nnx counterpart
    assert kinds["mha/query/kernel"] == "attention_kernel" and layers["mha/query/kernel"].packed


@functools.cache
def _zoo_defaults() -> dict[str, np.ndarray]:
    flat = jinit._paths.flatten(jf.defaults()(KEY, zoo_spec()))
    return dict(zip(flat.paths, map(np.asarray, flat.leaves), strict=True))


FLATTENED = (lambda shape: (shape[0], int(np.prod(shape[1:]))),
             lambda shape: (int(np.prod(shape[:-1])), shape[-1]))


def _flax_leaf(init, path, shape, flatten=None):
    """What the Flax layer's initializer gives the leaf, with jinit's key for its path.

    Jitted, as the tree initializer is (eager and jitted float math may differ by an ulp).
    """
    k = jinit._paths.leaf_key(KEY, path)
    return jax.jit(init, static_argnums=1)(k, flatten(shape) if flatten else shape).reshape(shape)


@pytest.mark.parametrize("path, flax_init, flatten", [
    ("params/Dense_0/kernel", init_fns.lecun_normal(), None),
    ("params/Conv_1/kernel", init_fns.lecun_normal(), None),
    ("params/ConvTranspose_0/kernel", init_fns.lecun_normal(), None),
    ("params/Embed_0/embedding", init_fns.variance_scaling(1.0, "fan_in", "normal", out_axis=0),
     None),
    ("params/LSTMCell_0/ii/kernel", init_fns.lecun_normal(), None),
    ("params/LSTMCell_0/hf/kernel", init_fns.orthogonal(), None),
    ("params/MultiHeadDotProductAttention_0/query/kernel", init_fns.lecun_normal(),
     FLATTENED[0]),
    ("params/MultiHeadDotProductAttention_0/out/kernel", init_fns.lecun_normal(), FLATTENED[1]),
    ("params/DenseGeneral_0/kernel", init_fns.lecun_normal(), FLATTENED[1]),
    ("params/DenseGeneral_1/kernel", init_fns.lecun_normal(), FLATTENED[0]),
])
def test_flax_defaults_bit_identical_to_flax_initializers(path, flax_init, flatten):
    got = _zoo_defaults()[path]
    want = _flax_leaf(flax_init, path, got.shape, flatten)
    np.testing.assert_array_equal(got, want)


def test_flax_defaults_constants():
    values = _zoo_defaults()
    for path, kind in EXPECTED_LINEN.items():
        if kind in ("bias", "shift", "mean", "rnn_bias", "attention_bias"):
            assert not np.asarray(values[path]).any(), path
        if kind in ("scale", "var"):
            assert (np.asarray(values[path]) == 1).all(), path
    assert float(values["params/PReLU_0/negative_slope"]) == pytest.approx(0.01)


def test_nnx_fused_recurrent_kernel_is_orthogonal_of_the_fused_matrix():
    spec = nnx_spec(lambda: nnx.OptimizedLSTMCell(32, 64, rngs=nnx.Rngs(0)))
    state = jf.defaults()(KEY, spec)
    want = _flax_leaf(init_fns.orthogonal(), "dense_h/kernel", (64, 256))
    np.testing.assert_array_equal(state["dense_h"]["kernel"][...], want)


def test_matches_flax_model_init_statistically():
    """KS against the values Flax's own Dense(512) init makes (pooled over seeds)."""
    spec = linen_spec(nn.Dense(512), (1, 256))
    model = nn.Dense(512)
    flax_values = theirs(lambda i: np.asarray(model.init(jax.random.key(100 + i),
                                                         jnp.ones((1, 256)))["params"]["kernel"]))
    check_same_distribution(ours(jf.defaults(), spec, "kernel"), flax_values,
                            std=1 / 16, lo=-2.2737 / 16 * 1.0001, hi=2.2737 / 16 * 1.0001,
                            tight=False)


# --- fallbacks, overrides, errors ---------------------------------------------------------------


def _custom_spec():
    s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
    return {"Dense_0": {"kernel": s(4, 8), "bias": s(8)}, "cls_token": s(1, 8),
            "head": {"w": s(8, 2)}}


def test_unrecognized_abstract_leaves_raise_with_their_paths():
    with pytest.raises(jinit.RuleError, match="cls_token.*head/w|head/w.*cls_token"):
        jt.defaults()(KEY, _custom_spec())


def test_unrecognized_concrete_leaves_are_kept():
    tree = jax.tree.map(lambda s: jnp.full(s.shape, 3.0), _custom_spec())
    out = jt.defaults()(KEY, tree)
    assert out["cls_token"] is tree["cls_token"] and out["head"]["w"] is tree["head"]["w"]
    assert float(abs(out["Dense_0"]["kernel"]).max()) <= 0.5  # U(±1/sqrt(4))


def test_rules_before_the_defaults_override_them():
    init = jinit.rules(("cls_token", jinit.normal(0.02)), ("head/w", jinit.zeros),
                       (".*/bias", jinit.ones), jk.defaults())
    out = init(KEY, _custom_spec())
    assert not np.asarray(out["head"]["w"]).any()
    assert (np.asarray(out["Dense_0"]["bias"]) == 1).all()
    plan = init.plan(_custom_spec())
    assert plan["Dense_0/kernel"].source.startswith("rule 3 (LayerKind(kinds=('kernel',)))")


def test_layer_kind_selector():
    assert jinit.paths(zoo_spec(), jf.LayerKind("rnn_bias")) == [
        "params/GRUCell_0/hn/bias", "params/GRUCell_0/in/bias", "params/GRUCell_0/ir/bias",
        "params/GRUCell_0/iz/bias", "params/LSTMCell_0/hf/bias", "params/LSTMCell_0/hg/bias",
        "params/LSTMCell_0/hi/bias", "params/LSTMCell_0/ho/bias", "params/SimpleCell_0/i/bias"]
    with pytest.raises(jinit.InitializerArgumentError, match="unknown kind.*'weights'"):
        jf.LayerKind("weights")
    with pytest.raises(jinit.InitializerArgumentError, match="needs the whole tree"):
        jf.LayerKind("kernel")("Dense_0/kernel", jnp.zeros((2, 2)))


def test_layer_default_is_rule_only_and_options_are_checked():
    with pytest.raises(jinit.InitializerArgumentError, match="layer-aware"):
        LayerDefault("torch", "kernel", {})(KEY, (2, 2))
    with pytest.raises(jinit.InitializerArgumentError, match="unit_forget_bias must be a bool"):
        jk.defaults(unit_forget_bias="yes")


def test_uniform_sum_and_block_errors():
    with pytest.raises(jinit.InitializerArgumentError, match="positive counts"):
        UniformSum(0.1, (0, 2))
    with pytest.raises(jinit.ShapeError, match="not divisible into 3 gates"):
        UniformSum(0.1, (1, 2, 2))(KEY, (8,))
    with pytest.raises(jinit.ShapeError, match="cannot produce block 3"):
        Block(jinit.orthogonal(), (4, 12), 3)(KEY, (4, 4))
    summed = UniformSum(1.0, (2, 1))(KEY, (2000,))
    assert float(abs(summed[:1000]).max()) > 1.0 >= float(abs(summed[1000:]).max())


def test_keras_per_gate_blocks_are_blocks_of_an_orthogonal_draw():
    spec = linen_spec(nn.RNN(nn.LSTMCell(16)), (1, 3, 4))
    cell = jk.defaults()(KEY, spec)["cell"]
    for g in "ifgo":
        w = np.asarray(cell[f"h{g}"]["kernel"])
        sv = np.linalg.svd(w, compute_uv=False)  # a block of a row-orthonormal (16, 64)
        assert sv.max() <= 1 + 1e-5 and sv.min() < 0.999


def test_flax_defaults_einsum_with_bias_keeps_lecun_normal_axes():
    """Flax's ``nn.Einsum`` draws ``lecun_normal`` on the raw kernel shape, whatever its bias
    says about the output axes (Keras's EinsumDense reads them; Flax does not)."""

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Einsum((32, 8, 16), "bi,ihd->bhd", use_bias=True)(x)

    spec = linen_spec(Net(), (1, 32))
    got = np.asarray(jf.defaults()(KEY, spec)["Einsum_0"]["kernel"])
    want = _flax_leaf(init_fns.lecun_normal(), "Einsum_0/kernel", got.shape)
    np.testing.assert_array_equal(got, want)
