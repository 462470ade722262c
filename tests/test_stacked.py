"""Stacked layers (nn.scan, nn.vmap, nnx.vmap): per-layer fans and independent slices.

Every preset on a stacked model is compared with the framework's own per-layer init: Flax's
``model.init`` (which initializes a scanned stack layer by layer), real ``torch.nn.Linear`` and
Keras ``Dense`` layers, one per slice. Thresholds come from _stats.py (KS p > 1e-4 on >= 100k
values; std within 6 standard errors). Independence: the correlation of two slices of n values
is ~N(0, 1/n) when they are independent, so |r| < 6/sqrt(n).
"""

from __future__ import annotations

import math
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import check_same_distribution
from conftest import require
from flax import nnx

import jinit
import jinit.flax
from jinit import nnx as jnnx
from jinit.compat import flax as jf
from jinit.compat import keras as jk
from jinit.compat import torch as jt

KEY = jax.random.key(0)
L, D = 8, 128  # 8 layers of Dense(128): 131072 kernel values


# --- the combinator ------------------------------------------------------------------------------


@pytest.mark.parametrize("init", [jinit.lecun_normal(), jinit.orthogonal(), jinit.zeros],
                         ids=["lecun", "orthogonal", "zeros"])
def test_stacked_slices_are_the_initializer_with_the_layer_key(init):
    w = jinit.stacked(init)(KEY, (3, 6, 6))
    for i in range(3):
        np.testing.assert_array_equal(w[i], init(jax.random.fold_in(KEY, i), (6, 6)))
    np.testing.assert_array_equal(jax.jit(lambda k: jinit.stacked(init)(k, (3, 6, 6)))(KEY), w)


def test_stacked_several_axes_index_row_major():
    w = jinit.stacked(jinit.lecun_normal(), axis=(0, 2))(KEY, (2, 8, 3, 8))
    np.testing.assert_array_equal(
        w[1, :, 2], jinit.lecun_normal()(jax.random.fold_in(KEY, 1 * 3 + 2), (8, 8)))


def test_stacked_orthogonal_is_orthogonal_per_layer():
    w = jinit.stacked(jinit.orthogonal())(KEY, (4, 16, 16))
    for s in w:
        np.testing.assert_allclose(s @ s.T, np.eye(16), atol=1e-5)


def test_stacked_argument_errors():
    with pytest.raises(jinit.InitializerArgumentError, match="axis must be an int"):
        jinit.stacked(jinit.normal(), axis="layers")
    with pytest.raises(jinit.InitializerArgumentError, match="init must be an initializer"):
        jinit.stacked(3.0)
    with pytest.raises(jinit.ShapeError, match="layer axis 3 is out of range"):
        jinit.stacked(jinit.normal(), axis=3)(KEY, (2, 2))


# --- models --------------------------------------------------------------------------------------


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        return nn.LayerNorm()(nn.Dense(D)(x)), None


class Scanned(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(D)(x)
        x, _ = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True},
                       length=L, metadata_params={nn.PARTITION_NAME: "layers"})()(x, None)
        return x


class Vmapped(nn.Module):  # the stacked axis is in the middle: kernel (D, 2L, 64)
    @nn.compact
    def __call__(self, x):
        dense = nn.vmap(nn.Dense, variable_axes={"params": 1}, split_rngs={"params": True},
                        in_axes=None, out_axes=0, axis_size=2 * L)
        return dense(64)(x)


X = jnp.ones((2, D))


def _flax_init(model, preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinit.LayerAxisWarning)
        return jinit.flax.init(model, preset, KEY, X)["params"]


