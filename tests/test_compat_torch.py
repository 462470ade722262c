"""jinit.compat.torch against torch.nn.init as the oracle (thresholds: see tests/_stats.py)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import check_same_distribution, draw_jinit, io_shape, oi_fans, reps, to_oi
from conftest import require
from scipy import stats

import jinit
from jinit.compat import torch as jt

# torch layout (out, in, *k): 2-D both ways, conv 4-D and 3-D.
SHAPES = [(256, 512), (512, 256), (64, 32, 3, 3), (64, 48, 5)]


def draw_torch(fn_name, shape, seed=0, **kwargs):
    torch = require("torch")
    torch.manual_seed(seed)
    fn = getattr(torch.nn.init, fn_name + "_")
    out = []
    for _ in range(reps(shape)):
        t = torch.empty(shape)
        fn(t, **kwargs)
        out.append(t.numpy().astype(np.float64))
    return np.stack(out)


# name, kwargs, analytic (std, bound) from the torch fans (fan_in, fan_out)
VS_CASES = [
    ("xavier_uniform", {}, lambda fi, fo: (math.sqrt(2 / (fi + fo)), math.sqrt(6 / (fi + fo)))),
    ("xavier_normal", {"gain": 0.5}, lambda fi, fo: (0.5 * math.sqrt(2 / (fi + fo)), None)),
    ("kaiming_uniform", {}, lambda fi, fo: (math.sqrt(2 / fi), math.sqrt(6 / fi))),
    ("kaiming_uniform", {"a": math.sqrt(5)},
     lambda fi, fo: (math.sqrt(1 / (3 * fi)), math.sqrt(1 / fi))),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"},
     lambda fi, fo: (math.sqrt(2 / fo), None)),
    ("kaiming_normal", {"a": 0.2}, lambda fi, fo: (math.sqrt(2 / 1.04 / fi), None)),
]
VS_IDS = [f"{n}-{kw}" for n, kw, _ in VS_CASES]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("name", "kwargs", "expect"), VS_CASES, ids=VS_IDS)
def test_variance_scaling_family_matches_torch(name, kwargs, expect, shape):
    std, bound = expect(*oi_fans(shape))
    ours = draw_jinit(getattr(jt, name)(**kwargs), shape, seed=1)
    theirs = draw_torch(name, shape, seed=1, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=None if bound is None else -bound,
                            hi=bound)


@pytest.mark.parametrize(("name", "kwargs", "expect"), VS_CASES, ids=VS_IDS)
def test_flax_layout_has_torch_fans(name, kwargs, expect):
    shape = (64, 32, 3, 3)
    std, bound = expect(*oi_fans(shape))
    ours = draw_jinit(getattr(jt, name)(**kwargs, layout="flax"), io_shape(shape), seed=2)
    theirs = draw_torch(name, shape, seed=2, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=None if bound is None else -bound,
                            hi=bound)


def test_flax_layout_bit_identical_to_jax_variance_scaling():
    # kaiming_normal(relu) in Flax layout is jax's variance_scaling(2, fan_in, "normal").
    key, shape = jax.random.key(3), (3, 3, 32, 64)
    ours = jt.kaiming_normal(nonlinearity="relu", layout="flax")(key, shape)
    theirs = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")(key, shape)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


ELEMENTWISE = [
    ("uniform", {"a": -0.3, "b": 0.7}, 1 / math.sqrt(12), -0.3, 0.7),
    ("normal", {"mean": 0.5, "std": 0.02}, 0.02, None, None),
    ("trunc_normal", {}, stats.truncnorm.std(-2, 2), -2.0, 2.0),
    ("trunc_normal", {"mean": 0.1, "std": 0.02}, 0.02, None, None),  # cut at +-95 std: none
    ("trunc_normal", {"a": 0.5, "b": 3.0}, stats.truncnorm.std(0.5, 3), 0.5, 3.0),  # redraw
    ("trunc_normal", {"mean": 0.2, "std": 2.0, "a": 2.2, "b": 6.2},  # inverse CDF
     2 * stats.truncnorm.std(1, 3), 2.2, 6.2),
    ("trunc_normal", {"a": -3.0, "b": -1.0}, stats.truncnorm.std(-3, -1), -3.0, -1.0),  # mirror
]


@pytest.mark.parametrize(("name", "kwargs", "std", "lo", "hi"), ELEMENTWISE,
                         ids=[f"{n}-{kw}" for n, kw, *_ in ELEMENTWISE])
def test_elementwise_matches_torch(name, kwargs, std, lo, hi):
    shape = (256, 512)
    ours = draw_jinit(getattr(jt, name)(**kwargs), shape, seed=4)
    theirs = draw_torch(name, shape, seed=4, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=lo, hi=hi)


def test_trunc_normal_wide_bounds_has_no_outliers():
    # trunc_normal(std=0.02) cuts at +-100 std; as one ~2 million-value weight it must look
    # like N(0, 0.02^2): P(|z| > 7) ~ 2.6e-12 per value.
    w = jt.trunc_normal(std=0.02)(jax.random.key(0), (2048, 1024))
    assert float(jnp.abs(w).max()) < 7 * 0.02
    assert abs(float(w.std()) / 0.02 - 1) < 6 / math.sqrt(2 * w.size)


@pytest.mark.slow
def test_trunc_normal_avoids_the_inverse_cdf_outliers():
    # The float32 inverse-CDF sampler (jax.random.truncated_normal) maps the uniform's lowest
    # value to erfinv(-1) and clips it to the lower bound: about 1 value in 8 million lands
    # at -100 std. This key shows it; jinit's redraw sampler has none.
    key, shape = jax.random.key(0), (4096, 4096)
    naive = jax.random.truncated_normal(key, -100.0, 100.0, shape) * 0.02
    assert float(naive.min()) < -1.0  # the outlier the naive sampler produces
    w = jt.trunc_normal(std=0.02)(key, shape)
    assert float(jnp.abs(w).max()) < 7 * 0.02


@pytest.mark.parametrize("layout", ["torch", "flax"])
@pytest.mark.parametrize("shape", [(256, 512), (64, 32, 3, 3), (32, 96, 5)], ids=str)
def test_orthogonal_matches_torch(shape, layout):
    gain = 2.0
    init = jt.orthogonal(gain, layout=layout)
    ours = draw_jinit(init, shape if layout == "torch" else io_shape(shape), seed=5)
    if layout == "flax":
        ours = to_oi(ours)
    # Defining property: the torch matrix (out, in*k) has orthonormal rows or columns * gain.
    for w in ours[:2]:
        m = w.reshape(shape[0], -1)
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(small, gain**2 * np.eye(len(small)), atol=1e-4)
    theirs = draw_torch("orthogonal", shape, seed=5, gain=gain)
    check_same_distribution(ours, theirs)


@pytest.mark.parametrize("layout", ["torch", "flax"])
@pytest.mark.parametrize("shape", [(512, 256), (256, 512)], ids=str)
def test_sparse_matches_torch(shape, layout):
    sparsity, std = 0.3, 0.05
    torch = require("torch")
    init = jt.sparse(sparsity, std, layout=layout)
    ours = draw_jinit(init, shape if layout == "torch" else shape[::-1], seed=6, n_min=200_000)
    if layout == "flax":
        ours = ours.transpose(0, 2, 1)
    n_zero = math.ceil(sparsity * shape[0])
    # Exactly ceil(sparsity * rows) zeros in every column of the torch weight.
    assert ((ours == 0).sum(axis=1) == n_zero).all()
    torch.manual_seed(6)
    theirs = []
    for _ in range(2):
        t = torch.empty(shape)
        torch.nn.init.sparse_(t, sparsity, std)
        theirs.append(t.numpy())
    theirs = np.stack(theirs).astype(np.float64)
    assert ((theirs == 0).sum(axis=1) == n_zero).all()
    check_same_distribution(ours[ours != 0], theirs[theirs != 0], std=std)


@pytest.mark.parametrize("layout", ["torch", "flax"])
@pytest.mark.parametrize("shape", [(5, 7), (7, 5)], ids=str)
def test_eye_exactly_torch(shape, layout):
    torch = require("torch")
    ref = torch.nn.init.eye_(torch.empty(shape)).numpy()
    got = np.asarray(jt.eye(layout=layout)(jax.random.key(0), shape if layout == "torch"
                                            else shape[::-1]))
    np.testing.assert_array_equal(got if layout == "torch" else got.T, ref)


@pytest.mark.parametrize("layout", ["torch", "flax"])
@pytest.mark.parametrize(("shape", "groups"), [((8, 4, 3, 3), 1), ((8, 4, 3, 3), 2),
                                               ((6, 6, 4), 3), ((4, 6, 4), 1),
                                               ((4, 4, 2, 3, 4), 2)], ids=str)
def test_dirac_exactly_torch(shape, groups, layout):
    torch = require("torch")
    ref = torch.nn.init.dirac_(torch.empty(shape), groups).numpy()
    init = jt.dirac(groups, layout=layout)
    if layout == "torch":
        got = np.asarray(init(jax.random.key(0), shape))
    else:
        got = to_oi(np.asarray(init(jax.random.key(0), io_shape(shape)))[None])[0]
    np.testing.assert_array_equal(got, ref)


def test_constants_exactly_torch():
    torch = require("torch")
    key, shape = jax.random.key(0), (3, 4)
    np.testing.assert_array_equal(jt.constant(0.25)(key, shape),
                                  torch.nn.init.constant_(torch.empty(shape), 0.25).numpy())
    np.testing.assert_array_equal(jt.ones(key, shape), torch.nn.init.ones_(torch.empty(shape)))
    np.testing.assert_array_equal(jt.zeros(key, shape), torch.nn.init.zeros_(torch.empty(shape)))


@pytest.mark.parametrize(("nonlinearity", "param"), [
    ("linear", None), ("conv2d", None), ("conv_transpose3d", None), ("sigmoid", None),
    ("tanh", None), ("relu", None), ("selu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
    ("leaky_relu", 0), ("leaky_relu", math.sqrt(5))])
def test_calculate_gain_is_torch(nonlinearity, param):
    torch = require("torch")
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert jinit.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)
    assert jt.calculate_gain is jinit.calculate_gain


def test_16bit_and_jit(variant):
    key = jax.random.key(0)
    for init in (jt.trunc_normal(std=0.02), jt.kaiming_uniform(), jt.sparse(0.5),
                 jt.uniform(0.0, 2.0), jt.orthogonal()):
        w = variant(init)(key, (64, 32), jnp.bfloat16)
        assert w.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(w, np.float32),
                                      np.asarray(init(key, (64, 32)).astype(jnp.bfloat16),
                                                 np.float32))


def test_trunc_normal_vmaps_over_keys():
    keys = jax.random.split(jax.random.key(0), 4)
    init = jt.trunc_normal()
    batched = jax.vmap(lambda k: init(k, (128, 64)))(keys)
    assert batched.shape == (4, 128, 64) and float(jnp.abs(batched).max()) <= 2.0
    np.testing.assert_array_equal(batched[1], init(keys[1], (128, 64)))


def test_reprs_are_readable_and_hashable():
    init = jt.kaiming_uniform(a=math.sqrt(5), layout="flax")
    assert "LayoutVarianceScaling(scale=0.333" in repr(init) and "layout='flax'" in repr(init)
    assert hash(init) == hash(jt.kaiming_uniform(a=math.sqrt(5), layout="flax"))
    assert "TruncNormal(mean=0.0, std=0.02" in repr(jt.trunc_normal(std=0.02))


BAD_ARGS = [
    (lambda: jt.kaiming_uniform(mode="fan_avg"), "kaiming_uniform: mode must be one of"),
    (lambda: jt.kaiming_normal(nonlinearity="gelu"), "unsupported nonlinearity='gelu'"),
    (lambda: jt.kaiming_normal(nonlinearity=None), "nonlinearity must be a torch.nn.functional"),
    (lambda: jt.kaiming_uniform(a=True), "a is the leaky_relu negative slope"),
    (lambda: jt.kaiming_uniform(a=float("nan")), "slope must be finite"),
    (lambda: jt.xavier_uniform(gain=float("nan")), "xavier_uniform: gain must be finite"),
    (lambda: jt.normal(std=-1.0), r"torch.normal: std must be >= 0"),
    (lambda: jt.uniform(1.0, 0.0), r"needs a <= b; got a=1.0, b=0.0"),
    (lambda: jt.trunc_normal(std=0.0), "trunc_normal: std must be > 0"),
    (lambda: jt.trunc_normal(a=2.0, b=-2.0), "needs a < b"),
    (lambda: jt.sparse(1.0), r"sparsity .* must be in \[0, 1\)"),
    (lambda: jt.sparse(-0.1), "sparsity must be >= 0"),
    (lambda: jt.sparse(0.1, std=-1), "sparse: std must be >= 0"),
    (lambda: jt.dirac(groups=0), "groups must be a positive int"),
    (lambda: jt.orthogonal(layout="nchw"), "layout must be one of"),
    (lambda: jt.uniform(layout="oihw"), "layout must be one of"),
    (lambda: jinit.calculate_gain("leaky_relu", True), "not a bool"),
    (lambda: jinit.calculate_gain("leaky_relu", "0.1"), "must be a real number"),
    (lambda: jinit.calculate_gain("swish"), "unsupported nonlinearity='swish'"),
]


@pytest.mark.parametrize(("build", "match"), BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_arguments_raise_at_construction(build, match):
    with pytest.raises(jinit.InitializerArgumentError, match=match):
        build()


BAD_CALLS = [
    (jt.kaiming_uniform(), (5,), jinit.ShapeError, r"at least 2 dimensions .*got shape \(5,\)"),
    (jt.xavier_normal(layout="flax"), (), jinit.ShapeError, "at least 2 dimensions"),
    (jt.eye(), (2, 3, 4), jinit.ShapeError, r"torch.eye needs a 2-D weight; got shape \(2, 3, 4\)"),
    (jt.dirac(), (2, 2), jinit.ShapeError, "torch.dirac needs a 3-D or 4-D or 5-D weight"),
    (jt.dirac(), (2, 2, 1, 1, 1, 1), jinit.ShapeError, "3-D or 4-D or 5-D"),
    (jt.dirac(groups=4), (6, 2, 3), jinit.ShapeError, "not divisible by groups=4"),
    (jt.sparse(0.1), (4, 4, 4), jinit.ShapeError, "torch.sparse needs a 2-D weight"),
    (jt.orthogonal(), (4,), jinit.ShapeError, "at least 2 dimensions"),
    (jt.kaiming_normal(), (4, 4), jinit.DTypeError, "cannot produce dtype int32"),
    (jt.trunc_normal(), (4, 4), jinit.DTypeError, "cannot produce dtype int32"),
]


@pytest.mark.parametrize(("init", "shape", "error", "match"), BAD_CALLS,
                         ids=[m for *_, m in BAD_CALLS])
def test_bad_calls_raise(init, shape, error, match):
    dtype = jnp.int32 if error is jinit.DTypeError else None
    with pytest.raises(error, match=match):
        init(jax.random.key(0), shape, dtype)


def test_trunc_normal_rejects_complex():
    with pytest.raises(jinit.DTypeError, match="samples real numbers; got dtype complex64"):
        jt.trunc_normal()(jax.random.key(0), (4,), jnp.complex64)


def test_empty_weights_give_empty_arrays():
    assert jt.kaiming_uniform()(jax.random.key(0), (0, 4)).shape == (0, 4)
