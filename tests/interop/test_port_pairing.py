"""Pairing by name, then structure; dict order; source= hyper-parameters; skipped buffers;
the layer-rule registry; plan(); tf-keras; bad leaves."""

from __future__ import annotations

import random
import warnings

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require
from flax_models import assert_close, assert_same_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from jinit._errors import InteropError, PathError, PortError, RuleError
from jinit.interop import (
    HParam,
    LayerRule,
    PortWarning,
    load_gluon,
    load_torch,
    ops,
    params_from_torch,
    plan,
    register_layer,
)
from jinit.interop._pairing import tokens


@pytest.fixture(scope="module")
def torch():
    t = require("torch")
    t.manual_seed(0)
    return t


def to_t(torch, x):
    return torch.from_numpy(np.array(x))


class Attention(fnn.Module):
    """Named like HF: query, value, key created in that order (torch registers q, k, v)."""

    def setup(self):
        self.query = fnn.Dense(8)
        self.value = fnn.Dense(8)
        self.key = fnn.Dense(8)
        self.LayerNorm = fnn.LayerNorm(epsilon=1e-12)

    def __call__(self, x):
        q, k, v = self.query(x), self.key(x), self.value(x)
        a = jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0), axis=-1)
        return self.LayerNorm(x + a @ v)


class Encoder(fnn.Module):
    def setup(self):
        self.layer = [Attention(name=str(i)) for i in range(2)]

    def __call__(self, x):
        for la in self.layer:
            x = la(x)
        return x


def torch_encoder(torch):
    nn = torch.nn

    class TAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key, self.value = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
            self.LayerNorm = nn.LayerNorm(8, eps=1e-12)
            self.register_buffer("position_ids", torch.arange(4), persistent=False)

        def forward(self, x):
            q, k, v = self.query(x), self.key(x), self.value(x)
            a = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
            return self.LayerNorm(x + a @ v)

    class TEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.ModuleList([TAttention() for _ in range(2)])

        def forward(self, x):
            for la in self.layer:
                x = la(x)
            return x

    return TEncoder()


def _permuted(tree, rng):
    if not isinstance(tree, dict):
        return tree
    keys = list(tree)
    rng.shuffle(keys)
    return {k: _permuted(tree[k], rng) for k in keys}


def test_tokens_normalize_case_separators_and_numbering():
    def words(*parts):
        return [t for t, _ in tokens(parts, (False,) * len(parts))]

    assert words("layer_._0", "LayerNorm") == words("layer", "0", "layer_norm") == ["layer", "0", "layernorm"]
    assert words("fc1") == ["fc", "1"]
    assert [named for _, named in tokens(("Dense_0",), (True,))] == [False, False]


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10**6))
def test_names_pair_whatever_the_dict_order(torch, seed):
    x = jax.random.normal(jax.random.key(1), (2, 4, 8))
    fm = Encoder()
    variables = fm.init(jax.random.key(0), x)
    tm = torch_encoder(torch)
    shuffled = _permuted(jax.tree.map(lambda a: a, variables).unfreeze() if hasattr(variables, "unfreeze")
                         else jax.tree.map(lambda a: a, variables), random.Random(seed))  # fmt: skip
    rep = load_torch(tm, shuffled, source=fm)
    assert rep.ok and {p.paired_by for p in rep.params} == {"name"}
    assert rep.skipped == ("layer.0.position_ids (non-persistent buffer)", "layer.1.position_ids (non-persistent buffer)")
    with torch.no_grad():
        assert_close(fm.apply(variables, x), tm(to_t(torch, x)).numpy())
    assert_same_tree(params_from_torch(tm, like=shuffled, source=fm), variables)