def _independent(stack, axis=0):
    a, b = (np.take(np.asarray(stack), i, axis=axis).ravel() for i in (0, 1))
    assert not np.array_equal(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 6 / math.sqrt(a.size)


def _uniform(got, want, bound):
    check_same_distribution(got, want, std=bound / math.sqrt(3), lo=-bound, hi=bound)


def test_layer_axes_found_from_the_module():
    spec = jax.eval_shape(Scanned().init, KEY, X)
    axes = jinit.flax.layer_axes(Scanned(), spec, X)
    assert axes["ScanBlock_0/Dense_0/kernel"] == (0,) and axes["Dense_0/kernel"] == ()
    vspec = jax.eval_shape(Vmapped().init, KEY, X)
    assert jinit.flax.layer_axes(Vmapped(), vspec, X) == {
        "VmapDense_0/bias": (1,), "VmapDense_0/kernel": (1,)}


def test_linen_scan_flax_defaults_match_flax_per_layer():
    ours = _flax_init(Scanned(), jf.defaults())["ScanBlock_0"]
    flax_own = Scanned().init(jax.random.key(1), X)["params"]["ScanBlock_0"]
    std = 1 / math.sqrt(D)
    check_same_distribution(ours["Dense_0"]["kernel"], flax_own["Dense_0"]["kernel"], std=std,
                            lo=-2 * std / 0.8796256, hi=2 * std / 0.8796256, tight=False)
    _independent(ours["Dense_0"]["kernel"])
    np.testing.assert_array_equal(ours["LayerNorm_0"]["scale"], np.ones((L, D)))


def test_linen_vmap_middle_axis_flax_defaults():
    ours = _flax_init(Vmapped(), jf.defaults())["VmapDense_0"]["kernel"]
    flax_own = Vmapped().init(jax.random.key(1), X)["params"]["VmapDense_0"]["kernel"]
    assert ours.shape == (D, 2 * L, 64)
    check_same_distribution(ours, flax_own, std=1 / math.sqrt(D), tight=False)
    _independent(ours, axis=1)


def test_linen_scan_torch_defaults_match_torch_per_layer():
    torch = require("torch")
    torch.manual_seed(0)
    ours = _flax_init(Scanned(), jt.defaults())["ScanBlock_0"]["Dense_0"]
    want = np.stack([torch.nn.Linear(D, D).weight.detach().numpy() for _ in range(L)])
    bound = 1 / math.sqrt(D)
    _uniform(ours["kernel"], want, bound)
    _independent(ours["kernel"])
    bias = np.asarray(ours["bias"])
    assert bias.shape == (L, D) and np.abs(bias).max() <= bound
    assert np.abs(bias).max() > 0.95 * bound  # the per-layer bound, not the stacked one


def test_linen_scan_keras_defaults_match_keras_per_layer():
    keras = require("keras")
    keras.utils.set_random_seed(0)
    ours = _flax_init(Scanned(), jk.defaults())["ScanBlock_0"]["Dense_0"]["kernel"]

    def dense():
        layer = keras.layers.Dense(D)
        layer.build((None, D))
        return np.asarray(layer.kernel.numpy())

    want = np.stack([dense() for _ in range(L)])
    _uniform(ours, want, math.sqrt(6 / (2 * D)))
    _independent(ours)


def test_boxed_layers_axis_found_by_name_without_the_module():
    class Boxed(nn.Module):
        @nn.compact
        def __call__(self, x, _):
            init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp"))
            return nn.Dense(D, kernel_init=init)(x), None

    model = nn.scan(Boxed, variable_axes={"params": 0}, split_rngs={"params": True},
                    length=L, metadata_params={nn.PARTITION_NAME: "layers"})()
    spec = jax.eval_shape(lambda k: model.init(k, X, None), KEY)["params"]
    assert spec["Dense_0"]["kernel"].names == ("layers", "embed", "mlp")
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinit.LayerAxisWarning)
        out = jf.defaults()(KEY, spec)
    kernel = out["Dense_0"]["kernel"]
    assert isinstance(kernel, nn.LogicallyPartitioned)  # the box is kept
    assert abs(float(kernel.value.std()) * math.sqrt(D) - 1) < 0.02
    rules = ((".*kernel", jinit.lecun_normal()), (".*bias", jinit.normal()))
    named = jinit.rules(*rules, layer_axis="layers").plan(spec)
    assert named["Dense_0/kernel"].layer_axes == named["Dense_0/bias"].layer_axes == (0,)
    np.testing.assert_array_equal(
        jinit.rules(*rules, layer_axis="layers")(KEY, spec)["Dense_0"]["kernel"].value,
        jinit.rules(*rules, layer_axis=0)(KEY, spec)["Dense_0"]["kernel"].value)


# --- warnings and explicit axes --------------------------------------------------------------


def test_stacked_tree_without_axes_warns_with_the_fix():
    spec = jax.eval_shape(Scanned().init, KEY, X)["params"]
    with pytest.warns(jinit.LayerAxisWarning,
                      match=r"more axes than their layer explains .*'ScanBlock_0/Dense_0/bias' "
                            r"\(8, 128\).*layer_axis=\[\('ScanBlock_0/.*', 0\)\]"):
        jf.defaults()(KEY, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinit.LayerAxisWarning)
        fixed = jinit.rules(jf.defaults(), layer_axis=[("ScanBlock_0/.*", 0)])(KEY, spec)
        jinit.rules(jf.defaults(), layer_axis=[("ScanBlock_0/.*", None)])(KEY, spec)
    std = float(fixed["ScanBlock_0"]["Dense_0"]["kernel"].std())
    assert abs(std * math.sqrt(D) - 1) < 0.02


