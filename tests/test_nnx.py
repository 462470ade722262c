"""jinit.nnx: reinit in place, reinit_state, abstract init; clean paths shared with linen."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jinit
from jinit import nnx as jnnx
from jinit.compat import flax as jf
from jinit.compat import keras as jk
from jinit.compat import torch as jt

KEY = jax.random.key(0)


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(6, 8, rngs=rngs), nnx.Linear(8, 3, rngs=rngs)])
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.layers[1](self.drop(self.bn(self.layers[0](x))))


def make():
    return Net(nnx.Rngs(0))


def test_paths_are_clean():
    assert jinit.paths(nnx.state(make(), nnx.Param)) == [
        "bn/bias", "bn/scale", "layers/0/bias", "layers/0/kernel", "layers/1/bias",
        "layers/1/kernel"]


def test_reinit_in_place_resets_params_and_batch_stats_keeps_rng_state():
    model = make()
    model.bn.mean[...] = jnp.full(8, 5.0)
    rng_before = jax.tree.map(lambda x: x, nnx.state(model, nnx.RngState))
    jnnx.reinit(model, jt.defaults(), KEY)
    assert float(abs(model.layers[0].bias[...]).max()) <= 1 / np.sqrt(6)
    np.testing.assert_array_equal(model.bn.mean[...], np.zeros(8))
    rng_after = nnx.state(model, nnx.RngState)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(
        jax.random.key_data(a) if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else a,
        jax.random.key_data(b) if jnp.issubdtype(b.dtype, jax.dtypes.prng_key) else b)),
        rng_before, rng_after))


def test_filter_selects_what_is_reinitialized():
    model = make()
    model.bn.mean[...] = jnp.full(8, 5.0)
    jnnx.reinit(model, jinit.rules((".*", jinit.zeros)), KEY, filter=nnx.Param)
    assert not np.asarray(model.layers[0].kernel[...]).any()
    np.testing.assert_array_equal(model.bn.mean[...], np.full(8, 5.0))


def test_same_values_as_linen_for_the_same_paths():
    """A leaf's key depends on its path only: nnx "layers/0/kernel" == linen "layers/0/kernel"."""
    state = jnnx.reinit_state(nnx.state(make()), jf.defaults(), KEY)
    linen = jf.defaults()(KEY, {"layers": {"0": {"kernel": jax.ShapeDtypeStruct((6, 8),
                                                                                  jnp.float32)}}})
    np.testing.assert_array_equal(state["layers"][0]["kernel"][...],
                                  linen["layers"]["0"]["kernel"])


def test_reinit_state_functional_and_jittable():
    graphdef, state = nnx.split(make())
    before = jax.tree.map(lambda x: x, state)
    eager = jnnx.reinit_state(state, jk.defaults(), KEY)
    jitted = jax.jit(lambda s, k: jnnx.reinit_state(s, jk.defaults(), k))(state, KEY)
    k1, k2 = eager["layers"][0]["kernel"][...], jitted["layers"][0]["kernel"][...]
    np.testing.assert_array_equal(k1, k2)
    assert not np.array_equal(k1, before["layers"][0]["kernel"][...])
    assert type(eager) is type(state)
    np.testing.assert_array_equal(state["layers"][0]["kernel"][...],
                                  before["layers"][0]["kernel"][...])  # input untouched
    assert nnx.merge(graphdef, eager)(jnp.ones((2, 6))).shape == (2, 3)


def test_reinit_inside_nnx_jit():
    model = make()

    @nnx.jit
    def reset(m, key):
        jnnx.reinit(m, jf.defaults(), key)

    reset(model, KEY)
    eager = make()
    jnnx.reinit(eager, jf.defaults(), KEY)
    np.testing.assert_array_equal(model.layers[1].kernel[...], eager.layers[1].kernel[...])


def test_init_builds_abstractly():
    model = jnnx.init(make, jt.defaults(), KEY)
    assert float(abs(model.layers[1].bias[...]).max()) <= 1 / np.sqrt(8)
    np.testing.assert_array_equal(model.bn.var[...], np.ones(8))  # made by Flax
    assert model(jnp.ones((2, 6))).shape == (2, 3)
    again = make()
    jnnx.reinit(again, jt.defaults(), KEY, filter=nnx.Param)
    np.testing.assert_array_equal(model.layers[0].kernel[...], again.layers[0].kernel[...])


def test_errors():
    with pytest.raises(jinit.RuleError, match="needs an nnx.Module"):
        jnnx.reinit(nnx.state(make()), jt.defaults(), KEY)
    with pytest.raises(jinit.RuleError, match="needs an nnx.State"):
        jnnx.reinit_state(make(), jt.defaults(), KEY)
    with pytest.raises(jinit.RuleError, match="no rule matches"):
        jnnx.init(make, jinit.rules((".*kernel", jinit.zeros)), KEY)

    def forgetful(key, state):
        return state

    with pytest.raises(jinit.RuleError, match="without a value"):
        jnnx.init(make, forgetful, KEY)