def test_sorted_resnet_like_tree_keeps_numeric_and_stem_order(torch):
    """Auto-named layers, keys sorted (Block_10 < Block_2, Block_* < Conv_0): canonical order."""
    nn = torch.nn

    class F(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            x = fnn.Dense(6)(x)  # the stem, created first
            for i in range(11):
                x = Block(6 + i)(x)
            return x

    class Block(fnn.Module):
        width: int

        @fnn.compact
        def __call__(self, x):
            return fnn.Dense(self.width + 1)(x)

    x = jnp.ones((1, 3))
    variables = jax.tree.map(lambda a: a, F().init(jax.random.key(0), x))
    assert list(variables["params"])[:3] == ["Block_0", "Block_1", "Block_10"]
    tm = nn.Sequential(nn.Linear(3, 6), *[nn.Linear(6 + i, 7 + i) for i in range(11)])
    rep = load_torch(tm, variables)
    assert rep.ok and {p.paired_by for p in rep.params} == {"structure"}
    with torch.no_grad():
        assert_close(F().apply(variables, x), tm(torch.ones(1, 3)).numpy())


def test_name_and_order_disagreement_is_ambiguous(torch):
    """Flax: Dense_0 (auto-named) and head; torch: head registered first, then fc: names pair head
    with head, order pairs head with fc (same shapes): strict raises, non-strict warns."""
    nn = torch.nn
    variables = {"params": {"Dense_0": {"kernel": jnp.ones((4, 4)), "bias": jnp.zeros(4)},
                            "head": {"kernel": 2 * jnp.ones((4, 4)), "bias": jnp.zeros(4)}}}  # fmt: skip
    tm = nn.ModuleDict({"head": nn.Linear(4, 4), "fc": nn.Linear(4, 4)})
    with pytest.raises(PortError, match=r"ambiguous \(2\):\n  target head: paired by name with Flax head, but the layer "
                                        r"order pairs it with Flax Dense_0 \(same shapes, no name partner\)\n  Flax head: "
                                        r"paired by name with head, but the layer order pairs it with fc"):  # fmt: skip
        load_torch(tm, variables)
    assert float(tm["head"].weight[0, 0].detach()) != 2.0  # nothing changed
    with pytest.warns(PortWarning, match="ambiguous pairs"):
        rep = load_torch(tm, variables, strict=False)
    assert rep.ambiguous and float(tm["head"].weight[0, 0].detach()) == 2.0
    rep = load_torch(tm, variables, mapping={"Dense_0": "fc"})
    assert rep.ok and sorted({(p.target.split(".")[0], p.paired_by) for p in rep.params}) == [
        ("fc", "mapping"), ("head", "name")]


class SetupNet(fnn.Module):
    def setup(self):
        self.dense = fnn.Dense(6)
        self.norm = fnn.LayerNorm(epsilon=1e-3)
        self.bn = fnn.BatchNorm(use_running_average=True, momentum=0.9, epsilon=1e-4)

    def __call__(self, x):
        return self.bn(self.norm(self.dense(x)))


def test_source_reads_hparams_from_linen_and_nnx_and_says_where_from(torch):
    from flax import nnx

    nn = torch.nn
    x = jnp.ones((2, 3))
    variables = SetupNet().init(jax.random.key(0), x)
    tm = nn.ModuleDict({"dense": nn.Linear(3, 6), "norm": nn.LayerNorm(6, eps=1e-3),
                        "bn": nn.BatchNorm1d(6, eps=1e-4, momentum=0.1)}).eval()  # fmt: skip
    rep = load_torch(tm, variables, source=SetupNet())
    assert rep.ok and not rep.warnings
    with pytest.raises(PortError, match=r"epsilon of the Flax layer is unknown \(assumed: Flax's default"):
        load_torch(tm, variables)  # without source: 1e-6 is an assumption, not the model's value
    tm["norm"].eps = 1e-5
    with pytest.raises(PortError, match=r"norm -> norm \(layer_norm\): epsilon is 0.001 in Flax \(source module "
                                        r"\(LayerNorm.epsilon\)\) but the target has 1e-05"):  # fmt: skip
        load_torch(tm, variables, source=SetupNet())
    with pytest.raises(PortError, match=r"epsilon is 0.002 in Flax \(hparams\['n.\*'\]\)"):
        load_torch(tm, variables, source=SetupNet(), hparams={"n.*": {"epsilon": 2e-3}})
    rep = load_torch(tm, variables, hparams={"*": {"epsilon": 1e-5}, "bn": {"epsilon": 1e-4, "momentum": 0.9}})
    assert rep.ok and not rep.warnings
    with pytest.raises(PathError, match="hparams: no Flax layer 'zz'"):
        load_torch(tm, variables, hparams={"zz": {"epsilon": 1.0}})
    with pytest.raises(RuleError, match=r"hparams: no layer rule uses \['eps'\]"):
        load_torch(tm, variables, hparams={"*": {"eps": 1.0}})

    class N(nnx.Module):
        def __init__(self, rngs):
            self.norm = nnx.LayerNorm(6, epsilon=1e-3, rngs=rngs)

    m = N(nnx.Rngs(0))
    t = nn.ModuleDict({"norm": nn.LayerNorm(6, eps=1e-3)})
    assert load_torch(t, nnx.state(m), source=m).ok
    with pytest.raises(PortError, match=r"source module \(LayerNorm.epsilon\)"):
        load_torch(nn.ModuleDict({"norm": nn.LayerNorm(6)}), m)


def test_registry_custom_module_and_duplicates(torch):
    nn = torch.nn

    class Gain(nn.Module):
        def __init__(self, n, eps=1e-3):
            super().__init__()
            self.g = nn.Parameter(torch.zeros(n))
            self.eps = eps

    rule = LayerRule("gain", flax="norm", ops=(ops.Rename("scale", "g"),),
                     hparams=(HParam("epsilon", target="eps", default=1e-6),))  # fmt: skip
    register_layer(Gain, rule)
    with pytest.raises(RuleError, match="already has the rule 'gain'; pass replace=True"):
        register_layer(Gain, rule)
    register_layer(Gain, rule, replace=True)
    with pytest.raises(RuleError, match="already has the rule 'dense'"):
        register_layer(nn.Linear, rule)
    with pytest.raises(RuleError, match="flax='weights' is not one of"):
        LayerRule("x", flax="weights")
    variables = {"params": {"LayerNorm_0": {"scale": jnp.arange(3.0)}}}
    rep = load_torch(Gain(3), variables, hparams={"*": {"epsilon": 1e-3}})
    assert [(p.target, p.transform) for p in rep.params] == [("g", "rename scale->g")]
    with pytest.raises(PortError, match=r"epsilon of the Flax layer is unknown"):
        load_torch(Gain(3), variables)
    assert_same_tree(params_from_torch(Gain(3), like=variables, hparams={"*": {"epsilon": 1e-3}}),
                     {"params": {"LayerNorm_0": {"scale": jnp.zeros(3)}}})  # fmt: skip


def test_builtin_rms_norm_linear_in_out_and_raw_parameters(torch):
    nn = torch.nn

    class RMS(nn.Module):  # T5LayerNorm-like: a weight only and an eps attribute
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4))
            self.variance_epsilon = 1e-6

    class Conv1D(nn.Module):  # GPT-2 style: weight (in, out)
        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight, self.bias = nn.Parameter(torch.zeros(nx, nf)), nn.Parameter(torch.zeros(nf))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
            self.norm = RMS()
            self.c_attn, self.c_proj = Conv1D(12, 4), Conv1D(4, 4)

    k = jax.random.normal(jax.random.key(0), (12, 4))
    p = jax.random.normal(jax.random.key(1), (4, 4))
    variables = {"params": {"cls_token": jnp.ones((1, 1, 4)), "norm": {"weight": 2 * jnp.ones(4)},
                            "c_attn": {"kernel": k, "bias": jnp.zeros(12)},  # (out, in) like HF FlaxConv1D
                            "c_proj": {"kernel": p, "bias": jnp.zeros(4)}}}  # fmt: skip
    tm = Net()
    rep = load_torch(tm, variables)
    assert rep.ok, rep
    np.testing.assert_array_equal(tm.c_attn.weight.detach().numpy(), np.asarray(k).T)
    np.testing.assert_array_equal(tm.c_proj.weight.detach().numpy(), np.asarray(p).T)  # square: proven by c_attn
    assert float(tm.norm.weight[0].detach()) == 2.0 and float(tm.cls_token[0, 0, 0].detach()) == 1.0
    assert "layout proven by c_attn -> c_attn" in str(rep)
    only_square = {"params": {"c_proj": variables["params"]["c_proj"]}}
    with pytest.raises(PortError, match="several layouts fit the shapes"):
        load_torch(nn.ModuleDict({"c_proj": Conv1D(4, 4)}), only_square)


