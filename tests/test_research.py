"""Research initializers: LSUV (data-dependent), muP (width scaling) and the residual recipes.

Statistical thresholds: a sample std of N i.i.d. normal values has relative standard error
1/sqrt(2N); every std check allows 6 of them (``_tol(n)``), so a correct implementation fails
with probability ~1e-9 per check, while the scalings tested (factors of 2 or more, or
1/sqrt(8) for GPT-2) are ~100 standard errors away. The exact factors are also checked
without sampling, on the initializer each leaf resolves to (``Rules.plan``).
"""

from __future__ import annotations

import math
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit
from jinit import recipes, select


def _tol(n: int) -> float:
    return 6 / math.sqrt(2 * n)


def _close_std(x, want: float) -> None:
    x = np.asarray(x, np.float64)
    rel = abs(x.std() / want - 1)
    assert rel < _tol(x.size), f"std {x.std():.6g} vs {want:.6g} ({rel:.2%}, N={x.size})"


def S(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _snapshot(tree):
    return jax.tree.map(lambda x: np.array(x, copy=True), tree)


def _same(tree, snap) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), b),
                                            tree, snap)))


# --- LSUV -------------------------------------------------------------------------------------

BATCH = jax.random.normal(jax.random.key(7), (256, 32))
MLP = nn.Sequential([nn.Dense(64), nn.tanh, nn.Dense(64), nn.tanh, nn.Dense(10)])


def _orthogonal_mlp():
    variables = MLP.init(jax.random.key(0), BATCH)
    pre = jinit.rules((r".*/kernel", jinit.orthogonal(0.3)))  # deliberately too small
    return pre(jax.random.key(1), variables)


def _layer_vars(model, variables, x):
    """Each Dense/Conv output variance, read independently of jinit with capture_intermediates."""
    _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    return {name: float(jnp.var(v["__call__"][0])) for name, v in state["intermediates"].items()
            if name != "__call__"}


def test_lsuv_linen_mlp_reaches_unit_variance_and_keeps_other_leaves():
    variables = _orthogonal_mlp()
    snap = _snapshot(variables)
    before = _layer_vars(MLP, variables, BATCH)
    assert all(abs(v - 1) > 0.5 for v in before.values()), before  # there is work to do
    out, report = jinit.lsuv(MLP, variables, BATCH, tol=0.05, return_report=True)
    after = _layer_vars(MLP, out, BATCH)
    assert set(after) == {"layers_0", "layers_2", "layers_4"}
    assert all(abs(v - 1) < 0.05 for v in after.values()), after
    assert [r.path for r in report] == [f"params/layers_{i}/kernel" for i in (0, 2, 4)]
    assert all(r.converged and r.iterations >= 1 for r in report)
    assert report[0].var_before == pytest.approx(before["layers_0"], rel=1e-5)
    for name in ("layers_0", "layers_2", "layers_4"):  # biases: the same objects
        assert out["params"][name]["bias"] is variables["params"][name]["bias"]
    assert _same(variables, snap)  # the input is untouched


def test_lsuv_linen_cnn_selected_layers_only():
    model = nn.Sequential([nn.Conv(8, (3, 3)), nn.relu, nn.Conv(16, (3, 3)), nn.relu,
                           lambda x: x.reshape((x.shape[0], -1)), nn.Dense(10)])
    x = jax.random.normal(jax.random.key(3), (8, 8, 8, 3))
    variables = model.init(jax.random.key(0), x)
    out = jinit.lsuv(model, variables["params"], x, layers=r"layers_[02]/kernel", tol=0.1)
    got = _layer_vars(model, {"params": out}, x)
    assert abs(got["layers_0"] - 1) < 0.1 and abs(got["layers_2"] - 1) < 0.1, got
    assert out["layers_5"]["kernel"] is variables["params"]["layers_5"]["kernel"]
    assert out["layers_0"]["bias"] is variables["params"]["layers_0"]["bias"]


