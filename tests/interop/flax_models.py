"""The four Flax (linen) models of the equivalence proofs, shared by the torch/Keras/Gluon tests.

Small dimensions on purpose; every model has non-square kernels so that a transposition
mistake cannot pass a shape check by accident.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class CNN(nn.Module):
    """conv -> batchnorm (eval) -> relu -> 2x2 avg pool -> flatten (channels last) -> dense."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3), padding="SAME")(x)
        x = nn.BatchNorm(use_running_average=True)(x)
        x = nn.avg_pool(nn.relu(x), (2, 2), strides=(2, 2))
        return nn.Dense(5)(x.reshape(x.shape[0], -1))


class RNNClassifier(nn.Module):
    """embedding -> LSTM (or GRU) over time -> dense on the last hidden state."""

    cell: str = "lstm"

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(20, 6)(tokens)
        cell = nn.LSTMCell(5) if self.cell == "lstm" else nn.GRUCell(5)
        x = nn.RNN(cell)(x)
        return nn.Dense(3)(x[:, -1])


class PreLNBlock(nn.Module):
    """x + MHA(LN(x)); x + MLP(LN(x)) with exact GELU."""

    heads: int = 2

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(h, h)
        h = nn.LayerNorm()(x)
        h = nn.Dense(16)(h)
        return x + nn.Dense(8)(jax.nn.gelu(h, approximate=False))


MLP = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(1)])


def randomize_stats(variables, seed=3):
    """Non-trivial batch_stats (mean ~ N(0,1), var ~ U(0.5, 2)) so BatchNorm eval matters."""
    rng = np.random.default_rng(seed)
    stats = jax.tree.map(lambda a: a, variables["batch_stats"])
    for layer in stats.values():
        layer["mean"] = jnp.asarray(rng.normal(size=layer["mean"].shape), jnp.float32)
        layer["var"] = jnp.asarray(rng.uniform(0.5, 2.0, size=layer["var"].shape), jnp.float32)
    return {**variables, "batch_stats": stats}


def build(name: str):
    """(flax module, variables, input) for one of: mlp, cnn, lstm, gru, block."""
    key = jax.random.key(0)
    if name == "mlp":
        x = jax.random.normal(jax.random.key(1), (2, 4))
        return MLP, MLP.init(key, x), x
    if name == "cnn":
        x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
        return CNN(), randomize_stats(CNN().init(key, x)), x
    if name in ("lstm", "gru"):
        x = jax.random.randint(jax.random.key(1), (2, 7), 0, 20)
        m = RNNClassifier(name)
        return m, m.init(key, x), x
    if name == "block":
        x = jax.random.normal(jax.random.key(1), (2, 5, 8))
        m = PreLNBlock()
        v = m.init(key, x)
        # non-trivial LayerNorm affine parameters
        v = jax.tree_util.tree_map_with_path(
            lambda p, a: a + 0.1 * jax.random.normal(jax.random.key(len(str(p))), a.shape)
            if "LayerNorm" in str(p) else a, v)
        return m, v, x
    raise KeyError(name)


def assert_close(ref, got, rtol=1e-5):
    """max |ref - got| <= rtol * max |ref| (float32, relative to the output scale)."""
    ref, got = np.asarray(ref), np.asarray(got)
    assert ref.shape == got.shape, (ref.shape, got.shape)
    err, scale = float(np.abs(ref - got).max()), float(np.abs(ref).max())
    assert err <= rtol * scale, f"max abs diff {err:.3g} > {rtol} * output scale {scale:.3g}"
    return err


def assert_same_tree(a, b):
    """Bit-exact equality of two variables trees (structure, dtype, values)."""
    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    assert ta == tb
    for (pa, x), (_, y) in zip(la, lb, strict=False):
        assert x.dtype == y.dtype and x.shape == y.shape, pa
        assert np.array_equal(np.asarray(x).view(np.uint8), np.asarray(y).view(np.uint8)), pa
