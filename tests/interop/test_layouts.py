"""Layer rules as data: apply, invert, shape checks and pairing, with NumPy only (no framework)."""

from __future__ import annotations

import numpy as np
import pytest

from jinit._errors import PathError, RuleError, ShapeError
from jinit.interop import _layers as R
from jinit.interop import _layouts as L
from jinit.interop import _models as M
from jinit.interop import _pairing as P

RNG = np.random.default_rng(0)
E, HEADS, D, IN, H = 8, 2, 4, 5, 3


def rand(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def flax_env(kind):
    """A Flax layer's slots for a target kind (non-square everywhere)."""
    if kind == "dense":
        return {"kernel": rand(4, 6), "bias": rand(6)}
    if kind.startswith("conv"):
        n = int(kind[-2])
        return {"kernel": rand(*(2, 3, 4)[:n], 4, 6), "bias": rand(6)}
    if kind == "embed":
        return {"embedding": rand(10, 6)}
    if kind == "rms_norm":
        return {"scale": rand(6)}
    if kind in ("layer_norm", "group_norm"):
        return {"scale": rand(6), "bias": rand(6)}
    if kind == "batch_norm":
        return {"scale": rand(6), "bias": rand(6), "mean": rand(6), "var": rand(6)}
    if kind == "lstm":
        return ({f"i{g}/kernel": rand(IN, H) for g in "ifgo"} | {f"h{g}/kernel": rand(H, H) for g in "ifgo"}
                | {f"h{g}/bias": rand(H) for g in "ifgo"})  # fmt: skip
    if kind == "gru":
        return ({f"i{g}/kernel": rand(IN, H) for g in "rzn"} | {f"h{g}/kernel": rand(H, H) for g in "rzn"}
                | {f"i{g}/bias": rand(H) for g in "rzn"} | {"hn/bias": rand(H)})  # fmt: skip
    assert kind == "mha"
    return ({f"{p}/kernel": rand(E, HEADS, D) for p in R.MHA_PROJ} | {f"{p}/bias": rand(HEADS, D) for p in R.MHA_PROJ}
            | {"out/kernel": rand(HEADS, D, E), "out/bias": rand(E)})  # fmt: skip


def specs(env):
    return {k: L.spec_of(v) for k, v in env.items()}


@pytest.mark.parametrize("framework", R.FRAMEWORKS)
@pytest.mark.parametrize("kind", sorted(R.KIND_CLASS))
def test_every_rule_inverts_bit_exactly(kind, framework):
    env = flax_env(kind)
    assert R.flax_class(specs(env)) == R.KIND_CLASS[kind] or kind in ("lstm", "gru", "mha")
    rule = R.rule(kind, framework)
    out = L.apply(rule, env)
    assert L.apply(rule, specs(env)) == specs(out)  # the shape-only pass predicts the result
    back = L.invert(rule, out, specs(env))
    assert set(back) == set(env)
    for k in env:
        np.testing.assert_array_equal(back[k], env[k])


def test_layouts_match_the_reference_tables():
    out = L.apply(R.rule("conv3d", "torch"), {"kernel": rand(2, 3, 4, 5, 6)})
    assert out["weight"].shape == (6, 5, 2, 3, 4)  # (O, I, kd, kh, kw): no reversed spatial axes
    k = rand(2, 3, 4, 6)
    w = L.apply(R.rule("conv_transpose2d", "torch"), {"kernel": k})["weight"]
    np.testing.assert_array_equal(w, np.flip(k.transpose(2, 3, 0, 1), (2, 3)))
    w = L.apply(R.rule("conv_transpose2d", "torch", {"transpose_kernel": True}), {"kernel": k})["weight"]
    np.testing.assert_array_equal(w, k.transpose(3, 2, 0, 1))
    env = flax_env("mha")
    t = L.apply(R.rule("mha", "torch"), env)
    np.testing.assert_array_equal(t["in_proj_weight"][E:2 * E], env["key/kernel"].reshape(E, E).T)
    np.testing.assert_array_equal(t["out_proj.weight"], env["out/kernel"].reshape(E, E).T)
    env = flax_env("lstm")
    t = L.apply(R.rule("lstm", "torch"), env)
    np.testing.assert_array_equal(t["weight_ih_l0"][2 * H:3 * H], env["ig/kernel"].T)  # gate g third
    np.testing.assert_array_equal(t["bias_ih_l0"], 0)
    env = flax_env("gru")
    k = L.apply(R.rule("gru", "keras"), env)
    np.testing.assert_array_equal(k["kernel"][:, :H], env["iz/kernel"])  # Keras order z, r, h
    np.testing.assert_array_equal(k["bias"][1], np.concatenate([np.zeros(2 * H), env["hn/bias"]]))
    t = L.apply(R.rule("gru", "torch"), env)
    np.testing.assert_array_equal(t["bias_hh_l0"][2 * H:], env["hn/bias"])  # torch n-gate bias in b_hh


def test_inverse_sums_split_biases():
    env = flax_env("lstm")
    t = L.apply(R.rule("lstm", "torch"), env)
    t["bias_ih_l0"] = np.ones_like(t["bias_ih_l0"])  # a torch-trained input bias
    back = L.invert(R.rule("lstm", "torch"), t, specs(env))
    np.testing.assert_allclose(back["hf/bias"], env["hf/bias"] + 1)


def test_wrong_layout_with_same_element_count_fails():
    """A (4, 6) kernel must not "fit" a (4, 6) torch weight (which means in=6, out=4)."""
    env = {"kernel": rand(4, 6), "bias": rand(6)}
    got = L.apply(R.rule("dense", "torch"), specs(env))
    with pytest.raises(ShapeError, match=r"'weight': shape \(6, 4\) after conversion, target has \(4, 6\)"):
        L.check_fits(got, {"weight": L.Spec((4, 6)), "bias": L.Spec((6,))})
    with pytest.raises(ShapeError, match=r"shape \(6, 4\) after conversion, target has \(3, 8\)"):
        L.check_fits(got, {"weight": L.Spec((3, 8)), "bias": L.Spec((6,))})
    # the Keras (identity) rule applied to a torch Linear is caught the same way
    with pytest.raises(ShapeError, match="'kernel': produced by the rule but absent"):
        L.check_fits(L.apply(R.rule("dense", "keras"), specs(env)), {"weight": L.Spec((6, 4)), "bias": L.Spec((6,))})


def test_reshape_op_inverts():
    rule = (L.Reshape("bias", (1, -1)),)
    out = L.apply(rule, {"bias": rand(5)})
    assert out["bias"].shape == (1, 5)
    np.testing.assert_array_equal(L.invert(rule, out, {"bias": L.Spec((5,))})["bias"], out["bias"][0])
    with pytest.raises(ShapeError, match=r"reshape\(3, -1\): 'bias' has shape \(5,\)"):
        L.apply((L.Reshape("bias", (3, -1)),), {"bias": L.Spec((5,))})


def test_check_fits_reports_all_problems():
    with pytest.raises(ShapeError, match=r"'a': expected by the target.*'b': dtype float32, target has bfloat16"):
        L.check_fits({"b": L.Spec((2,))}, {"a": L.Spec((1,)), "b": L.Spec((2,), "bfloat16")})


def test_op_errors():
    with pytest.raises(ShapeError, match="has rank 3, expected 2"):
        L.apply((L.Permute("k", (1, 0)),), {"k": rand(2, 3, 4)})
    with pytest.raises(ShapeError, match="out of range"):
        L.apply((L.Flip("k", (3,)),), {"k": rand(2, 3)})
    with pytest.raises(ShapeError, match="has rank 2"):
        L.apply((L.Merge("k", 1, 3),), {"k": rand(2, 3)})
    with pytest.raises(ShapeError, match="needs slots \\['b'\\]"):
        L.apply((L.Concat("c", ("a", "b")),), {"a": rand(2)})
    with pytest.raises(ShapeError, match="cannot concatenate"):
        L.apply((L.Concat("c", ("a", "b"), axis=0),), {"a": L.Spec((2, 3)), "b": L.Spec((2, 4))})
    with pytest.raises(ShapeError, match="cannot stack"):
        L.apply((L.Stack("c", ("a", "b")),), {"a": L.Spec((2,)), "b": L.Spec((3,))})
    with pytest.raises(ShapeError, match="cannot reshape"):
        L._SPEC_OPS.reshape(L.Spec((2, 3)), (4,))
    with pytest.raises(ShapeError, match="cannot add"):
        L._SPEC_OPS.add(L.Spec((2,)), L.Spec((3,)))
    with pytest.raises(ShapeError, match="'weight': shape"):
        L.invert(R.rule("dense", "torch"), {"weight": rand(4, 6), "bias": rand(6)}, {"kernel": L.Spec((4, 6)), "bias": L.Spec((6,))})
    with pytest.raises(RuleError, match="no array namespace"):
        L.ops_for([1, 2])
    with pytest.raises(RuleError, match="no conversion rule for layer kind 'swish_norm'"):
        R.rule("swish_norm", "torch")
    with pytest.raises(RuleError, match="unknown framework 'jax'"):
        R.rule("dense", "jax")


def test_optional_slots_and_lineage():
    rule = R.rule("dense", "torch")
    out = L.apply(rule, {"kernel": rand(4, 6)})  # use_bias=False: the bias ops are skipped
    assert set(out) == {"weight"}
    lin = L.lineage(R.rule("mha", "torch"), specs(flax_env("mha")))
    srcs, transform, copies = lin["in_proj_weight"]
    assert srcs == ("query/kernel", "key/kernel", "value/kernel") and copies and "concat" in transform
    assert lin["out_proj.weight"][2] is False  # merge + transpose: a view in torch
    assert R.describe_rules()[0][0] == "batch_norm"


def test_flax_classes_and_conventions():
    assert R.flax_class({"kernel": L.Spec((3, 4))}) == "kernel2"
    assert R.flax_class({"embedding": L.Spec((3, 4))}) == "embed"
    assert R.flax_class({"scale": L.Spec((4,))}) == "norm"
    assert R.flax_class({"w": L.Spec((4,))}) is None
    assert R.to_framework("torch", "momentum", 0.99) == pytest.approx(0.01)
    assert R.hparams_for("batch_norm", {"epsilon": 1e-3}) == {"epsilon": 1e-3, "momentum": 0.99}


# --- pairing (framework-free: targets described by specs) ----------------------------------------


def target(name, kind, **shapes):
    return M.TargetLayer(name, kind, {k: L.Spec(v) for k, v in shapes.items()}, {}, None)


def test_read_flax_orders_layers_and_merges_collections():
    params = {f"Dense_{i}": {"kernel": rand(2, 2), "bias": rand(2)} for i in (0, 1, 10, 2)}
    params = dict(sorted(params.items()))  # as after jax.tree.map: Dense_10 before Dense_2
    params["BatchNorm_0"] = {"scale": rand(2), "bias": rand(2)}
    variables = {"params": dict(sorted(params.items())), "batch_stats": {"BatchNorm_0": {"mean": rand(2), "var": rand(2)}}}
    src = M.read_flax(variables)
    assert [la.path for la in src.layers] == ["BatchNorm_0", "Dense_0", "Dense_1", "Dense_2", "Dense_10"]
    assert src.layers[0].cls == "batch_norm" and src.layers[0].source("var") == "batch_stats/BatchNorm_0/var"
    lstm = M.read_flax({"params": {"cell": {f"{s}{g}": {"kernel": rand(2, 2)} for s in "ih" for g in "ifgo"}}})
    assert lstm.layers[0].cls == "lstm"
    with pytest.raises(PathError, match="hparams: no Flax layer 'nope'"):
        M.read_flax(variables, {"nope": {"epsilon": 1.0}})
    with pytest.raises(RuleError, match="expected a Flax variables dict"):
        M.read_flax([1])


def test_plan_pairs_by_class_and_reports_together():
    variables = {"params": {"Dense_0": {"kernel": rand(4, 6), "bias": rand(6)},
                            "LayerNorm_0": {"scale": rand(6), "bias": rand(6)},
                            "Dense_1": {"kernel": rand(6, 3), "bias": rand(3)},
                            "Odd_0": {"w": rand(2)}}}  # fmt: skip
    targets = [target("fc1", "dense", weight=(6, 4), bias=(6,)),
               target("extra", "dense", weight=(9, 9), bias=(9,)),
               target("fc2", "dense", weight=(3, 6), bias=(3,)),
               target("ln", "layer_norm", weight=(6,), bias=(6,))]  # fmt: skip
    targets[3].hparams = {"epsilon": 1e-5}
    p = P.plan(M.read_flax(variables), targets, "torch", None)
    assert [(q.flax.path, q.target.name) for q in p.pairs] == [("Dense_0", "fc1"), ("Dense_1", "fc2"), ("LayerNorm_0", "ln")]
    assert p.missing == ["extra (dense): weight[9, 9], bias[9]"]
    assert p.unexpected[0].startswith("Odd_0 (no rule for slots ['w'])")
    assert any("epsilon of the Flax layer is unknown (assumed: Flax's default, not read from the model: 1e-06) "
               "and the target has 1e-05" in m for m in p.mismatched)
    p = P.plan(M.read_flax(variables, {"LayerNorm_0": {"epsilon": 1e-5}}), targets, "torch", {"Dense_0": "extra"})
    assert any(m.startswith("Dense_0 -> extra (dense): 'bias': shape (6,)") for m in p.mismatched)
    assert not any("epsilon" in m for m in p.mismatched)
    with pytest.raises(PathError, match="no target layer 'zz'"):
        P.plan(M.read_flax(variables), targets, "torch", {"Dense_0": "zz"})
    kind_clash = M.evaluate(M.read_flax(variables).layers[0], targets[3], "torch", None)
    assert "cannot fill a layer_norm layer" in kind_clash.problems[0]


def test_report_text():
    rep = M.LoadReport("torch", "load", "copy", (M.ParamReport(("params/a/kernel",), "a.weight", "transpose", False, "copied"),),
                       missing=("x (dense): weight[2, 2]",))  # fmt: skip
    text = str(rep)
    assert "a.weight" in text and "missing (1):" in text and not rep.ok and rep.zero_copy == 0
    with pytest.raises(RuleError, match="mode must be one of"):
        M.load(None, None, {}, mode="borrow")