def _pure_mlp(params, x):
    h1 = x @ params["l1"]["w"]
    h2 = jnp.tanh(h1) @ params["l2"]["w"]
    return {"l1/w": h1, "l2/w": h2}


def test_lsuv_generic_outputs_fn_and_report():
    params = {"l1": {"w": 0.01 * jax.random.normal(jax.random.key(0), (32, 48))},
              "l2": {"w": 0.01 * jax.random.normal(jax.random.key(1), (48, 16))}}
    out, report = jinit.lsuv(_pure_mlp, params, BATCH, tol=0.01, return_report=True)
    outs = _pure_mlp(out, BATCH)
    assert abs(float(jnp.var(outs["l1/w"])) - 1) < 0.01
    assert abs(float(jnp.var(outs["l2/w"])) - 1) < 0.01
    assert [r.path for r in report] == ["l1/w", "l2/w"]
    assert report[0].var_before < 1e-2 and all(r.converged for r in report)
    only = jinit.lsuv(_pure_mlp, params, BATCH, layers="l2/w")
    assert only["l1"]["w"] is params["l1"]["w"]
    assert abs(float(jnp.var(_pure_mlp(only, BATCH)["l2/w"])) - 1) < 0.1


def test_lsuv_warns_when_not_converged():
    params = {"w": jax.random.normal(jax.random.key(0), (32, 8))}
    capped = lambda p, x: {"w": 0.5 * jnp.tanh(x @ p["w"])}  # noqa: E731 - var <= 0.25 < 1
    with pytest.warns(RuntimeWarning, match="did not reach"):
        _, report = jinit.lsuv(capped, params, BATCH, max_iter=2, return_report=True)
    assert not report[0].converged and report[0].iterations == 2


class _Two(nn.Module):
    def setup(self):
        self.a = nn.Dense(4)
        self.b = nn.Dense(4)

    def __call__(self, x):
        return self.b(self.a(x))

    def first(self, x):
        return self.a(x)


class _TupleOut(nn.Module):
    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], 4))
        return x @ w, x


@pytest.mark.parametrize("kwargs, error, match", [
    ({"tol": 0.0}, jinit.InitializerArgumentError, "tol must be > 0"),
    ({"target_var": -1.0}, jinit.InitializerArgumentError, "target_var must be > 0"),
    ({"max_iter": 0}, jinit.InitializerArgumentError, "max_iter must be an int >= 1"),
    ({"layers": r".*/kernal"}, jinit.PathError, "selects no kernel"),
    ({"layers": r"batch_stats/.*/mean"}, jinit.PathError, "not in the 'params' collection"),
])
def test_lsuv_linen_argument_errors(kwargs, error, match):
    model = nn.Sequential([nn.Dense(4), nn.BatchNorm(use_running_average=True)])
    variables = model.init(jax.random.key(0), BATCH)
    snap = _snapshot(variables)
    with pytest.raises(error, match=match):
        jinit.lsuv(model, variables, BATCH, **kwargs)
    assert _same(variables, snap)


def test_lsuv_model_errors():
    params = {"l1": {"w": jnp.ones((32, 48))}, "l2": {"w": jnp.ones((48, 16))}}
    with pytest.raises(jinit.InitializerArgumentError, match="must be a flax.linen Module"):
        jinit.lsuv(42, params, BATCH)
    with pytest.raises(jinit.PathError, match="no leaf at path 'l3/w'"):
        jinit.lsuv(lambda p, x: {"l3/w": x}, params, BATCH)
    with pytest.raises(jinit.InitializerArgumentError, match="must return a dict"):
        jinit.lsuv(lambda p, x: x @ p["l1"]["w"], params, BATCH)
    with pytest.raises(jinit.PathError, match="selects no kernel"):
        jinit.lsuv(_pure_mlp, params, BATCH, layers="l9/.*")
    dead = {"l1": {"w": jnp.zeros((32, 48))}, "l2": params["l2"]}
    with pytest.raises(jinit.LeafInitError, match="variance 0.0"):
        jinit.lsuv(_pure_mlp, dead, BATCH)
    two = _Two()
    v = two.init(jax.random.key(0), BATCH)
    with pytest.raises(jinit.PathError, match=r"no output was produced .*params/b/kernel"):
        jinit.lsuv(two, v, BATCH, method="first")
    t = _TupleOut()
    with pytest.raises(jinit.LeafInitError, match="is not an array"):
        jinit.lsuv(t, t.init(jax.random.key(0), BATCH), BATCH)


