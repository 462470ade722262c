"""jinit.rules: matching, containers, abstract leaves, layer-aware rules, plans, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit
from jinit import select

KEY = jax.random.key(0)
S = jax.ShapeDtypeStruct


def spec():
    return {"Dense_0": {"kernel": S((4, 8), jnp.float32), "bias": S((8,), jnp.float32)},
            "Dense_1": {"kernel": S((8, 1), jnp.float32), "bias": S((1,), jnp.float32)}}


def concrete():
    return jax.tree.map(lambda s: jnp.full(s.shape, 7.0, s.dtype), spec())


RULES = ((r".*/bias", jinit.zeros), (r"Dense_0/.*", jinit.he_normal()),
         (r".*", jinit.lecun_normal()))


def reference(key, tree, chooser):
    """The hand-written loop every rule set must equal (optax-style oracle)."""
    def one(path, leaf):
        init = chooser(jinit._paths.path_str(path))
        if init is None:
            return leaf
        return init(jinit.leaf_key(key, jinit._paths.path_str(path)), leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map_with_path(one, tree)


def test_first_match_wins_and_equals_the_manual_loop():
    out = jinit.rules(*RULES)(KEY, spec())

    def chooser(p):
        return (jinit.zeros if p.endswith("bias") else jinit.he_normal()
                if p.startswith("Dense_0") else jinit.lecun_normal())

    want = jax.jit(lambda k: reference(k, spec(), chooser))(KEY)
    assert jax.tree.structure(out) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.abs(out["Dense_1"]["bias"]).sum()) == 0.0


@pytest.mark.parametrize("make", [
    lambda t: t,
    lambda t: __import__("flax.core", fromlist=["FrozenDict"]).FrozenDict(t),
    lambda t: [t["Dense_0"], (t["Dense_1"],)],
], ids=["dict", "FrozenDict", "list-tuple"])
def test_container_types_are_kept(make):
    tree = make(concrete())
    out = jinit.rules((".*kernel", jinit.ones), strict=False)(KEY, tree)
    assert type(out) is type(tree)
    assert jax.tree.structure(out) == jax.tree.structure(tree)


def test_nnx_state_and_equinox_module():
    import equinox as eqx
    from flax import nnx

    state = nnx.state(nnx.Linear(4, 8, rngs=nnx.Rngs(0)))
    out = jinit.rules(("bias", jinit.ones), ("kernel", jinit.zeros))(KEY, state)
    assert type(out) is type(state) and float(out["bias"].value.sum()) == 8.0
    assert float(state["bias"].value.sum()) == 0.0  # input untouched

    mlp = eqx.nn.MLP(4, 1, 8, 1, key=jax.random.key(1))
    out = jinit.rules((".*/weight", jinit.orthogonal()), (".*/bias", jinit.zeros))(KEY, mlp)
    assert type(out) is type(mlp) and out.activation is mlp.activation
    w = out.layers[0].weight
    np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)
    assert out(jnp.ones(4)).shape == (1,)


def test_eval_shape_spec_of_a_flax_model_is_initialized_without_defaults():
    from flax import linen as nn

    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(1)])
    abstract = jax.eval_shape(model.init, KEY, jnp.ones((2, 4)))
    init = jinit.rules((".*bias", jinit.zeros), (".*kernel", jinit.normal(0.01)))
    params = init(KEY, abstract)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(params))
    assert model.apply(params, jnp.ones((2, 4))).shape == (2, 1)


def test_unmatched_and_kept_leaves_are_the_same_objects_and_input_is_untouched():
    tree = concrete()
    before = jax.tree.leaves(tree)
    out = jinit.rules(("Dense_0/kernel", jinit.zeros), ("Dense_1/.*", jinit.keep))(KEY, tree)
    assert out["Dense_0"]["bias"] is tree["Dense_0"]["bias"]
    assert out["Dense_1"]["kernel"] is tree["Dense_1"]["kernel"]
    assert all(a is b for a, b in zip(jax.tree.leaves(tree), before, strict=True))
    assert float(tree["Dense_0"]["kernel"][0, 0]) == 7.0
    assert out is not tree and out["Dense_0"] is not tree["Dense_0"]


def test_default_covers_the_rest_and_keep_default():
    out = jinit.rules((".*bias", jinit.ones), default=jinit.zeros)(KEY, spec())
    assert float(out["Dense_1"]["kernel"].sum()) == 0.0 and float(out["Dense_0"]["bias"][0]) == 1
    tree = concrete()
    out = jinit.rules((".*bias", jinit.ones), default=jinit.keep)(KEY, tree)
    assert out["Dense_0"]["kernel"] is tree["Dense_0"]["kernel"]


def test_non_array_leaves_are_never_selected():
    tree = {"w": jnp.ones(2), "act": jax.nn.relu, "n": None}
    out = jinit.rules((".*", jinit.zeros))(KEY, tree)
    assert out["act"] is jax.nn.relu and out["n"] is None and float(out["w"].sum()) == 0


def test_traceable_with_concrete_tree_argument():
    tree = concrete()
    init = jinit.rules(("Dense_0/kernel", jinit.normal(1.0)))
    out = jax.jit(init)(KEY, tree)
    np.testing.assert_array_equal(out["Dense_0"]["kernel"], init(KEY, tree)["Dense_0"]["kernel"])
    np.testing.assert_array_equal(out["Dense_1"]["kernel"], tree["Dense_1"]["kernel"])


def test_mixed_dtypes_and_bfloat16_leaves():
    tree = {"a": S((16, 16), jnp.bfloat16), "b": S((16,), jnp.float16), "s": S((), jnp.int32)}
    out = jinit.rules((select.dtype(jnp.floating), jinit.normal(1.0)),
                      (select.dtype(jnp.integer), jinit.zeros))(KEY, tree)
    assert [x.dtype for x in jax.tree.leaves(out)] == [jnp.bfloat16, jnp.float16, jnp.int32]


# --- layer-aware rules --------------------------------------------------------------------------


def torch_bias(ctx):
    fan_in, _ = jinit.compute_fans(ctx.sibling("kernel").shape)
    bound = 1 / math.sqrt(fan_in)
    return jinit.compat.torch.uniform(-bound, bound)


def test_layer_aware_torch_bias_uses_the_sibling_fan_in():
    fan_in, n = 100, 200_000
    tree = {"fc": {"kernel": S((fan_in, n), jnp.float32), "bias": S((n,), jnp.float32)},
            "small": {"kernel": S((4, 3), jnp.float32), "bias": S((3,), jnp.float32)}}
    init = jinit.rules((".*/bias", jinit.contextual(torch_bias, "torch_bias")),
                       (".*/kernel", jinit.zeros))
    b = np.asarray(init(KEY, tree)["fc"]["bias"], np.float64)
    bound = 1 / math.sqrt(fan_in)
    assert b.min() >= -bound and b.max() <= bound
    # U(-a, a) has variance a^2/3; the sample variance's relative sd is ~sqrt(0.8/n) for a
    # uniform, so 6 sd of slack never flakes with a fixed key and still catches a wrong fan-in.
    assert abs(b.var() / (bound**2 / 3) - 1) < 6 * math.sqrt(0.8 / n)
    plan = init.plan(tree)
    assert plan["fc/bias"].source == "rule 0 ('.*/bias')"
    assert plan["fc/bias"].init == jinit.compat.torch.uniform(-bound, bound)  # per layer
    assert plan["small/bias"].init == jinit.compat.torch.uniform(-0.5, 0.5)
    assert repr(init.rules[0].init) == "contextual(torch_bias)"


def test_layer_context_contents():
    seen = {}

    def record(ctx):
        seen[ctx.path] = ctx
        return jinit.zeros

    jinit.rules((".*bias", jinit.contextual(record)), default=jinit.ones)(KEY, spec())
    ctx = seen["Dense_1/bias"]
    assert (ctx.name, ctx.parent, ctx.shape, ctx.dtype) == ("bias", "Dense_1", (1,), np.float32)
    assert sorted(ctx.siblings) == ["bias", "kernel"]
    assert ctx.get("Dense_0/kernel").shape == (4, 8)
    with pytest.raises(jinit.PathError, match=r"no leaf at path 'Dense_0/kernal'.*Did you mean "
                                              r"'Dense_0/kernel'"):
        ctx.get("Dense_0/kernal")


def test_layer_aware_missing_sibling_is_a_leaf_init_error():
    init = jinit.rules((".*", jinit.contextual(lambda ctx: jinit.normal(ctx.sibling("weight")
                                                                        .shape[0]))))
    with pytest.raises(jinit.LeafInitError, match=r"could not resolve an initializer for leaf "
                       r"'Dense_0/bias' .*no sibling 'weight'; its layer 'Dense_0' holds "
                       r"\['bias', 'kernel'\]") as info:
        init(KEY, spec())
    assert isinstance(info.value.__cause__, jinit.PathError)
    assert info.value.path == "Dense_0/bias"


def test_markers_cannot_be_called_as_initializers():
    with pytest.raises(jinit.RuleError, match=r"jinit.keep is a rule marker"):
        jinit.keep(KEY, (2,))
    with pytest.raises(jinit.RuleError, match=r"is layer-aware: it needs the leaf's layer"):
        jinit.contextual(torch_bias)(KEY, (2,))
    with pytest.raises(jinit.RuleError, match=r"jinit.contextual needs a function"):
        jinit.contextual(3)


# --- composition and plans ---------------------------------------------------------------------


def test_rules_objects_splice_with_their_strictness_and_default():
    preset = jinit.rules((".*conv.*", jinit.ones), (".*bias", jinit.ones), strict=False,
                         default=jinit.zeros)
    init = jinit.rules(("Dense_1/bias", jinit.constant(3.0)), preset)
    out = init(KEY, spec())  # the preset's unused conv rule does not trip strict mode
    assert float(out["Dense_1"]["bias"][0]) == 3.0 and float(out["Dense_0"]["bias"][0]) == 1.0
    assert float(out["Dense_0"]["kernel"].sum()) == 0.0  # the preset's default
    assert [r.required for r in init.rules] == [True, False, False]


def test_plan_reports_every_leaf():
    tree = concrete()
    init = jinit.rules((".*bias", jinit.zeros), ("Dense_1/kernel", jinit.keep))
    plan = init.plan(tree)
    assert list(plan) == ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias", "Dense_1/kernel"]
    assert plan["Dense_0/bias"].init is jinit.zeros and plan["Dense_0/bias"].rule == 0
    assert plan["Dense_1/kernel"].init is None and plan["Dense_1/kernel"].source.endswith("(keep)")
    assert plan["Dense_0/kernel"].source == "no rule" and plan["Dense_0/kernel"].rule is None


def test_partition_preset():
    params = {"enc": jnp.ones((2, 2)), "head": jnp.ones((2, 1))}
    init = jinit.partition({"train": jinit.zeros, "frozen": jinit.keep},
                           {"enc": "frozen", "head": "train"})
    out = init(KEY, params)
    assert out["enc"] is params["enc"] and float(out["head"].sum()) == 0.0
    with pytest.raises(jinit.RuleError, match=r"labels without an initializer"):
        jinit.partition({"train": jinit.zeros}, {"enc": "frozen", "head": "train"})(KEY, params)
    with pytest.raises(jinit.RuleError, match=r"needs a mapping label -> initializer"):
        jinit.partition([("train", jinit.zeros)], {"enc": "train"})


def test_paths_lists_what_selectors_see():
    assert jinit.paths(spec()) == ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias",
                                   "Dense_1/kernel"]
    assert jinit.paths(spec(), select.ndim(1)) == ["Dense_0/bias", "Dense_1/bias"]


def test_summary_table(capsys):
    init = jinit.rules((".*bias", jinit.zeros), (".*kernel", jinit.ones))
    params = init(KEY, spec())
    assert jinit.summary(params, init) is None  # prints once; a REPL shows no second copy
    text = capsys.readouterr().out.strip()
    assert jinit.summary(params, init, return_string=True) == text
    lines = text.splitlines()
    assert lines[0].split() == ["path", "shape", "dtype", "count", "mean", "std", "init",
                                "chosen", "by"]
    assert lines[2].split()[:7] == ["Dense_0/kernel", "(4,", "8)", "float32", "32", "1", "0"]
    assert "jinit.ones" in lines[2] and "rule 1 ('.*kernel')" in lines[2]
    assert lines[-1] == "total: 4 leaves, 49 values, 196 bytes"
    quiet = jinit.summary(spec(), return_string=True, stats=False)
    assert capsys.readouterr().out == "" and "mean" not in quiet
    assert jinit.summary(spec(), return_string=True).splitlines()[1].split()[-2:] == ["-", "-"]
    one = jinit.summary({"b": jnp.zeros((1,), jnp.int8)}, return_string=True)
    assert one.splitlines()[-1] == "total: 1 leaf, 1 value, 1 byte"


# --- errors -----------------------------------------------------------------------------------


def test_strict_rule_matching_nothing():
    with pytest.raises(jinit.RuleError, match=r"rule 1 \('Dense_2/.*', jinit.zeros\) matches "
                       r"no leaf \(strict=True\)\.\nPaths of the tree: 'Dense_0/bias', "):
        jinit.rules((".*", jinit.ones), ("Dense_2/.*", jinit.zeros))(KEY, spec())
    out = jinit.rules(("Dense_2/.*", jinit.zeros), default=jinit.ones, strict=False)(KEY, spec())
    assert float(out["Dense_0"]["bias"][0]) == 1.0


def test_strict_rule_typo_suggests_close_paths():
    with pytest.raises(jinit.RuleError, match=r"(?s)rule 0 \('\.\*/kernal', .*matches no leaf.*"
                                              r"Did you mean 'Dense_0/kernel', 'Dense_1/kernel'\?"):
        jinit.rules((".*/kernal", jinit.zeros), default=jinit.ones)(KEY, spec())


def test_strict_rule_shadowed_by_earlier_rules():
    with pytest.raises(jinit.RuleError, match=r"rule 1 .* matches 2 leaf\(s\), but earlier "
                                              r"rules take all of them"):
        jinit.rules((".*", jinit.ones), (".*bias", jinit.zeros))(KEY, spec())


def test_abstract_leaf_without_rule_or_default():
    with pytest.raises(jinit.RuleError, match=r"no rule matches 2 abstract leaf\(s\) and no "
                       r"default was given: 'Dense_0/bias' \(shape=\(8,\), dtype=float32\)"):
        jinit.rules((".*kernel", jinit.ones))(KEY, spec())


def test_keep_on_an_abstract_leaf():
    with pytest.raises(jinit.RuleError, match=r"rule 0 \('.\*bias'\) keeps leaf 'Dense_0/bias' "
                                              r".* there is no value to keep"):
        jinit.rules((".*bias", jinit.keep), default=jinit.ones)(KEY, spec())


def test_failing_initializer_names_leaf_rule_shape_dtype():
    init = jinit.rules((".*", jinit.glorot_normal()))
    with pytest.raises(jinit.LeafInitError, match=r"VarianceScaling\(.*\) \(chosen by rule 0 "
                       r"\('.\*'\)\) failed on leaf 'Dense_0/bias' \(shape=\(8,\), "
                       r"dtype=float32\): ShapeError: cannot compute fans") as info:
        init(KEY, spec())
    assert info.value.path == "Dense_0/bias"
    assert isinstance(info.value.__cause__, jinit.ShapeError)


def test_initializer_returning_the_wrong_shape():
    def bad(key, shape, dtype=None, out_sharding=None):
        return jnp.zeros((1,), dtype)

    with pytest.raises(jinit.LeafInitError, match=r"returned shape \(1,\) and dtype float32 for "
                       r"leaf 'Dense_0/kernel', which has shape \(4, 8\)"):
        jinit.rules(("Dense_0/kernel", bad))(KEY, concrete())


@pytest.mark.parametrize("build, match", [
    (lambda: jinit.rules(".*"), r"rule 0 must be a \(selector, initializer\) pair"),
    (lambda: jinit.rules((".*", None)), r"the initializer is None; use jinit.keep"),
    (lambda: jinit.rules((".*", 3)), r"rule 0: 3 is not an initializer"),
    (lambda: jinit.rules((".*", jinit.ones), default="x"), r"default: 'x' is not an init"),
    (lambda: jinit.rules((".*", jinit.ones), strict=1), r"strict must be True or False"),
    (lambda: jinit.rules((".*", jinit.ones), mesh="m"), r"mesh must be a jax.sharding.Mesh"),
    (lambda: jinit.rules((".*", jinit.ones), partition=[(".*", jax.P("x"))]),
     r"partition=... needs mesh=..."),
])
def test_malformed_rules(build, match):
    with pytest.raises(jinit.RuleError, match=match):
        build()


def test_partition_rules_are_checked_against_the_mesh():
    mesh = jax.make_mesh((1,), ("model",))
    with pytest.raises(jinit.RuleError, match=r"names mesh axis 'data', but the mesh has axes "
                                              r"\('model',\)"):
        jinit.rules((".*", jinit.ones), mesh=mesh, partition=[(".*", jax.P("data"))])
    with pytest.raises(jinit.RuleError, match=r"partition rule 0 must be a \(selector, "):
        jinit.rules((".*", jinit.ones), mesh=mesh, partition=[".*"])
    with pytest.raises(jinit.RuleError, match=r"is not a PartitionSpec"):
        jinit.rules((".*", jinit.ones), mesh=mesh, partition=[(".*", "model")])
    init = jinit.rules((".*", jinit.ones), mesh=mesh, partition=[(".*bias", jax.P(None, "model"))])
    with pytest.raises(jinit.RuleError, match=r"has 2 entries but leaf 'Dense_0/bias' .* has "
                                              r"only 1 dimensions"):
        init(KEY, spec())


def test_bad_key():
    init = jinit.rules((".*", jinit.ones))
    with pytest.raises(jinit.DTypeError, match=r"needs a PRNG key as its first argument"):
        init(0, spec())
    with pytest.raises(jinit.DTypeError, match=r"for several keys, jax.vmap over them"):
        init(jax.random.split(KEY, 3), spec())
    out = init(jax.random.PRNGKey(0), spec())  # raw uint32[2] keys work
    assert float(out["Dense_0"]["bias"][0]) == 1.0


def test_a_raising_selector_is_a_rule_error():
    def sel(path, leaf):
        raise ValueError("boom")

    with pytest.raises(jinit.RuleError, match=r"the selector of rule .* raised on leaf "
                                              r"'Dense_0/bias'.*boom"):
        jinit.rules((sel, jinit.ones))(KEY, spec())


def test_leaves_sharing_a_path_are_a_rule_error():
    # QA regression: {"a": {"b": x}, "a/b": y} both read "a/b/w": same key, identical values.
    tree = {"a": {"b": {"w": S((4,), jnp.float32)}}, "a/b": {"w": S((4,), jnp.float32)}}
    assert jinit.paths(tree) == ["a/b/w", "a/b/w"]
    with pytest.raises(jinit.RuleError, match="several leaves have the path 'a/b/w'"):
        jinit.rules((".*", jinit.normal()))(KEY, tree)


def test_progress_flag_is_forwarded_and_values_unchanged():
    spec = {"w": jax.ShapeDtypeStruct((64, 32), jnp.float32)}
    init = jinit.rules(("w", jinit.lecun_normal()))
    quiet = init(jax.random.key(0), spec, progress=False)
    shown = init(jax.random.key(0), spec, progress=True)
    np.testing.assert_array_equal(quiet["w"], shown["w"])