def test_plain_rules_warn_too_and_plan_shows_the_layer_axis():
    spec = jax.eval_shape(Scanned().init, KEY, X)["params"]
    init = jinit.rules((".*kernel", jinit.lecun_normal()), (".*", jinit.zeros))
    with pytest.warns(jinit.LayerAxisWarning, match="ScanBlock_0/Dense_0/kernel"):
        init(KEY, spec)
    plan = jinit.rules(init, layer_axis=[("ScanBlock_0/.*", 0)]).plan(spec)
    p = plan["ScanBlock_0/Dense_0/kernel"]
    assert p.layer_axes == (0,) and "per layer (axis 0)" in p.source
    assert isinstance(p.init, jinit.Stacked)


def test_layer_axis_errors():
    spec = jax.eval_shape(Scanned().init, KEY, X)["params"]
    with pytest.raises(jinit.RuleError, match=r"(?s)layer_axis rule 0 \('ScanBlok_0/.\*', 0\) "
                                              r"matches no leaf.*Did you mean 'ScanBlock_0"):
        jinit.rules(jf.defaults(), layer_axis=[("ScanBlok_0/.*", 0)])(KEY, spec)
    with pytest.raises(jinit.RuleError, match="layer axes 2 do not fit leaf 'ScanBlock_0/"):
        jinit.rules(jf.defaults(), layer_axis=[("ScanBlock_0/.*", 2)])(KEY, spec)
    with pytest.raises(jinit.RuleError, match="layer_axis must be an axis"):
        jinit.rules(jf.defaults(), layer_axis=[("a", 0, 1)])


# --- nnx -----------------------------------------------------------------------------------------


