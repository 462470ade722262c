"""jinit.compat.mxnet against mxnet.init as the oracle (thresholds: see tests/_stats.py)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import check_same_distribution, draw_jinit, io_shape, oi_fans, reps, to_oi
from conftest import require

import jinit
from jinit.compat import mxnet as jm

# mxnet layout (out, in, *k): 2-D both ways, conv 4-D and 3-D.
SHAPES = [(256, 512), (512, 256), (64, 32, 3, 3), (64, 48, 5)]



def mx_init(init, shape, name="fc_weight"):
    """Runs an mxnet initializer on a fresh array (MXNet under numpy 2 wants plain ints)."""
    mx = require("mxnet")
    arr = mx.nd.zeros(tuple(int(d) for d in shape))
    init(mx.init.InitDesc(name), arr)
    return arr.asnumpy().astype(np.float64)


def draw_mxnet(class_name, shape, seed=0, **kwargs):
    mx = require("mxnet")
    mx.random.seed(seed)
    init = getattr(mx.init, class_name)(**kwargs)
    return np.stack([mx_init(init, shape) for _ in range(reps(shape))])


def _xavier_expect(rnd_type, factor_type, magnitude):
    def expect(fi, fo):
        n = {"avg": (fi + fo) / 2, "in": fi, "out": fo}[factor_type]
        s = math.sqrt(magnitude / n)
        return (s / math.sqrt(3), s) if rnd_type == "uniform" else (s, None)
    return expect


XAVIER_CASES = [
    ("xavier", {}, "Xavier", _xavier_expect("uniform", "avg", 3)),
    ("xavier", dict(rnd_type="gaussian", factor_type="in", magnitude=2), "Xavier",
     _xavier_expect("gaussian", "in", 2)),
    ("xavier", dict(rnd_type="uniform", factor_type="out", magnitude=6), "Xavier",
     _xavier_expect("uniform", "out", 6)),
    ("msra_prelu", {}, "MSRAPrelu", _xavier_expect("gaussian", "avg", 2 / (1 + 0.25**2))),
]
XAVIER_IDS = [f"{n}-{kw}" for n, kw, *_ in XAVIER_CASES]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("name", "kwargs", "class_name", "expect"), XAVIER_CASES,
                         ids=XAVIER_IDS)
def test_xavier_family_matches_mxnet(name, kwargs, class_name, expect, shape):
    std, bound = expect(*oi_fans(shape))
    ours = draw_jinit(getattr(jm, name)(**kwargs), shape, seed=1)
    theirs = draw_mxnet(class_name, shape, seed=1, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=None if bound is None else -bound,
                            hi=bound)


@pytest.mark.parametrize(("name", "kwargs", "class_name", "expect"), XAVIER_CASES,
                         ids=XAVIER_IDS)
def test_flax_layout_has_mxnet_fans(name, kwargs, class_name, expect):
    shape = (64, 32, 3, 3)
    std, bound = expect(*oi_fans(shape))
    ours = draw_jinit(getattr(jm, name)(**kwargs, layout="flax"), io_shape(shape), seed=2)
    theirs = draw_mxnet(class_name, shape, seed=2, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=None if bound is None else -bound,
                            hi=bound)


ELEMENTWISE = [
    ("uniform", {}, "Uniform", 0.14 / math.sqrt(12), -0.07, 0.07),
    ("uniform", dict(scale=2.0), "Uniform", 4 / math.sqrt(12), -2.0, 2.0),
    ("normal", {}, "Normal", 0.01, None, None),
    ("normal", dict(sigma=0.5), "Normal", 0.5, None, None),
]


@pytest.mark.parametrize(("name", "kwargs", "class_name", "std", "lo", "hi"), ELEMENTWISE,
                         ids=[f"{n}-{kw}" for n, kw, *_ in ELEMENTWISE])
def test_elementwise_matches_mxnet(name, kwargs, class_name, std, lo, hi):
    shape = (256, 512)
    ours = draw_jinit(getattr(jm, name)(**kwargs), shape, seed=3)
    theirs = draw_mxnet(class_name, shape, seed=3, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=lo, hi=hi)


class _IntProdNumpy:
    """numpy, but ``prod`` returns a Python int: MXNet 1.9's ``Orthogonal`` passes
    ``np.prod(shape[1:])`` as a shape, which MXNet rejects as ``np.int64(...)`` under numpy 2."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def prod(*args, **kwargs):
        return int(np.prod(*args, **kwargs))


