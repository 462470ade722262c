"""Proof by equivalence: Flax models ported to MXNet Gluon 1.9 compute the same function."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import require
from flax_models import assert_close, assert_same_tree, build

from jinit._errors import PortError
from jinit.interop import gluon_attention, load_gluon, params_from_gluon


@pytest.fixture(scope="module")
def mx():
    return require("mxnet")


def gluon_model(mx, name):
    gnn, rnn = mx.gluon.nn, mx.gluon.rnn

    class CNN(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.conv = gnn.Conv2D(4, 3, padding=1, in_channels=3)
                self.bn = gnn.BatchNorm(epsilon=1e-5, momentum=0.99, in_channels=4)
                self.pool = gnn.AvgPool2D(2)
                self.fc = gnn.Dense(5, in_units=64)

        def hybrid_forward(self, F, x):  # NHWC in; conv NCHW; Dense flattens channels-last
            x = self.pool(F.relu(self.bn(self.conv(F.transpose(x, axes=(0, 3, 1, 2))))))
            return self.fc(F.transpose(x, axes=(0, 2, 3, 1)))

    class RNN(mx.gluon.HybridBlock):
        def __init__(self, cell):
            super().__init__()
            with self.name_scope():
                self.embed = gnn.Embedding(20, 6)
                self.rnn = (rnn.LSTM if cell == "lstm" else rnn.GRU)(5, input_size=6, layout="NTC")
                self.fc = gnn.Dense(3, in_units=5)

        def hybrid_forward(self, F, tokens):
            h = self.rnn(self.embed(tokens))
            return self.fc(F.squeeze(F.slice_axis(h, axis=1, begin=-1, end=None), axis=1))

    class Block(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.ln1 = gnn.LayerNorm(epsilon=1e-6, in_channels=8)
                self.attn = gluon_attention(8, 2)
                self.ln2 = gnn.LayerNorm(epsilon=1e-6, in_channels=8)
                self.fc1 = gnn.Dense(16, flatten=False, in_units=8)
                self.fc2 = gnn.Dense(8, flatten=False, in_units=16)

        def hybrid_forward(self, F, x):
            h = self.ln1(x)
            x = x + self.attn(h, h)
            return x + self.fc2(F.LeakyReLU(self.fc1(self.ln2(x)), act_type="gelu"))  # erf GELU

    if name == "mlp":
        m = gnn.HybridSequential()
        m.add(gnn.Dense(8, activation="relu", in_units=4), gnn.Dense(1, in_units=8))
    elif name == "cnn":
        m = CNN()
    elif name in ("lstm", "gru"):
        m = RNN(name)
    else:
        m = Block()
    m.initialize()
    return m


def run(mx, m, x):
    x = np.asarray(x)
    return m(mx.nd.array(x, dtype=x.dtype)).asnumpy()


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "gru", "block"])
def test_equivalent_forward_and_bit_exact_round_trip(mx, name):
    fm, variables, x = build(name)
    gm = gluon_model(mx, name)
    report = load_gluon(gm, variables)
    assert report.ok and len(report.params) == len(list(gm.collect_params().keys()))
    assert_close(fm.apply(variables, x), run(mx, gm, x))
    assert_same_tree(params_from_gluon(gm, like=variables), variables)


def test_share_is_zero_copy_only_for_identity_layouts(mx):
    fm, variables, x = build("mlp")
    gm = gluon_model(mx, "mlp")
    rep = load_gluon(gm, variables, mode="share")
    by = {p.target: p for p in rep.params}
    assert by["0.bias"].zero_copy and not by["0.weight"].zero_copy
    assert "compact buffers only" in by["0.weight"].detail
    bias = variables["params"]["layers_0"]["bias"]
    assert float(bias[0]) == float(gm[0].bias.data()[0].asscalar())
    assert_close(fm.apply(variables, x), run(mx, gm, x))


def test_deferred_and_unsupported_layers_are_reported(mx):
    _, variables, _ = build("mlp")
    gnn = mx.gluon.nn
    m = gnn.HybridSequential()
    m.add(gnn.Dense(8, activation="relu"), gnn.Dense(1, in_units=8), gnn.GroupNorm(2))
    m.initialize()
    with pytest.raises(PortError, match="deferred initialization") as e:
        load_gluon(m, variables)
    assert any("per group" in s for s in e.value.report.missing)
    assert all(not x.is_deleted() for x in jax.tree.leaves(variables))


@pytest.mark.parametrize("mode", ["copy", "share"])
def test_shared_parameters_are_filled_once(mx, mode):
    """A Dense built with ``params=other.params`` is the Flax module applied twice."""
    import flax.linen as fnn

    gnn = mx.gluon.nn

    class Twice(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.a = gnn.Dense(5, in_units=5, use_bias=False)
                self.b = gnn.Dense(5, in_units=5, use_bias=False, params=self.a.params)

        def hybrid_forward(self, F, x):
            return self.b(self.a(x))

    class F(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            dense = fnn.Dense(5, use_bias=False)
            return dense(dense(x))

    x = jax.random.normal(jax.random.key(1), (3, 5))
    v = F().init(jax.random.key(0), x)
    block = Twice()
    block.initialize()
    rep = load_gluon(block, v, mode=mode)
    assert rep.ok and [p.target for p in rep.params] == ["a.weight"]
    assert_close(F().apply(v, x), run(mx, block, x))
    assert_same_tree(params_from_gluon(block, like=v), v)