# --- muP --------------------------------------------------------------------------------------

BASE_WIDTH, SIGMA = 128, 0.02


def _net(width: int) -> dict:
    return {"embed": {"kernel": S(64, width), "bias": S(width)},
            "hidden": {"kernel": S(width, width), "bias": S(width)},
            "readout": {"kernel": S(width, 64), "bias": S(64)}}


@pytest.mark.parametrize("width", [256, 512])
def test_mup_std_scaling_matches_the_formula(width):
    m = width / BASE_WIDTH
    init = jinit.mup(jinit.normal(SIGMA), base=_net(BASE_WIDTH))
    plan = init.plan(_net(width))
    # exact: the resolved initializer's factor is the muP formula
    assert plan["hidden/kernel"].init == jinit.scaled(jinit.normal(SIGMA), m ** -0.5)
    assert plan["readout/kernel"].init == jinit.scaled(jinit.normal(SIGMA), 1 / m)
    assert plan["embed/kernel"].init == jinit.normal(SIGMA)
    assert plan["hidden/bias"].init == jinit.normal(SIGMA)
    # and the values have those stds
    p = init(jax.random.key(0), _net(width))
    _close_std(p["hidden"]["kernel"], SIGMA * m ** -0.5)
    _close_std(p["readout"]["kernel"], SIGMA / m)
    _close_std(p["embed"]["kernel"], SIGMA)


def test_mup_at_base_width_is_the_base_init():
    init = jinit.mup(jinit.normal(SIGMA), base=_net(BASE_WIDTH))
    got = init(jax.random.key(0), _net(BASE_WIDTH))
    want = jinit.rules((".*", jinit.normal(SIGMA)))(jax.random.key(0), _net(BASE_WIDTH))
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, got, want)))


def test_mup_fan_based_init_is_rescaled_from_its_base_fans():
    # He normal at base width: the hidden layer keeps plain He at every width (var 2/fan_in),
    # the readout gets He-at-base-width / m (var ∝ 1/fan_in²).
    width, m = 512, 4.0
    init = jinit.mup(jinit.he_normal(), base=_net(BASE_WIDTH))
    plan = init.plan(_net(width))
    assert plan["hidden/kernel"].init == jinit.he_normal()
    assert plan["readout/kernel"].init.factor == pytest.approx(m ** 0.5 / m)
    assert plan["embed/kernel"].init == jinit.he_normal()  # fan_in = 64 does not grow
    p = jinit.rules((r".*/bias", jinit.zeros), init)(jax.random.key(1), _net(width))
    _close_std(p["hidden"]["kernel"], math.sqrt(2 / width))
    _close_std(p["readout"]["kernel"], math.sqrt(2 / BASE_WIDTH) / m)
    # torch's xavier (compat, flax layout): fan_avg at base shape, then the muP factor
    xavier = jinit.compat.torch.xavier_normal(layout="flax")
    plan = jinit.mup(xavier, base=_net(BASE_WIDTH)).plan(_net(width))
    want = math.sqrt((width + 64) / (BASE_WIDTH + 64)) / m
    assert plan["readout/kernel"].init.factor == pytest.approx(want)
    assert plan["hidden/kernel"].init == xavier