@pytest.mark.parametrize("rand_type", ["uniform", "normal"])
@pytest.mark.parametrize("layout", ["mxnet", "flax"])
@pytest.mark.parametrize("shape", [(256, 512), (512, 256), (64, 32, 3, 3)], ids=str)
def test_orthogonal_matches_mxnet(shape, layout, rand_type, monkeypatch):
    monkeypatch.setattr(require("mxnet").initializer, "np", _IntProdNumpy())
    scale = 1.414
    init = jm.orthogonal(rand_type=rand_type, layout=layout)
    ours = draw_jinit(init, shape if layout == "mxnet" else io_shape(shape), seed=4)
    if layout == "flax":
        ours = to_oi(ours)
    for w in ours[:2]:  # mxnet's matrix (out, in*k) has orthonormal rows or columns * scale
        m = w.reshape(shape[0], -1)
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(small, scale**2 * np.eye(len(small)), atol=1e-4)
    theirs = draw_mxnet("Orthogonal", shape, seed=4, rand_type=rand_type)
    check_same_distribution(ours, theirs)


@pytest.mark.parametrize("layout", ["mxnet", "flax"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 1, 5, 5), (2, 2, 3, 6), (3, 2, 6, 3)],
                         ids=str)
def test_bilinear_exactly_mxnet(shape, layout):
    mx = require("mxnet")
    ref = mx_init(mx.init.Bilinear(), shape)
    if layout == "mxnet":
        got = np.asarray(jm.bilinear()(jax.random.key(0), shape))
    else:
        got = to_oi(np.asarray(jm.bilinear(layout="flax")(
            jax.random.key(0), io_shape(shape)))[None])[0]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("forget_bias", [1.0, 2.5, 0.0])
def test_lstm_bias_exactly_mxnet(forget_bias):
    mx = require("mxnet")
    shape = (4 * 7,)
    arr = mx.nd.zeros(shape)
    mx.init.LSTMBias(forget_bias)._init_weight("lstm_i2h_bias", arr)  # as Gluon calls it
    np.testing.assert_array_equal(np.asarray(jm.lstm_bias(forget_bias)(jax.random.key(0), shape)),
                                  arr.asnumpy())


def test_constants_exactly_mxnet():
    mx = require("mxnet")
    key, shape = jax.random.key(0), (3, 4)
    for ours, theirs in [(jm.constant(0.25), mx.init.Constant(0.25)),
                         (jm.zero, mx.init.Zero()), (jm.one, mx.init.One())]:
        np.testing.assert_array_equal(np.asarray(ours(key, shape)), mx_init(theirs, shape))


BAD_ARGS = [
    (lambda: jm.xavier(rnd_type="normal"), "rnd_type must be one of"),
    (lambda: jm.xavier(factor_type="fan_in"), "factor_type must be one of"),
    (lambda: jm.xavier(magnitude=-1), "xavier: magnitude must be >= 0"),
    (lambda: jm.msra_prelu(slope=float("nan")), "msra_prelu: slope must be finite"),
    (lambda: jm.msra_prelu(factor_type="sum"), "msra_prelu: factor_type must be one of"),
    (lambda: jm.orthogonal(rand_type="gaussian"), "rand_type must be one of"),
    (lambda: jm.uniform(scale=-0.1), "mxnet.uniform: scale must be >= 0"),
    (lambda: jm.normal(sigma=-1), "mxnet.normal: sigma must be >= 0"),
    (lambda: jm.lstm_bias(forget_bias=None), "forget_bias must be a number"),
    (lambda: jm.bilinear(layout="nhwc"), "layout must be one of"),
]


@pytest.mark.parametrize(("build", "match"), BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_arguments_raise_at_construction(build, match):
    with pytest.raises(jinit.InitializerArgumentError, match=match):
        build()


BAD_CALLS = [
    (jm.xavier(), (5,), jinit.ShapeError, r"at least 2 dimensions .*got shape \(5,\)"),
    (jm.bilinear(), (1, 4, 4), jinit.ShapeError, r"mxnet.bilinear needs a 4-D weight"),
    (jm.lstm_bias(), (8, 2), jinit.ShapeError, r"mxnet.lstm_bias needs a 1-D weight"),
    (jm.lstm_bias(), (10,), jinit.ShapeError, "not divisible by 4"),
    (jm.orthogonal(), (4,), jinit.ShapeError, "at least 2 dimensions"),
    (jm.orthogonal(), (4, 4), jinit.DTypeError, "cannot produce dtype int32"),
]


@pytest.mark.parametrize(("init", "shape", "error", "match"), BAD_CALLS,
                         ids=[m for *_, m in BAD_CALLS])
def test_bad_calls_raise(init, shape, error, match):
    dtype = jnp.int32 if error is jinit.DTypeError else None
    with pytest.raises(error, match=match):
        init(jax.random.key(0), shape, dtype)


def test_orthogonal_rejects_complex_and_handles_16bit():
    key = jax.random.key(0)
    with pytest.raises(jinit.DTypeError, match="samples real matrices; got dtype complex64"):
        jm.orthogonal()(key, (4, 4), jnp.complex64)
    w = jm.orthogonal()(key, (16, 8), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(w, np.float32), np.asarray(
        jm.orthogonal()(key, (16, 8)).astype(jnp.bfloat16), np.float32))
