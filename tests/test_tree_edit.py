"""jinit.set / jinit.update: one-line functional edits, validation, errors, no mutation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit
from jinit import select


def params():
    return {"Dense_0": {"kernel": jnp.zeros((4, 8)), "bias": jnp.zeros(8)},
            "Dense_1": {"kernel": jnp.zeros((8, 1)), "bias": jnp.zeros(1)},
            "step": jnp.zeros((), jnp.int32)}


def test_textbook_one_liners():
    p = params()
    p2 = jinit.update(p, "Dense_0/kernel", lambda w: w + 1)  # "add 1 to every weight"
    p3 = jinit.set(p2, "Dense_0/kernel", 42.0, at=(0, 0))  # "set [0, 0] to 42"
    k = np.asarray(p3["Dense_0"]["kernel"])
    assert k[0, 0] == 42 and k.sum() == 42 + 31
    assert p3["Dense_1"] is not p["Dense_1"] and p3["Dense_1"]["kernel"] is p["Dense_1"]["kernel"]
    assert float(p["Dense_0"]["kernel"].sum()) == 0.0  # input never modified
    same = jinit.update(p2, "Dense_0/kernel", lambda w: w.at[0, 0].set(42))
    np.testing.assert_array_equal(same["Dense_0"]["kernel"], k)


def test_set_fills_broadcasts_and_updates_many_leaves():
    p = jinit.set(params(), r".*/bias", 0.5)  # a regex: every bias
    assert float(p["Dense_0"]["bias"].sum()) == 4.0 and float(p["Dense_1"]["bias"][0]) == 0.5
    p = jinit.set(p, "Dense_0/kernel", jnp.arange(8.0))  # broadcast over rows
    assert p["Dense_0"]["kernel"].shape == (4, 8) and float(p["Dense_0"]["kernel"][3, 7]) == 7
    p = jinit.update(p, select.ndim(2), lambda w: w * 2)
    assert float(p["Dense_0"]["kernel"][3, 7]) == 14
    p = jinit.update(p, "Dense_0/kernel", lambda row: row - 14, at=3)
    assert float(p["Dense_0"]["kernel"][3, 7]) == 0 and float(p["Dense_0"]["kernel"][2, 7]) == 14
    p = jinit.set(p, "step", 3)
    assert p["step"].dtype == jnp.int32 and int(p["step"]) == 3


def test_containers_are_kept():
    from flax import nnx
    from flax.core import FrozenDict

    fd = FrozenDict(params())
    out = jinit.set(fd, "Dense_1/bias", 1.0)
    assert type(out) is FrozenDict and float(out["Dense_1"]["bias"][0]) == 1.0
    state = nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
    out = jinit.update(state, "kernel", lambda w: w * 0)
    assert type(out) is type(state) and float(jnp.abs(out["kernel"].value).sum()) == 0.0
    assert float(jnp.abs(state["kernel"].value).sum()) > 0.0


def test_flags_allow_shape_and_dtype_changes():
    p = jinit.set(params(), "Dense_1/bias", jnp.ones(3), allow_reshape=True)
    assert p["Dense_1"]["bias"].shape == (3,)
    p = jinit.update(p, "Dense_0/bias", lambda b: b.astype(jnp.bfloat16), allow_cast=True)
    assert p["Dense_0"]["bias"].dtype == jnp.bfloat16
    p = jinit.set(p, "Dense_0/kernel", jnp.ones(8, jnp.bfloat16), at=1, allow_cast=True)
    assert p["Dense_0"]["kernel"].dtype == jnp.float32  # cast into the leaf


def test_works_under_jit():
    f = jax.jit(lambda p: jinit.set(jinit.update(p, "Dense_0/kernel", lambda w: w + 1),
                                    "Dense_0/kernel", 42.0, at=(0, 0)))
    assert float(f(params())["Dense_0"]["kernel"].sum()) == 42 + 31


# --- errors -----------------------------------------------------------------------------------


def test_unknown_path_suggests_close_matches():
    with pytest.raises(jinit.PathError, match=r"jinit.set: no leaf at path 'Dense_0/kernal'\. "
                       r"Did you mean 'Dense_0/kernel'"):
        jinit.set(params(), "Dense_0/kernal", 1.0)
    with pytest.raises(KeyError):  # PathError is a KeyError
        jinit.update(params(), "Dense_9/bias", lambda b: b)


def test_selector_selecting_nothing():
    with pytest.raises(jinit.PathError, match=r"jinit.update: NDim\(ndims=\(3,\)\) selects no "
                                              r"leaf\. Paths of the tree: 'Dense_0/bias'"):
        jinit.update(params(), select.ndim(3), lambda w: w)


def test_abstract_leaf_cannot_be_edited():
    tree = {"w": jax.ShapeDtypeStruct((2,), jnp.float32)}
    with pytest.raises(jinit.PathError, match=r"leaf 'w' is abstract .* initialize the tree"):
        jinit.set(tree, "w", 0.0)


@pytest.mark.parametrize("edit, error, match", [
    (lambda p: jinit.set(p, "Dense_0/bias", jnp.ones(3)), jinit.ShapeError,
     r"new value for leaf 'Dense_0/bias' has shape \(3,\), which does not fit the leaf of shape "
     r"\(8,\)\. Pass allow_reshape=True"),
    (lambda p: jinit.update(p, "Dense_0/kernel", lambda w: w.sum()), jinit.ShapeError,
     r"has shape \(\), which does not fit the leaf of shape \(4, 8\)"),
    (lambda p: jinit.set(p, "Dense_0/kernel", jnp.ones(3), at=0), jinit.ShapeError,
     r"does not fit the indexed part of shape \(8,\)"),
    (lambda p: jinit.set(p, "Dense_0/kernel", 1.0, at=(9, 0)), jinit.ShapeError,
     r"index at=\(9, 0\) does not fit leaf 'Dense_0/kernel' of shape \(4, 8\)"),
    (lambda p: jinit.set(p, "Dense_0/bias", jnp.ones(8, jnp.bfloat16)), jinit.DTypeError,
     r"has dtype bfloat16, but the leaf is float32\. Cast it .* or pass allow_cast=True"),
    (lambda p: jinit.set(p, "step", 2.5), jinit.DTypeError,
     r"cannot write a float32 scalar into leaf 'step' of dtype int32"),
    (lambda p: jinit.update(p, "Dense_0/bias", 3.0), jinit.InitializerArgumentError,
     r"jinit.update needs a function old -> new; got 3.0"),
    (lambda p: jinit.update(p, "Dense_0/bias", lambda b: b @ b.T @ jnp.ones(3)),
     jinit.LeafInitError, r"the function failed on leaf 'Dense_0/bias' \(shape=\(8,\), "
                          r"dtype=float32\)"),
])
def test_bad_edits(edit, error, match):
    p = params()
    before = jax.tree.leaves(p)
    with pytest.raises(error, match=match):
        edit(p)
    assert all(a is b for a, b in zip(jax.tree.leaves(p), before, strict=True))  # untouched on failure