def test_plan_is_a_dry_run(torch):
    nn = torch.nn
    variables = {"params": {"Dense_0": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)}}}
    tm = nn.Sequential(nn.Linear(3, 4))
    p = plan(tm, variables)
    assert p.ok and p.mapping() == {"Dense_0": "0"} and p.entries[0].paired_by == "structure"
    assert "Dense_0  0       dense  structure  -                 rename kernel->weight; transpose" in str(p)
    ln = plan(nn.Sequential(nn.LayerNorm(4, eps=1e-3)), {"params": {"LayerNorm_0": {"scale": jnp.ones(4)}}},
              hparams={"*": {"epsilon": 1e-3}})  # fmt: skip
    assert ln.entries[0].hparams == ("epsilon=0.001 (hparams)",) and "epsilon=0.001 (hparams)" in str(ln)
    before = tm[0].weight.detach().clone()
    plan(tm, variables)
    assert torch.equal(before, tm[0].weight)
    bad = plan(nn.Sequential(nn.Linear(3, 5)), variables)
    assert not bad.ok and "shape" in bad.mismatched[0] and "does not fit" in str(bad)
    with pytest.raises(RuleError, match="plan: expected a torch.nn.Module"):
        plan(object(), variables)


@pytest.mark.parametrize("leaf, what", [(1.5, "a float, not an array"), (None, "a None, not an array"),
                                        (jax.ShapeDtypeStruct((3, 4), jnp.float32), "a jax.ShapeDtypeStruct")])
