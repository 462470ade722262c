"""Per-leaf keys (DESIGN decision 5): stability, independence, eager == jit == vmap."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit

KEY = jax.random.key(42)
S = jax.ShapeDtypeStruct
N = 256  # leaves of (N, N): 65,536 samples each


def spec():
    return {"enc": {"a": S((N, N), jnp.float32), "b": S((N, N), jnp.float32)},
            "head": {"kernel": S((N, 4), jnp.float32), "bias": S((4,), jnp.float32)}}


INIT = jinit.rules((".*bias", jinit.zeros), default=jinit.normal(1.0))


def assert_same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_adding_removing_and_reordering_leaves_changes_no_other_leaf():
    base = INIT(KEY, spec())
    bigger = spec()
    bigger["enc"]["c"] = S((3, 3), jnp.float32)
    bigger["new"] = {"w": S((2, 2), jnp.float32)}
    smaller = spec()
    del smaller["enc"]["b"]
    reordered = {"head": dict(reversed(list(spec()["head"].items()))), "enc": spec()["enc"]}
    for tree in (bigger, smaller, reordered):
        out = INIT(KEY, tree)
        for path in jinit.paths(out):
            if path in jinit.paths(base):
                a = jinit._paths.flatten(out)
                b = jinit._paths.flatten(base)
                assert_same(a.leaves[a.paths.index(path)], b.leaves[b.paths.index(path)])


def test_adding_or_reordering_rules_changes_only_the_leaves_they_choose_for():
    base = INIT(KEY, spec())
    more = jinit.rules(("head/kernel", jinit.normal(2.0)), (".*bias", jinit.zeros),
                       default=jinit.normal(1.0))(KEY, spec())
    assert_same(more["enc"]["a"], base["enc"]["a"])
    assert_same(more["head"]["kernel"], 2.0 * base["head"]["kernel"])  # same key, scaled
    swapped = jinit.rules(("enc/.*", jinit.normal(1.0)), (".*bias", jinit.zeros),
                          default=jinit.normal(1.0))(KEY, spec())
    for a, b in zip(jax.tree.leaves(swapped), jax.tree.leaves(base), strict=True):
        assert_same(a, b)


def test_different_leaves_are_independent():
    out = INIT(KEY, spec())
    a = np.asarray(out["enc"]["a"], np.float64).ravel()
    b = np.asarray(out["enc"]["b"], np.float64).ravel()
    # the sample correlation of independent normals has sd 1/sqrt(n); 6 sd never flakes
    assert abs(np.corrcoef(a, b)[0, 1]) < 6 / math.sqrt(a.size)
    assert abs(a.std() - 1) < 6 * math.sqrt(0.5 / a.size)


def test_same_key_identical_across_eager_jit_and_vmap():
    eager = INIT(KEY, spec())
    again = INIT(KEY, spec())
    jitted = jax.jit(lambda k: INIT(k, spec()))(KEY)
    keys = jnp.stack([jax.random.fold_in(KEY, 1), KEY, jax.random.fold_in(KEY, 2)])
    batched = jax.vmap(lambda k: INIT(k, spec()))(keys)
    for e, g, j, v in zip(*map(jax.tree.leaves, (eager, again, jitted, batched)), strict=True):
        assert_same(e, g)
        assert_same(e, j)
        assert_same(e, v[1])


def test_vmap_ensembles_are_independent_models():
    keys = jax.random.split(KEY, 4)
    ens = jax.vmap(lambda k: INIT(k, spec()))(keys)
    w = np.asarray(ens["enc"]["a"], np.float64).reshape(4, -1)
    corr = np.corrcoef(w)[np.triu_indices(4, 1)]
    assert np.all(np.abs(corr) < 6 / math.sqrt(w.shape[1]))
    assert_same(ens["enc"]["a"][2], INIT(keys[2], spec())["enc"]["a"])


def test_eval_shape_of_a_tree_init():
    out = jax.eval_shape(lambda k: INIT(k, spec()), KEY)
    assert jax.tree.map(lambda s: (s.shape, s.dtype), out) == jax.tree.map(
        lambda s: (s.shape, s.dtype), spec())


@pytest.mark.parametrize("raw", [False, True], ids=["typed", "raw"])
def test_leaf_key_depends_on_the_path_only(raw):
    key = jax.random.PRNGKey(0) if raw else jax.random.key(0)
    k1 = jinit.leaf_key(key, "enc/a")
    assert jax.random.key_data(k1).tolist() == jax.random.key_data(
        jinit.leaf_key(key, "enc/a")).tolist()
    assert jax.random.key_data(k1).tolist() != jax.random.key_data(
        jinit.leaf_key(key, "enc/b")).tolist()
    # the typed and raw forms of the same seed give the same leaf values
    init = jinit.rules(default=jinit.normal(1.0))
    out = init(key, {"w": S((2, 3), jnp.float32)})["w"]
    assert_same(out, init(jax.random.key(0), {"w": S((2, 3), jnp.float32)})["w"])


def test_linen_params_and_nnx_state_with_the_same_paths_get_the_same_values():
    from flax import linen as nn
    from flax import nnx

    init = jinit.rules(("kernel", jinit.lecun_normal()), ("bias", jinit.zeros))
    linen = init(KEY, nn.Dense(3).init(KEY, jnp.ones((1, 4)))["params"])
    state = init(KEY, nnx.state(nnx.Linear(4, 3, rngs=nnx.Rngs(0))))
    assert_same(linen["kernel"], state["kernel"].value)
