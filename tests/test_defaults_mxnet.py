"""compat.mxnet.defaults() on Flax trees against real MXNet Gluon layers (thresholds: _stats.py).

Gluon layers are ``initialize()``d with the default global initializer (``Uniform(0.07)``),
fixed seed; each weight is compared with the jinit-initialized Flax equivalent (KS two-sample at
>= 100k values each, std 0.07/sqrt(3), exact bounds); biases, gamma/beta and running stats
exactly.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
import pytest
from _defaults_harness import linen_spec, ours, theirs
from _stats import check_same_distribution
from conftest import require

import jinit
from jinit.compat import mxnet as jm

SCALE = 0.07


def _gluon():
    mx = require("mxnet")
    mx.random.seed(0)
    return mx.gluon


def _params(block) -> dict[str, np.ndarray]:
    block.initialize()
    return {k.split("_", 1)[1]: v.data().asnumpy() for k, v in block.collect_params().items()}


def _uniform_case(got, want):
    check_same_distribution(got, want, std=SCALE / math.sqrt(3), lo=-SCALE, hi=SCALE)


def test_dense_conv_embedding():
    gluon = _gluon()
    init = jm.defaults()
    dense = linen_spec(nn.Dense(512), (1, 256))
    _uniform_case(ours(init, dense, "kernel"),
                  theirs(lambda i: _params(gluon.nn.Dense(512, in_units=256))["weight"]))
    np.testing.assert_array_equal(init(jax.random.key(0), dense)["bias"],
                                  _params(gluon.nn.Dense(512, in_units=256))["bias"])
    conv = linen_spec(nn.Conv(128, (3, 3)), (1, 8, 8, 64))
    _uniform_case(ours(init, conv, "kernel"),
                  theirs(lambda i: _params(gluon.nn.Conv2D(128, 3, in_channels=64))["weight"]))
    embed = linen_spec(nn.Embed(1000, 128), (1, 4), dtype=int)
    _uniform_case(ours(init, embed, "embedding"),
                  theirs(lambda i: _params(gluon.nn.Embedding(1000, 128))["weight"]))


@pytest.mark.slow
def test_lstm():
    gluon = _gluon()
    spec = linen_spec(nn.RNN(nn.LSTMCell(64)), (1, 3, 32))
    make = lambda i: _params(gluon.rnn.LSTM(64, input_size=32))  # noqa: E731
    w_i, w_h = ours(jm.defaults(), spec, tuple(f"cell/i{g}/kernel" for g in "ifgo"),
                    tuple(f"cell/h{g}/kernel" for g in "ifgo"))
    _uniform_case(w_i, theirs(lambda i: make(i)["l0_i2h_weight"]))
    _uniform_case(w_h, theirs(lambda i: make(i)["l0_h2h_weight"]))
    params = jm.defaults()(jax.random.key(0), spec)["cell"]
    gluon_bias = make(0)["l0_h2h_bias"]
    for g in "ifgo":  # no forget bias in Gluon's LSTM: all zeros
        np.testing.assert_array_equal(params[f"h{g}"]["bias"], gluon_bias[:64])


def test_batchnorm_exact():
    gluon = _gluon()

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.BatchNorm(use_running_average=True)(x)

    out = jm.defaults()(jax.random.key(0), linen_spec(Net(), (2, 16), collection=None))
    p = _params(gluon.nn.BatchNorm(in_channels=16))
    np.testing.assert_array_equal(out["params"]["BatchNorm_0"]["scale"], p["gamma"])
    np.testing.assert_array_equal(out["params"]["BatchNorm_0"]["bias"], p["beta"])
    np.testing.assert_array_equal(out["batch_stats"]["BatchNorm_0"]["mean"], p["running_mean"])
    np.testing.assert_array_equal(out["batch_stats"]["BatchNorm_0"]["var"], p["running_var"])


def test_global_init_argument():
    """``defaults(init)`` mirrors ``net.initialize(init)``: every weight, no bias."""
    spec = linen_spec(nn.Dense(64), (1, 32))
    out = jm.defaults(jinit.constant(0.5))(jax.random.key(0), spec)
    assert float(out["kernel"].min()) == float(out["kernel"].max()) == 0.5
    assert not np.asarray(out["bias"]).any()
    with pytest.raises(jinit.InitializerArgumentError, match="init must be an initializer"):
        jm.defaults(0.07)