def test_non_array_leaves_are_named(torch, leaf, what):
    variables = {"params": {"Dense_0": {"kernel": leaf, "bias": jnp.zeros(4)}}}
    with pytest.raises(InteropError, match=rf"load_torch: leaf 'params/Dense_0/kernel' is {what}"):
        load_torch(torch.nn.Linear(3, 4), variables)


def test_abstract_like_is_fine_for_reading(torch):
    like = {"params": {"kernel": jax.ShapeDtypeStruct((3, 4), jnp.float32), "bias": jax.ShapeDtypeStruct((4,), jnp.float32)}}
    out = params_from_torch(torch.nn.Linear(3, 4), like)
    assert out["params"]["kernel"].shape == (3, 4)


def test_deleted_leaves_are_named_for_every_framework(torch):
    mx = require("mxnet")
    kernel = jnp.ones((3, 4))
    variables = {"params": {"Dense_0": {"kernel": kernel, "bias": jnp.zeros(4)}}}
    kernel.delete()
    with pytest.raises(InteropError, match=r"load_torch: leaf 'params/Dense_0/kernel' is a deleted jax.Array"):
        load_torch(torch.nn.Linear(3, 4), variables)
    dense = mx.gluon.nn.Dense(4, in_units=3)
    dense.initialize()
    with pytest.raises(InteropError, match=r"load_gluon: leaf 'params/Dense_0/kernel' is a deleted jax.Array"):
        load_gluon(dense, variables)
    with pytest.raises(InteropError, match=r"params_from_torch: leaf"):
        params_from_torch(torch.nn.Linear(3, 4), variables)


