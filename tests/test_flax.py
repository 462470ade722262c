"""jinit.flax.init: linen variables with params from a tree initializer, Flax's init never run."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit
import jinit.flax
from jinit.compat import flax as jf
from jinit.compat import torch as jt

KEY = jax.random.key(0)
X = jnp.ones((4, 6))


class Net(nn.Module):
    """Dense -> BatchNorm -> Dropout -> Dense(boxed kernel): params, batch_stats, dropout rng."""

    kernel_init: object = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x, train: bool = True):
        h = nn.Dense(8, kernel_init=self.kernel_init)(x)
        h = nn.BatchNorm(use_running_average=not train)(h)
        h = nn.Dropout(0.5, deterministic=not train)(h)
        boxed = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
        return nn.Dense(3, kernel_init=boxed)(h)


def _rngs(key=KEY):
    return {"params": key, "dropout": jax.random.key(1)}


def test_params_come_from_the_tree_initializer_and_batch_stats_from_flax():
    variables = jinit.flax.init(Net(), jt.defaults(), _rngs(), X)
    flax_vars = Net().init(_rngs(), X)
    assert jax.tree.structure(variables) == jax.tree.structure(flax_vars)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, flax_vars)
    expected = jt.defaults()(KEY, jax.eval_shape(lambda: Net().init(_rngs(), X))["params"])
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                                     nn.meta.unbox(variables["params"]), nn.meta.unbox(expected)))
    np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["mean"], np.zeros(8))
    np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["var"], np.ones(8))
    assert isinstance(variables["params"]["Dense_1"]["kernel"], nn.Partitioned)  # box kept
    assert Net().apply(variables, X, train=False).shape == (4, 3)


def test_flax_param_initializers_are_never_computed():
    calls = []

    def spy_init(key, shape, dtype=jnp.float32):
        jax.debug.callback(lambda: calls.append(shape))  # runs only if the value is computed
        return jnp.zeros(shape, dtype)

    Net(kernel_init=spy_init).init(_rngs(), X)
    jax.effects_barrier()
    assert calls, "the spy must fire when Flax itself initializes"
    calls.clear()
    jinit.flax.init(Net(kernel_init=spy_init), jt.defaults(), _rngs(), X)
    jax.effects_barrier()
    assert calls == []


def test_jit_gives_the_same_variables():
    eager = jinit.flax.init(Net(), jf.defaults(), _rngs(), X)
    jitted = jax.jit(lambda k, x: jinit.flax.init(Net(), jf.defaults(), _rngs(k), x))(KEY, X)
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), nn.meta.unbox(eager),
                        nn.meta.unbox(jitted))
    assert jax.tree.all(same)


def test_params_only_module_accepts_shape_only_inputs():
    model = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(2)])
    spec_input = jax.ShapeDtypeStruct((1, 5), jnp.float32)
    variables = jinit.flax.init(model, jt.defaults(), KEY, spec_input)
    assert set(variables) == {"params"}
    assert variables["params"]["layers_2"]["kernel"].shape == (16, 2)
    # With non-param collections, shape-only inputs become zeros for the one Flax pass.
    v = jinit.flax.init(Net(), jt.defaults(), _rngs(), jax.ShapeDtypeStruct((4, 6), jnp.float32))
    assert v["batch_stats"]["BatchNorm_0"]["var"].shape == (8,)


def test_method_and_static_kwargs():
    class TwoHeads(nn.Module):
        def setup(self):
            self.a, self.b = nn.Dense(2), nn.Dense(3)

        def __call__(self, x):
            return self.a(x)

        def both(self, x, scale=1.0):
            return self.a(x) * scale, self.b(x)

    v = jinit.flax.init(TwoHeads(), jf.defaults(), KEY, X, method="both", scale=2.0)
    assert set(v["params"]) == {"a", "b"}
    v = jinit.flax.init(TwoHeads(), jf.defaults(), KEY, X, method=TwoHeads.both)
    assert set(v["params"]) == {"a", "b"}


def test_rules_then_defaults():
    init = jinit.rules((".*Dense_1/kernel", jinit.zeros), jt.defaults())
    v = jinit.flax.init(Net(), init, _rngs(), X)
    assert not np.asarray(nn.meta.unbox(v["params"]["Dense_1"]["kernel"])).any()
    assert np.asarray(v["params"]["Dense_0"]["kernel"]).any()


def test_errors():
    with pytest.raises(jinit.RuleError, match="needs a 'params' key"):
        jinit.flax.init(Net(), jt.defaults(), {"dropout": KEY}, X)

    class NoParams(nn.Module):
        @nn.compact
        def __call__(self, x):
            return self.variable("state", "count", jnp.zeros, ()).value + x

    with pytest.raises(jinit.RuleError, match="created no params"):
        jinit.flax.init(NoParams(), jt.defaults(), KEY, X)
    with pytest.raises(jinit.RuleError, match="no rule matches 2 abstract leaf"):
        jinit.flax.init(nn.Dense(3), jinit.rules(), KEY, X)

    def half(key, tree):  # a hand-written tree initializer that forgets a leaf
        return {"kernel": jnp.zeros(tree["kernel"].shape), "bias": tree["bias"]}

    with pytest.raises(jinit.RuleError, match=r"without a value: \['bias'\]"):
        jinit.flax.init(nn.Dense(3), half, KEY, X)


def test_bound_method_with_batch_stats_and_params_prefix_hint():
    # QA regression: module.init accepts method=module.encode; the second (batch_stats) pass
    # called the bound method with the clone as its first input.
    class Enc(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(x)

        @nn.compact
        def encode(self, x, scale=1.0):
            return nn.BatchNorm(use_running_average=False)(nn.Dense(8, name="enc")(x) * scale)

    m = Enc()
    v = jinit.flax.init(m, jt.defaults(), KEY, X, method=m.encode, scale=2.0)
    want = jax.tree.map(jnp.shape, m.init(KEY, X, method=m.encode, scale=2.0))
    assert jax.tree.map(jnp.shape, v) == want
    with pytest.raises(jinit.RuleError, match="without a 'params/' prefix"):
        jinit.flax.init(nn.Dense(3), jinit.rules(("params/.*", jinit.zeros)), KEY, X)