class NBlock(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(D, D, rngs=rngs)
        self.norm = nnx.LayerNorm(D, rngs=rngs)


class NModel(nnx.Module):
    def __init__(self, rngs, scan=False):
        if scan:
            @nnx.split_rngs(splits=L)
            @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
            def create(carry, rngs):
                return carry, NBlock(rngs)

            self.blocks = create(0, rngs)[1]
        else:
            @nnx.split_rngs(splits=L)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def create(rngs):
                return NBlock(rngs)

            self.blocks = create(rngs)


@pytest.mark.parametrize("scan", [False, True], ids=["vmap", "scan"])
def test_nnx_stacks_per_layer_under_each_preset(scan):
    torch = require("torch")
    torch.manual_seed(0)
    make = lambda: NModel(nnx.Rngs(0), scan)  # noqa: E731
    assert jnnx.layer_axes(nnx.eval_shape(make))["blocks/linear/kernel"] == (0,)
    state = nnx.state(nnx.eval_shape(make), nnx.Param)  # a bare state: no module to ask
    with pytest.warns(jinit.LayerAxisWarning, match=r"layer_axis=\[\('blocks/.*', 0\)\]"):
        jf.defaults()(KEY, state)
    bound = 1 / math.sqrt(D)
    keras = require("keras")
    keras.utils.set_random_seed(0)

    def keras_dense():
        layer = keras.layers.Dense(D)
        layer.build((None, D))
        return np.asarray(layer.kernel.numpy())

    own = np.asarray(NModel(nnx.Rngs(1), scan).blocks.linear.kernel[...])
    cases = (  # preset, the framework's per-layer kernels, their uniform bound (None: normal)
        (jf.defaults(), own, None),
        (jt.defaults(), np.stack([torch.nn.Linear(D, D).weight.detach().numpy().T
                                  for _ in range(L)]), bound),
        (jk.defaults(), np.stack([keras_dense() for _ in range(L)]), math.sqrt(6 / (2 * D))))
    for n, (preset, want, uniform_bound) in enumerate(cases):
        if n == 1:  # explicit axes give the same as the axes found from the module
            model = jnnx.init(make, jinit.rules(preset, layer_axis=[("blocks/.*", 0)]), KEY)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", jinit.LayerAxisWarning)
                model = jnnx.init(make, preset, KEY)
        kernel = np.asarray(model.blocks.linear.kernel[...])
        assert kernel.shape == (L, D, D)
        if uniform_bound is None:
            check_same_distribution(kernel, want, std=bound, tight=False)
        else:
            _uniform(kernel, want, uniform_bound)
        _independent(kernel)


def test_nnx_axis_named_layers_is_found_from_the_state():
    lecun = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp"))

    @nnx.split_rngs(splits=L)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def create(rngs):
        return nnx.Linear(D, D, kernel_init=lecun, rngs=rngs)

    with nnx.use_eager_sharding(False):
        model = create(nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinit.LayerAxisWarning)
        out = jf.defaults()(KEY, state)
    kernel = np.asarray(out["kernel"][...])
    assert abs(kernel.std() * math.sqrt(D) - 1) < 0.02
    _independent(kernel)


def test_scanned_lstm_keras_recurrent_blocks_are_jointly_orthogonal_per_layer():
    class Cell(nn.Module):
        @nn.compact
        def __call__(self, x, _):
            return nn.RNN(nn.LSTMCell(16))(x), None

    model = nn.scan(Cell, variable_axes={"params": 0}, split_rngs={"params": True}, length=3)()
    x = jnp.ones((2, 5, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinit.LayerAxisWarning)
        params = jinit.flax.init(model, jk.defaults(), KEY, x, None)["params"]
    cell = params["RNN_0"]["LSTMCell_0"] if "RNN_0" in params else params["LSTMCell_0"]
    fused = np.concatenate([np.asarray(cell[g]["kernel"]) for g in ("hi", "hf", "hg", "ho")],
                           axis=-1)  # (3, 16, 64): Keras's fused recurrent matrix per layer
    for layer in fused:
        np.testing.assert_allclose(layer @ layer.T, np.eye(16), atol=1e-5)
    assert not np.allclose(fused[0], fused[1])


def test_nested_scans_give_two_layer_axes():
    class Inner(nn.Module):
        @nn.compact
        def __call__(self, x, _):
            return nn.Dense(16)(x), None

    class Outer(nn.Module):
        @nn.compact
        def __call__(self, x, _):
            return nn.scan(Inner, variable_axes={"params": 1}, split_rngs={"params": True},
                           length=3)()(x, None)

    model = nn.scan(Outer, variable_axes={"params": 0}, split_rngs={"params": True}, length=2)()
    x = jnp.ones((1, 16))
    spec = jax.eval_shape(lambda k: model.init(k, x, None), KEY)
    axes = jinit.flax.layer_axes(model, spec, x, None)
    kernel = spec["params"]["ScanInner_0"]["Dense_0"]["kernel"]
    assert kernel.shape == (2, 16, 3, 16) and axes["ScanInner_0/Dense_0/kernel"] == (0, 2)
    params = jinit.flax.init(model, jf.defaults(), KEY, x, None)["params"]
    w = np.asarray(params["ScanInner_0"]["Dense_0"]["kernel"])
    np.testing.assert_array_equal(w[1, :, 2], jinit.lecun_normal()(
        jax.random.fold_in(jinit.leaf_key(KEY, "ScanInner_0/Dense_0/kernel"), 1 * 3 + 2), (16, 16)))


def test_layers_with_many_axes_of_their_own_do_not_warn():
    class Wide(nn.Module):
        @nn.compact
        def __call__(self, x):
            img = jnp.zeros((1, 6, 6, 2))
            nn.ConvLocal(4, (3, 3))(img)
            nn.Conv(4, (3, 3, 3))(jnp.zeros((1, 4, 4, 4, 2)))
            nn.Einsum((2, 8, 4), "bte,hed->bthd")(x)
            nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)(x)
            return nn.DenseGeneral(3, axis=(-2, -1))(nn.DenseGeneral((2, 4))(x))

    spec = jax.eval_shape(Wide().init, KEY, jnp.ones((1, 3, 8)))["params"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinit.LayerAxisWarning)
        for preset in (jf.defaults(), jt.defaults(), jk.defaults()):
            jinit.rules(preset, default=jinit.zeros)(KEY, spec)


def test_nnx_reinit_finds_the_stack_from_the_module():
    model = NModel(nnx.Rngs(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinit.LayerAxisWarning)
        jnnx.reinit(model, jt.defaults(), KEY)
    bias, bound = np.asarray(model.blocks.linear.bias[...]), 1 / math.sqrt(D)
    assert bias.shape == (L, D) and 0.95 * bound < np.abs(bias).max() <= bound
    _independent(model.blocks.linear.kernel[...])