def test_tf_keras_sequential_and_functional():
    require("tensorflow")
    tf_keras = require("tf_keras")
    from jinit.interop import load_keras, params_from_keras

    class MLP(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            x = fnn.LayerNorm(epsilon=1e-3)(jax.nn.relu(fnn.Dense(8)(x)))
            return fnn.Dense(2)(x)

    x = jax.random.normal(jax.random.key(1), (3, 4))
    variables = MLP().init(jax.random.key(0), x)
    L = tf_keras.layers
    seq = tf_keras.Sequential([tf_keras.Input((4,)), L.Dense(8, activation="relu"), L.LayerNormalization(epsilon=1e-3),
                               L.Dense(2)])  # fmt: skip
    inp = tf_keras.Input((4,))
    fun = tf_keras.Model(inp, L.Dense(2)(L.LayerNormalization(epsilon=1e-3)(L.Dense(8, activation="relu")(inp))))
    for km in (seq, fun):
        rep = load_keras(km, variables, hparams={"*": {"epsilon": 1e-3}})
        assert rep.ok and len(rep.params) == 6
        assert_close(MLP().apply(variables, x), km(np.asarray(x)).numpy())
        assert_same_tree(params_from_keras(km, like=variables, hparams={"*": {"epsilon": 1e-3}}), variables)


def test_unknown_value_without_default_warns(torch):
    nn = torch.nn
    variables = {"params": {"GroupNorm_0": {"scale": jnp.ones(4), "bias": jnp.zeros(4)}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = load_torch(nn.GroupNorm(2, 4, eps=1e-6), variables)
    assert any("num_groups of the Flax layer is unknown and not checked (the target has 2)" in w for w in rep.warnings)


def test_compact_source_needs_example_inputs_and_assumptions_are_reported(torch):
    """A compact module's submodules exist only in a call: source=(module, x) traces them; without
    the input an assumed eps that happens to equal the target's is reported, never silent."""
    nn = torch.nn

    class F(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            return fnn.BatchNorm(use_running_average=True, epsilon=0.5, momentum=0.9)(fnn.Dense(4)(x))

    x = jnp.ones((2, 3))
    variables = F().init(jax.random.key(0), x)
    tm = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
    rep = load_torch(tm, variables, source=F())
    assert rep.ok and any("epsilon not read from the Flax model for 1 layer(s) (BatchNorm_0): assumed Flax's "
                          "default 1e-05" in w for w in rep.warnings)  # fmt: skip
    with pytest.raises(PortError, match=r"epsilon is 0.5 in Flax \(source module \(BatchNorm.epsilon\)\) but the "
                                        r"target has 1e-05"):  # fmt: skip
        load_torch(tm, variables, source=(F(), x))
    tm[1].eps, tm[1].momentum = 0.5, 0.1
    rep = load_torch(tm, variables, source=(F(), x))
    assert rep.ok and not rep.warnings
    with pytest.raises(RuleError, match=r"source: F.apply\(variables, \*example_inputs\) failed"):
        load_torch(tm, variables, source=(F(), jnp.ones((2, 7))))


def test_frozen_parameters_without_flax_partner_are_skipped(torch):
    nn = torch.nn

    class T(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)
            self.pos = nn.Embedding(6, 4)
            self.pos.weight.requires_grad = False  # fixed sinusoidal table: Flax computes it

    variables = {"params": {"fc": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)}}}
    rep = load_torch(T(), variables)
    assert rep.ok and rep.skipped == ("pos.weight (frozen parameter with no Flax counterpart, e.g. fixed sinusoidal "
                                      "positions)",)  # fmt: skip
    t = T()
    t.pos.weight.requires_grad = True
    with pytest.raises(PortError, match=r"missing \(1\):\n  pos \(embed\): weight\[6, 4\]"):
        load_torch(t, variables)


def test_tf_keras_weights_made_under_a_name_scope_pair_by_name():
    """A tf-keras layer that makes its weights itself under sub-scopes (Hugging Face TF
    embeddings: ``word_embeddings/weight``) pairs by name with the Flax layers of those names."""
    tf = require("tensorflow")
    tf_keras = require("tf_keras")
    from jinit.interop import load_keras, params_from_keras

    class Embeddings(tf_keras.layers.Layer):
        def build(self, input_shape):
            with tf.name_scope("word_embeddings"):
                self.weight = self.add_weight(name="weight", shape=[10, 4])
            with tf.name_scope("position_embeddings"):
                self.pos = self.add_weight(name="embeddings", shape=[6, 4])
            super().build(input_shape)

        def call(self, ids):
            return tf.gather(self.weight, ids) + self.pos[: tf.shape(ids)[1]]

    class Model(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings(name="embeddings")

        def call(self, ids):
            return self.embeddings(ids)

    class FEmb(fnn.Module):
        def setup(self):
            self.word_embeddings = fnn.Embed(10, 4)
            self.position_embeddings = fnn.Embed(6, 4)

        def __call__(self, ids):
            return self.word_embeddings(ids) + self.position_embeddings(jnp.arange(ids.shape[1]))[None]

    class F(fnn.Module):
        def setup(self):
            self.embeddings = FEmb()

        def __call__(self, ids):
            return self.embeddings(ids)

    ids = np.array([[1, 2, 3]])
    variables = jax.tree.map(lambda a: a, F().init(jax.random.key(0), ids))  # re-sorted
    km = Model()
    km(ids)
    rep = load_keras(km, variables)
    assert rep.ok and {p.paired_by for p in rep.params} == {"name"}
    assert [p.target for p in rep.params] == ["embeddings/word_embeddings/weight", "embeddings/position_embeddings/embeddings"]
    assert_close(F().apply(variables, ids), km(ids).numpy())
    assert_same_tree(params_from_keras(km, like=variables), variables)


def test_weight_norm_parametrized_conv(torch):
    nn = torch.nn
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 6, 3), name="weight", dim=2)
    g, v = jax.random.normal(jax.random.key(0), (1, 1, 3)), jax.random.normal(jax.random.key(1), (6, 4, 3))
    variables = {"params": {"conv": {"weight_g": g, "weight_v": v, "bias": jnp.zeros(6)}}}
    rep = load_torch(nn.ModuleDict({"conv": conv}), variables)
    assert rep.ok and sorted(p.target for p in rep.params) == [
        "conv.bias", "conv.parametrizations.weight.original0", "conv.parametrizations.weight.original1"]
    np.testing.assert_array_equal(conv.parametrizations.weight.original1.detach().numpy(), np.asarray(v))
    assert_same_tree(params_from_torch(nn.ModuleDict({"conv": conv}), like=variables), variables)


def test_tf_keras_linear_in_out_with_row_bias():
    """GPT-style TFConv1D: weight (nx, nf), bias (1, nf); the Flax kernel is (nf, nx) here."""
    tf = require("tensorflow")
    tf_keras = require("tf_keras")
    from jinit.interop import load_keras, params_from_keras

    class Conv1D(tf_keras.layers.Layer):
        def __init__(self, nf, nx, **kw):
            super().__init__(**kw)
            self.nf, self.nx = nf, nx

        def build(self, input_shape):
            self.weight = self.add_weight(name="weight", shape=[self.nx, self.nf])
            self.bias = self.add_weight(name="bias", shape=[1, self.nf])
            super().build(input_shape)

        def call(self, x):
            return tf.matmul(x, self.weight) + self.bias

    class Model(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = Conv1D(12, 4, name="c_attn"), Conv1D(4, 12, name="c_proj")

        def call(self, x):
            return self.c_proj(self.c_attn(x))

    k1, k2 = jax.random.normal(jax.random.key(0), (12, 4)), jax.random.normal(jax.random.key(1), (4, 12))
    variables = {"params": {"c_attn": {"kernel": k1, "bias": jnp.ones(12)}, "c_proj": {"kernel": k2, "bias": jnp.ones(4)}}}
    km = Model()
    km(np.ones((1, 4), np.float32))
    rep = load_keras(km, variables)
    assert rep.ok and "reshape(1, -1)" in str(rep)
    x = np.ones((2, 4), np.float32)
    want = (x @ np.asarray(k1).T + 1) @ np.asarray(k2).T + 1
    assert_close(want, km(x).numpy())
    assert_same_tree(params_from_keras(km, like=variables), variables)



def test_tf_keras_weight_norm_factors():
    """A tf-keras conv keeping weight-norm factors: ``weight_g`` is ``(k, 1, 1)`` there and
    ``(1, 1, k)`` in Flax (torch's layout); ``weight_v`` and ``bias`` are as they are."""
    require("tensorflow")
    tf_keras = require("tf_keras")
    from jinit.interop import load_keras, params_from_keras

    class WNConv(tf_keras.layers.Layer):
        def build(self, input_shape):
            self.weight_v = self.add_weight(name="weight_v", shape=[6, 4, 3])
            self.weight_g = self.add_weight(name="weight_g", shape=[3, 1, 1])
            self.bias = self.add_weight(name="bias", shape=[6])
            super().build(input_shape)

        def call(self, x):
            return x

    class Model(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = WNConv(name="conv")

        def call(self, x):
            return self.conv(x)

    km = Model()
    km(np.ones((1, 4), np.float32))
    g = jax.random.normal(jax.random.key(0), (1, 1, 3))
    variables = {"params": {"conv": {"weight_g": g, "weight_v": jnp.ones((6, 4, 3)), "bias": jnp.zeros(6)}}}
    rep = load_keras(km, variables)
    assert rep.ok and "permute(2, 1, 0)" in str(rep)
    np.testing.assert_array_equal(km.conv.weight_g.numpy()[:, 0, 0], np.asarray(g)[0, 0])
    assert_same_tree(params_from_keras(km, like=variables), variables)
