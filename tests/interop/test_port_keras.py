"""Proof by equivalence: Flax models ported to Keras 3 (TensorFlow backend) compute the same function."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import require  # noqa: E402
from flax_models import assert_close, assert_same_tree, build  # noqa: E402

from jinit._errors import PortError  # noqa: E402
from jinit.interop import load_keras, params_from_keras  # noqa: E402


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    k = require("keras")
    if k.backend.backend() != "tensorflow":
        pytest.skip(f"KERAS_BACKEND is {k.backend.backend()!r}; these tests pin tensorflow")
    return k


def keras_model(keras, name):
    layers = keras.layers
    if name == "mlp":
        return keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
    if name == "cnn":
        return keras.Sequential([
            keras.Input((8, 8, 3)), layers.Conv2D(4, 3, padding="same"),
            layers.BatchNormalization(epsilon=1e-5, momentum=0.99), layers.ReLU(),
            layers.AveragePooling2D(2), layers.Flatten(), layers.Dense(5),
        ])  # fmt: skip
    if name in ("lstm", "gru"):
        rnn = layers.LSTM(5) if name == "lstm" else layers.GRU(5)  # GRU: reset_after=True
        return keras.Sequential([keras.Input((7,), dtype="int32"), layers.Embedding(20, 6), rnn, layers.Dense(3)])
    x = keras.Input((5, 8))
    h = layers.LayerNormalization(epsilon=1e-6)(x)
    x2 = x + layers.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
    h = layers.LayerNormalization(epsilon=1e-6)(x2)
    h = layers.Dense(8)(layers.Activation("gelu")(layers.Dense(16)(h)))  # keras gelu is exact
    return keras.Model(x, x2 + h)


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "gru", "block"])
def test_equivalent_forward_and_bit_exact_round_trip(keras, name):
    fm, variables, x = build(name)
    km = keras_model(keras, name)
    report = load_keras(km, variables)
    assert report.ok and len(report.params) == len(km.weights)
    assert_close(fm.apply(variables, x), np.asarray(km(np.asarray(x))))
    assert_same_tree(params_from_keras(km, like=variables), variables)


def test_identity_layouts_are_zero_copy_and_tf_never_writes_into_jax(keras):
    fm, variables, x = build("mlp")
    km = keras_model(keras, "mlp")
    kernel = variables["params"]["layers_0"]["kernel"]
    snapshot = np.array(kernel)
    rep = load_keras(km, variables, mode="share")
    assert rep.zero_copy == 4 and all("aliases" in p.detail for p in rep.params)
    km.layers[0].kernel.assign_add(np.ones((4, 8), np.float32))  # TF copies on write
    np.testing.assert_array_equal(np.asarray(kernel), snapshot)


def test_gate_concat_is_reported_as_a_copy(keras):
    _, variables, _ = build("gru")
    km = keras_model(keras, "gru")
    rep = load_keras(km, variables, mode="move")
    kernel = next(p for p in rep.params if p.target.startswith("gru") and p.target.endswith("/kernel"))
    assert not kernel.zero_copy and "layout converted in JAX" in kernel.detail
    assert kernel.source[:2] == ("params/GRUCell_0/iz/kernel", "params/GRUCell_0/ir/kernel")  # z, r, h
    assert all(x.is_deleted() for x in jax.tree.leaves(variables))


def test_keras_default_eps_is_reported(keras):
    _, variables, _ = build("block")
    km = keras_model(keras, "block")
    km.layers[1].epsilon = 1e-3  # Keras' default; Flax uses 1e-6
    with pytest.raises(PortError, match=r"epsilon of the Flax layer is unknown .*1e-06\) and the target has 0.001"):
        load_keras(km, variables)


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_conv_transpose(keras, transpose_kernel):
    import flax.linen as fnn

    x = jax.random.normal(jax.random.key(1), (1, 3, 3, 4))
    fm = fnn.ConvTranspose(6, (2, 2), padding="VALID", transpose_kernel=transpose_kernel)
    v = fm.init(jax.random.key(0), x)
    km = keras.Sequential([keras.Input((3, 3, 4)), keras.layers.Conv2DTranspose(6, 2, padding="valid")])
    hp = {"": {"transpose_kernel": transpose_kernel}}
    rep = load_keras(km, v, hparams=hp)
    assert ("flip" in rep.params[0].transform) != transpose_kernel
    assert_close(fm.apply(v, x), np.asarray(km(np.asarray(x))))
    assert_same_tree(params_from_keras(km, like=v, hparams=hp), v)


def test_nested_models_and_bidirectional_pair_in_creation_order(keras):
    """Keras' own _flatten_layers visits children in reverse (forward_lstm after backward_lstm)."""
    import flax.linen as fnn

    layers = keras.layers

    class Bi(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            x = fnn.Bidirectional(fnn.RNN(fnn.LSTMCell(5)), fnn.RNN(fnn.LSTMCell(5)))(x)
            return fnn.Sequential([fnn.Dense(6), fnn.Dense(4)])(x)

    inner = keras.Sequential([keras.Input((7, 10)), layers.Dense(6), layers.Dense(4)])
    km = keras.Sequential([keras.Input((7, 6)), layers.Bidirectional(layers.LSTM(5, return_sequences=True)), inner])
    x = jax.random.normal(jax.random.key(1), (2, 7, 6))
    v = Bi().init(jax.random.key(0), x)
    load_keras(km, v)
    assert_close(Bi().apply(v, x), np.asarray(km(np.asarray(x))))
    assert_same_tree(params_from_keras(km, like=v), v)


_JAX_BACKEND_MOVE = """
import os; os.environ["KERAS_BACKEND"] = "jax"
import sys; sys.path.insert(0, sys.argv[1])
import jax, keras, numpy as np
from flax_models import build
from jinit.interop import load_keras
fm, variables, x = build("mlp")
km = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
rep = load_keras(km, variables, mode="move")
leaves = jax.tree.leaves(variables)
assert rep.zero_copy == 4 and not any(a.is_deleted() for a in leaves), rep
assert km.layers[0].kernel.value is variables["params"]["layers_0"]["kernel"]
err = float(np.abs(np.asarray(fm.apply(variables, x)) - np.asarray(km(np.asarray(x)))).max())
assert err <= 1e-6, err
print("ok")
"""


@pytest.mark.slow
def test_jax_backend_move_keeps_the_arrays_the_model_holds():
    """On Keras' JAX backend the variable holds the jax.Array itself: move must not delete it."""
    import subprocess
    import sys

    require("keras")
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", _JAX_BACKEND_MOVE, here], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
