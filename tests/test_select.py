"""jinit.select: each selector, composition, coercion, and optax-compatible labels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jinit
from jinit import select

W = jnp.zeros((4, 8))
B = jnp.zeros(8)
ABSTRACT = jax.ShapeDtypeStruct((3, 3, 4, 8), jnp.bfloat16)


def test_path_is_a_precompiled_fullmatch():
    s = select.path(r".*/bias")
    assert s("Dense_0/bias", B) and not s("Dense_0/bias_scale", B)
    assert not select.path("bias")("Dense_0/bias", B)  # fullmatch, not search
    assert s._regex.pattern == r".*/bias"
    assert repr(s) == "PathRegex(pattern='.*/bias')"
    assert s == select.path(r".*/bias") and hash(s) == hash(select.path(r".*/bias"))


def test_leaf_local_selectors():
    assert select.name("bias", "scale")("ln/scale", B)
    assert not select.name("bias")("bias/kernel", W)
    assert select.ndim(1)("b", B) and not select.ndim(1)("w", W)
    assert select.ndim(4)("conv", ABSTRACT)  # abstract leaves work
    assert select.shape((None, 8))("w", W) and not select.shape((4,))("w", W)
    assert select.shape(lambda s: s[-1] == 8)("conv", ABSTRACT)
    assert select.dtype(jnp.floating)("conv", ABSTRACT)  # bfloat16 is a float
    assert select.dtype(jnp.bfloat16)("conv", ABSTRACT)
    assert not select.dtype(jnp.float32, jnp.integer)("conv", ABSTRACT)
    assert select.where(lambda p, x: x.size == 8)("b", B)


def test_composition_operators_and_reprs():
    s = (select.path(".*kernel") & ~select.ndim(1)) | select.name("embedding")
    assert s("mlp/kernel", W) and s("embed/embedding", B) and not s("mlp/bias", B)
    assert repr(select.any_of(".*/bias", select.name("scale"))) == (
        "AnyOf(selectors=(PathRegex(pattern='.*/bias'), LeafName(names=('scale',))))")
    # nested same-kind combinators flatten
    assert select.all_of(select.all_of("a", "b"), "c") == select.all_of("a", "b", "c")
    assert select.none_of(".*bias")("w", W) and not select.none_of(".*bias")("x/bias", B)
    # a plain string on the left of | is coerced too
    assert (".*bias" | select.ndim(2))("w", W)


def test_to_selector_coercion():
    assert select.to_selector("a/.*") == select.path("a/.*")
    assert select.to_selector(True)("anything", B)
    assert select.to_selector(("a", "b"))("b", B)
    fn = lambda p, x: p.startswith("enc")  # noqa: E731
    assert select.to_selector(fn)("enc/w", W)
    assert select.to_selector(select.ndim(1)) is not None


@pytest.mark.parametrize("bad, match", [
    (lambda: select.path("(unclosed"), r"invalid path regex '\(unclosed'"),
    (lambda: select.path(3), r"needs a regex string; got 3"),
    (lambda: select.name(), r"select.name needs one or more strings"),
    (lambda: select.ndim(-1), r"select.ndim needs one or more non-negative ints"),
    (lambda: select.shape(3), r"select.shape needs a shape .* got 3"),
    (lambda: select.dtype(), r"select.dtype needs one or more dtypes"),
    (lambda: select.dtype("nope"), r"select.dtype got 'nope', which is not a dtype"),
    (lambda: select.where(3), r"select.where needs a callable"),
    (lambda: select.label({"a": 1}), r"select.label needs the label\(s\) to select"),
    (lambda: select.to_selector(3.5), r"cannot use 3.5 as a selector"),
])
def test_bad_selector_arguments(bad, match):
    with pytest.raises(jinit.RuleError, match=match):
        bad()


def test_label_needs_the_tree():
    with pytest.raises(jinit.RuleError, match=r"needs the whole tree to read its labels"):
        select.label({"a": "x"}, "x")("a", B)


PARAMS = {
    "encoder": {"layer": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}},
    "head": {"kernel": jnp.ones((3, 1)), "bias": jnp.ones(1)},
}


@pytest.mark.parametrize("labels", [
    {"encoder": "frozen", "head": {"kernel": "decay", "bias": "frozen"}},  # a prefix tree
    lambda p: jax.tree_util.tree_map_with_path(  # a label function, as optax accepts
        lambda path, x: "decay" if x.ndim > 1 and path[0].key == "head" else "frozen", p),
], ids=["prefix-tree", "function"])
def test_labels_route_like_optax_partition(labels):
    """optax.partition is the oracle: the leaves it scales by 0 are the ones jinit zeroes."""
    opt = optax.partition({"decay": optax.scale(0.0), "frozen": optax.scale(1.0)}, labels)
    updates, _ = opt.update(PARAMS, opt.init(PARAMS), PARAMS)
    ours = jinit.rules((select.label(labels, "decay"), jinit.zeros))(jax.random.key(0), PARAMS)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(ours), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jinit.paths(PARAMS, select.label(labels, "decay")) == ["head/kernel"]


def test_label_tree_that_does_not_fit():
    bad = {"encoder": "frozen", "tail": "decay"}
    with pytest.raises(jinit.RuleError, match=r"label tree does not fit the params"):
        jinit.rules((select.label(bad, "decay"), jinit.zeros))(jax.random.key(0), PARAMS)


def test_label_function_that_fails():
    def boom(params):
        raise KeyError("no such layer")

    with pytest.raises(jinit.RuleError, match=r"label function .* failed on the tree"):
        jinit.paths(PARAMS, select.label(boom, "x"))


def test_selectors_see_nnx_paths_without_value():
    from flax import nnx

    state = nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
    assert jinit.paths(state) == ["bias", "kernel"]
    assert jinit.paths(state, select.name("kernel")) == ["kernel"]