def test_mup_rescales_keras_einsum_axes_inits_from_their_base_fans():
    # A Keras EinsumDense-style init (explicit input/output axes) is a fan-based init too.
    lecun = jinit.compat.keras.lecun_normal(input_axes=[0], output_axes=[1, 2])
    base = {"q": {"kernel": S(32, 4, BASE_WIDTH // 4)}}
    wide = {"q": {"kernel": S(32, 4, 2 * BASE_WIDTH // 4)}}  # fan_out grows: an input weight
    plan = jinit.mup(lecun, base=base).plan(wide)
    assert plan["q/kernel"].init == lecun  # fan_in 32 both: its std is already the base one
    hidden = {"o": {"kernel": S(4, BASE_WIDTH // 4, BASE_WIDTH)}}
    hidden2 = {"o": {"kernel": S(4, BASE_WIDTH // 2, 2 * BASE_WIDTH)}}
    out = jinit.compat.keras.lecun_normal(input_axes=[0, 1], output_axes=[2])
    plan = jinit.mup(out, base=hidden).plan(hidden2)
    # hidden: muP std m_in^-1/2 x (lecun at base / lecun here) = 2^-1/2 x 2^1/2 = 1
    assert getattr(plan["o/kernel"].init, "factor", 1.0) == pytest.approx(1.0)


def test_mup_readout_zero_init_and_multiplier():
    zero = jinit.mup(jinit.normal(SIGMA), base=_net(BASE_WIDTH), readout_zero_init=True)
    p = zero(jax.random.key(0), _net(512))
    assert not np.any(np.asarray(p["readout"]["kernel"]))
    assert not np.any(np.asarray(p["readout"]["bias"]))  # MuReadout zeroes its bias too
    assert np.all(np.asarray(p["hidden"]["bias"]) != 0)
    mult = jinit.mup(jinit.normal(SIGMA), base=_net(BASE_WIDTH), output_multiplier=True)
    assert mult.plan(_net(512))["readout/kernel"].init == jinit.normal(SIGMA)


def test_mup_width_mult_with_selectors_equals_base_shapes():
    by_base = jinit.mup(jinit.normal(SIGMA), base=_net(BASE_WIDTH))
    by_mult = jinit.mup(jinit.normal(SIGMA), width_mult=4, input="embed/.*",
                        output="readout/.*")
    a = by_base(jax.random.key(0), _net(512))
    b = by_mult(jax.random.key(0), _net(512))
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, a, b)))
    c = jax.jit(lambda k: by_mult(k, _net(512)))(jax.random.key(0))  # traceable
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, a, c)))


def test_mup_splices_into_rules():
    init = jinit.rules((r".*/bias", jinit.zeros), jinit.mup(jinit.normal(SIGMA),
                                                             width_mult=2, output="readout/.*"))
    p = init(jax.random.key(0), _net(256))
    assert not np.any(np.asarray(p["hidden"]["bias"]))
    assert init.plan(_net(256))["readout/kernel"].init == jinit.scaled(jinit.normal(SIGMA), 0.5)


def test_mup_errors():
    with pytest.raises(jinit.InitializerArgumentError, match="exactly one of base="):
        jinit.mup(jinit.normal())
    with pytest.raises(jinit.InitializerArgumentError, match="exactly one of base="):
        jinit.mup(jinit.normal(), base=_net(8), width_mult=2)
    with pytest.raises(jinit.InitializerArgumentError, match="width_mult must be > 0"):
        jinit.mup(jinit.normal(), width_mult=0)
    with pytest.raises(jinit.InitializerArgumentError, match="base widths must be positive"):
        jinit.mup(jinit.normal(), base={"w": S(0, 4)})
    with pytest.raises(jinit.InitializerArgumentError, match="init must be an initializer"):
        jinit.mup(0.02, width_mult=2)
    with pytest.raises(jinit.RuleError, match="matches no leaf"):
        jinit.mup(jinit.normal(), width_mult=2, output="head/.*")(jax.random.key(0), _net(8))
    with pytest.raises(jinit.LeafInitError, match="no leaf at path 'extra/kernel'"):
        jinit.mup(jinit.normal(), base=_net(8))(jax.random.key(0),
                                                 {**_net(16), "extra": {"kernel": S(4, 4)}})
    with pytest.raises(jinit.LeafInitError, match="same rank"):
        jinit.mup(jinit.normal(), base={"w": S(4, 4)})(jax.random.key(0), {"w": S(4, 4, 2)})


# --- recipes ----------------------------------------------------------------------------------

D, N_LAYER = 128, 4


class _Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x + nn.MultiHeadDotProductAttention(num_heads=4, name="attn")(nn.LayerNorm()(x))
        h = nn.Dense(4 * D, name="c_fc")(nn.LayerNorm()(x))
        return x + nn.Dense(D, name="c_proj")(nn.gelu(h))


class _GPT(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(512, D, name="wte")(tokens)
        for i in range(N_LAYER):
            x = _Block(name=f"h_{i}")(x)
        return nn.Dense(512, use_bias=False, name="lm_head")(nn.LayerNorm(name="ln_f")(x))


def test_gpt2_recipe_on_a_flax_transformer():
    tokens = jnp.zeros((1, 8), jnp.int32)
    spec = jax.eval_shape(_GPT().init, jax.random.key(0), tokens)
    p = recipes.gpt2(N_LAYER)(jax.random.key(0), spec)["params"]
    resid = [p[f"h_{i}"][name]["kernel"] for i in range(N_LAYER) for name in ("c_proj",)]
    resid += [p[f"h_{i}"]["attn"]["out"]["kernel"] for i in range(N_LAYER)]
    _close_std(np.concatenate([np.ravel(r) for r in resid]), 0.02 / math.sqrt(2 * N_LAYER))
    others = [p["wte"]["embedding"], p["lm_head"]["kernel"], p["h_0"]["c_fc"]["kernel"],
              p["h_0"]["attn"]["query"]["kernel"]]
    _close_std(np.concatenate([np.ravel(o) for o in others]), 0.02)
    flat = dict(zip(jinit.paths(p), jax.tree.leaves(p), strict=True))
    for path, leaf in flat.items():
        if path.endswith("/bias"):
            assert not np.any(np.asarray(leaf)), path
        if path.endswith("/scale"):
            assert np.all(np.asarray(leaf) == 1), path


def test_gpt2_errors():
    with pytest.raises(jinit.RuleError, match="matches no leaf"):
        recipes.gpt2(2)(jax.random.key(0), {"mlp": {"fc2": {"kernel": S(4, 4)}}})
    with pytest.raises(jinit.InitializerArgumentError, match="n_layer must be an int >= 1"):
        recipes.gpt2(0)


def _resnet_like(n_blocks: int = 8, c: int = 64) -> dict:
    bn = {"scale": S(c), "bias": S(c)}
    block = {"Conv_0": {"kernel": S(3, 3, c, c)}, "BatchNorm_0": bn,
             "Conv_1": {"kernel": S(3, 3, c, c)}, "BatchNorm_1": bn,
             "conv_proj": {"kernel": S(1, 1, c, c)}}
    return {"conv_init": {"kernel": S(3, 3, 3, c)}, "bn_init": bn,
            **{f"ResNetBlock_{i}": block for i in range(n_blocks)},
            "head": {"kernel": S(c, 10), "bias": S(10)}}


def test_zero_gamma_skipinit_and_zero_init():
    tree = jinit.rules((".*", jinit.ones))(jax.random.key(0), _resnet_like(2))
    out = recipes.zero_gamma()(jax.random.key(0), tree)
    assert jinit.paths(out, lambda p, x: not np.any(np.asarray(x))) == [
        "ResNetBlock_0/BatchNorm_1/scale", "ResNetBlock_1/BatchNorm_1/scale"]
    assert out["bn_init"]["scale"] is tree["bn_init"]["scale"]
    gated = {"block": {"alpha": jnp.ones(()), "Dense_0": {"kernel": jnp.ones((2, 2))}}}
    spliced = recipes.skipinit(base=jinit.rules((r".*/kernel", jinit.zeros)))
    out = spliced(jax.random.key(0), gated)
    assert float(out["block"]["alpha"]) == 0 and not np.any(np.asarray(out["block"]["Dense_0"]
                                                                         ["kernel"]))
    assert recipes.rezero is recipes.skipinit
    out = recipes.zero_init("block/alpha", base=jinit.constant(3.0))(jax.random.key(0), gated)
    assert float(out["block"]["Dense_0"]["kernel"][0, 0]) == 3.0


def test_fixup_recipe():
    L = 8
    p = recipes.fixup(num_branches=L)(jax.random.key(0), _resnet_like(L))
    he = math.sqrt(2 / (9 * 64))
    first = np.concatenate([np.ravel(p[f"ResNetBlock_{i}"]["Conv_0"]["kernel"])
                            for i in range(L)])
    _close_std(first, he * L ** (-1 / 2))  # m = 2: L^(-1/(2m-2)) = L^-1/2
    for i in range(L):
        assert not np.any(np.asarray(p[f"ResNetBlock_{i}"]["Conv_1"]["kernel"]))
    shortcut = np.concatenate([np.ravel(p[f"ResNetBlock_{i}"]["conv_proj"]["kernel"])
                               for i in range(L)])
    _close_std(shortcut, math.sqrt(2 / 64))  # outside the branches: plain He
    assert not np.any(np.asarray(p["head"]["kernel"])) and not np.any(np.asarray(p["head"]["bias"]))
    assert np.all(np.asarray(p["bn_init"]["scale"]) == 1)
    plan = recipes.fixup(num_branches=27, m=3).plan(_resnet_like(2))
    assert plan["ResNetBlock_0/Conv_0/kernel"].init.factor == pytest.approx(27 ** -0.25)


def test_recipe_errors():
    with pytest.raises(jinit.InitializerArgumentError, match="m must be an int >= 2"):
        recipes.fixup(8, m=1)
    with pytest.raises(jinit.InitializerArgumentError, match="num_branches must be an int >= 1"):
        recipes.fixup(0)
    with pytest.raises(jinit.RuleError, match="matches no leaf"):
        recipes.fixup(4, classifier="logits/kernel")(jax.random.key(0), _resnet_like(2))
    with pytest.raises(jinit.InitializerArgumentError, match="level must be an int >= 1"):
        recipes.last_per_block(".*", level=0)
    with pytest.raises(jinit.InitializerArgumentError, match="min_count must be an int >= 1"):
        recipes.last_per_block(".*", min_count=True)
    with pytest.raises(jinit.InitializerArgumentError, match="compares leaves across a block"):
        recipes.last_per_block(".*")("a/b", jnp.ones(2))
    sel = recipes.last_per_block(select.name("kernel"), min_count=1)
    assert jinit.paths({"a": {"Conv_2": {"kernel": jnp.ones(1)},
                              "Conv_10": {"kernel": jnp.ones(1)}}}, sel) == ["a/Conv_10/kernel"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recipes.gpt2(1)  # building a recipe computes nothing and warns nothing


def test_lsuv_batchnorm_in_train_mode_with_mutable_batch_stats():
    # QA regression: apply_kwargs={"mutable": ...} collided with lsuv's own mutable=.
    class BNNet(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(32, use_bias=False)(x)))
            return nn.Dense(4, use_bias=False)(x)

    model = BNNet()
    variables = model.init(jax.random.key(0), BATCH)
    out, report = jinit.lsuv(model, variables, BATCH, return_report=True, tol=0.05,
                             apply_kwargs={"train": True, "mutable": ["batch_stats"]})
    assert [r.path for r in report] == ["params/Dense_0/kernel", "params/Dense_1/kernel"]
    assert all(abs(r.var_after - 1) < 0.05 for r in report)
    assert out["batch_stats"]["BatchNorm_0"]["mean"] is variables["batch_stats"]["BatchNorm_0"]["mean"]
