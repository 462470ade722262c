"""jinit.compat.keras against keras.initializers as the oracle (thresholds: see tests/_stats.py).

Keras runs on whatever backend is configured (TensorFlow by default); every backend
implements the same distributions.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import check_same_distribution, draw_jinit, reps
from conftest import require
from scipy import stats

import jinit
from jinit.compat import keras as jk

C_TN = stats.truncnorm.std(-2, 2)  # 0.8796...

# keras layout (*k, in, out): 2-D both ways, conv 4-D and 3-D.
SHAPES = [(256, 512), (512, 256), (3, 3, 32, 64), (5, 48, 64)]


def _fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


def draw_keras(class_name, shape, seed=0, **kwargs):
    keras = require("keras")
    cls = getattr(keras.initializers, class_name)
    # A fresh seeded instance per draw: independent, reproducible draws.
    return np.stack([np.asarray(cls(**kwargs, seed=seed + r)(shape), np.float64)
                     for r in range(reps(shape))])


def _n(mode, fi, fo):
    return {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2}[mode]


def _vs_expect(scale, mode, distribution):
    """(std, bound) of keras VarianceScaling given the fans."""
    def expect(fi, fo):
        var = scale / max(1.0, _n(mode, fi, fo))
        if distribution == "uniform":
            return math.sqrt(var), math.sqrt(3 * var)
        if distribution == "untruncated_normal":
            return math.sqrt(var), None
        return math.sqrt(var), 2 * math.sqrt(var) / C_TN
    return expect


# jinit name, jinit kwargs, keras class, keras kwargs, expect
VS_CASES = [
    ("variance_scaling", dict(scale=1.5, mode="fan_avg", distribution="normal"),
     "VarianceScaling", dict(scale=1.5, mode="fan_avg", distribution="normal"),
     _vs_expect(1.5, "fan_avg", "truncated_normal")),
    ("variance_scaling", dict(scale=0.7, mode="fan_out", distribution="untruncated_normal"),
     "VarianceScaling", dict(scale=0.7, mode="fan_out", distribution="untruncated_normal"),
     _vs_expect(0.7, "fan_out", "untruncated_normal")),
    ("variance_scaling", dict(scale=2.0, mode="fan_in", distribution="uniform"),
     "VarianceScaling", dict(scale=2.0, mode="fan_in", distribution="uniform"),
     _vs_expect(2.0, "fan_in", "uniform")),
]
PRESETS = [
    ("glorot_uniform", "GlorotUniform", _vs_expect(1.0, "fan_avg", "uniform")),
    ("glorot_normal", "GlorotNormal", _vs_expect(1.0, "fan_avg", "truncated_normal")),
    ("he_uniform", "HeUniform", _vs_expect(2.0, "fan_in", "uniform")),
    ("he_normal", "HeNormal", _vs_expect(2.0, "fan_in", "truncated_normal")),
    ("lecun_uniform", "LecunUniform", _vs_expect(1.0, "fan_in", "uniform")),
    ("lecun_normal", "LecunNormal", _vs_expect(1.0, "fan_in", "truncated_normal")),
]
VS_CASES += [(n, {}, c, {}, e) for n, c, e in PRESETS]
VS_IDS = [f"{n}-{kw}" for n, kw, *_ in VS_CASES]


def _check(name, kwargs, class_name, keras_kwargs, expect, shape, seed, layout=None):
    std, bound = expect(*_fans(shape))
    if layout is None:
        ours = draw_jinit(getattr(jk, name)(**kwargs), shape, seed=seed)
    else:  # torch layout (out, in, *k) of the keras shape (*k, in, out)
        torch_shape = (shape[-1], shape[-2], *shape[:-2])
        ours = draw_jinit(getattr(jk, name)(**kwargs, layout=layout), torch_shape, seed=seed)
    theirs = draw_keras(class_name, shape, seed=seed, **keras_kwargs)
    check_same_distribution(ours, theirs, std=std, lo=None if bound is None else -bound,
                            hi=bound)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("name", "kwargs", "class_name", "keras_kwargs", "expect"),
                         VS_CASES[:3], ids=VS_IDS[:3])
def test_variance_scaling_matches_keras(name, kwargs, class_name, keras_kwargs, expect, shape):
    _check(name, kwargs, class_name, keras_kwargs, expect, shape, seed=10)


@pytest.mark.parametrize("shape", SHAPES[1:3], ids=str)
@pytest.mark.parametrize(("name", "kwargs", "class_name", "keras_kwargs", "expect"),
                         VS_CASES[3:], ids=VS_IDS[3:])
def test_presets_match_keras(name, kwargs, class_name, keras_kwargs, expect, shape):
    _check(name, kwargs, class_name, keras_kwargs, expect, shape, seed=20)


@pytest.mark.parametrize(("name", "kwargs", "class_name", "keras_kwargs", "expect"),
                         VS_CASES[:3], ids=VS_IDS[:3])
def test_torch_layout_has_keras_fans(name, kwargs, class_name, keras_kwargs, expect):
    _check(name, kwargs, class_name, keras_kwargs, expect, (3, 3, 32, 64), seed=30,
           layout="torch")


@pytest.mark.parametrize("shape", [(131072,), (96, 1536)], ids=str)
def test_vector_fans_are_keras(shape):
    # Keras: a 1-D shape (n,) has fan_in = fan_out = n (JAX and torch raise).
    kwargs = dict(scale=3.0, mode="fan_out", distribution="uniform")
    _check("variance_scaling", kwargs, "VarianceScaling", kwargs,
           _vs_expect(3.0, "fan_out", "uniform"), shape, seed=40)


def test_scalar_fans_are_one():
    keras = require("keras")
    init = jk.variance_scaling(4.0, "fan_avg", "truncated_normal")
    draws = np.asarray(jax.vmap(lambda k: init(k, ()))(jax.random.split(jax.random.key(0),
                                                                         100_000)))
    theirs = np.stack([np.asarray(keras.initializers.VarianceScaling(
        4.0, "fan_avg", seed=s)(())) for s in range(20)])
    # fans (1, 1): std sqrt(4) = 2 (variance-corrected), bound 2 * 2 / c_TN.
    assert abs(draws.std() / 2.0 - 1) < 6 / math.sqrt(2 * draws.size)
    assert np.abs(draws).max() <= 4 / C_TN * (1 + 1e-6)
    assert np.abs(theirs).max() <= 4 / C_TN * (1 + 1e-6)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=str)
@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal",
                                  "lecun_uniform"])
def test_keras_layout_bit_identical_to_jax(name, shape):
    key = jax.random.key(5)
    np.testing.assert_array_equal(np.asarray(getattr(jk, name)()(key, shape)),
                                  np.asarray(getattr(jax.nn.initializers, name)()(key, shape)))


ELEMENTWISE = [
    ("random_normal", dict(mean=0.1, stddev=0.05), "RandomNormal", 0.05, None, None),
    ("random_uniform", {}, "RandomUniform", 0.1 / math.sqrt(12), -0.05, 0.05),
    ("random_uniform", dict(minval=1.0, maxval=3.0), "RandomUniform", 2 / math.sqrt(12), 1.0,
     3.0),
    ("truncated_normal", {}, "TruncatedNormal", 0.05 * C_TN, -0.1, 0.1),
    ("truncated_normal", dict(mean=0.5, stddev=0.2), "TruncatedNormal", 0.2 * C_TN, 0.1, 0.9),
]


@pytest.mark.parametrize(("name", "kwargs", "class_name", "std", "lo", "hi"), ELEMENTWISE,
                         ids=[f"{n}-{kw}" for n, kw, *_ in ELEMENTWISE])
def test_elementwise_matches_keras(name, kwargs, class_name, std, lo, hi):
    shape = (256, 512)
    ours = draw_jinit(getattr(jk, name)(**kwargs), shape, seed=50)
    theirs = draw_keras(class_name, shape, seed=50, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=lo, hi=hi)


@pytest.mark.parametrize("layout", ["keras", "torch"])
@pytest.mark.parametrize("shape", [(256, 512), (512, 256), (3, 3, 32, 64)], ids=str)
def test_orthogonal_matches_keras(shape, layout):
    gain = 1.5
    init = jk.orthogonal(gain, layout=layout)
    if layout == "keras":
        ours = draw_jinit(init, shape, seed=60)
    else:
        torch_shape = (shape[-1], shape[-2], *shape[:-2])
        ours = draw_jinit(init, torch_shape, seed=60)
        ours = np.transpose(ours, (0, *range(3, ours.ndim), 2, 1))
    for w in ours[:2]:  # keras flattens to (prod(shape[:-1]), shape[-1])
        m = w.reshape(-1, shape[-1])
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(small, gain**2 * np.eye(len(small)), atol=1e-4)
    theirs = draw_keras("Orthogonal", shape, seed=60, gain=gain)
    check_same_distribution(ours, theirs)


@pytest.mark.parametrize("layout", ["keras", "torch"])
@pytest.mark.parametrize("shape", [(5, 7), (7, 5)], ids=str)
def test_identity_exactly_keras(shape, layout):
    keras = require("keras")
    ref = np.asarray(keras.initializers.Identity(gain=0.5)(shape))
    got = np.asarray(jk.identity(0.5, layout=layout)(
        jax.random.key(0), shape if layout == "keras" else shape[::-1]))
    np.testing.assert_array_equal(got if layout == "keras" else got.T, ref)


def test_constants_exactly_keras():
    keras = require("keras")
    key, shape = jax.random.key(0), (3, 4)
    for ours, theirs in [(jk.constant(0.25), keras.initializers.Constant(0.25)),
                         (jk.constant(), keras.initializers.Constant()),
                         (jk.zeros, keras.initializers.Zeros()),
                         (jk.ones, keras.initializers.Ones())]:
        np.testing.assert_array_equal(np.asarray(ours(key, shape)), np.asarray(theirs(shape)))


def test_distribution_names_are_keras():
    normal = jk.variance_scaling(distribution="Normal")  # case-insensitive, means truncated
    assert normal == jk.variance_scaling(distribution="truncated_normal")
    assert normal.distribution == "truncated_normal"
    assert jk.variance_scaling(distribution="untruncated_normal").distribution == "normal"


BAD_ARGS = [
    (lambda: jk.variance_scaling(scale=0.0), "variance_scaling: scale must be > 0"),
    (lambda: jk.variance_scaling(scale=float("nan")), "scale must be finite"),
    (lambda: jk.variance_scaling(mode="fan_geo_avg"), "mode must be one of"),
    (lambda: jk.variance_scaling(distribution="laplace"), "distribution must be one of"),
    (lambda: jk.variance_scaling(distribution=None), "distribution must be one of"),
    (lambda: jk.random_uniform(0.1, -0.1), "needs minval <= maxval"),
    (lambda: jk.random_normal(stddev=-0.1), "random_normal: stddev must be >= 0"),
    (lambda: jk.truncated_normal(stddev=0.0), "truncated_normal: stddev must be > 0"),
    (lambda: jk.orthogonal(gain="x"), "orthogonal: gain must be a number"),
    (lambda: jk.identity(gain=float("inf")), "identity: gain must be finite"),
    (lambda: jk.glorot_uniform(layout="hwio"), "layout must be one of"),
]


@pytest.mark.parametrize(("build", "match"), BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_arguments_raise_at_construction(build, match):
    with pytest.raises(jinit.InitializerArgumentError, match=match):
        build()


def test_bad_calls_raise():
    key = jax.random.key(0)
    with pytest.raises(jinit.ShapeError, match=r"keras.identity needs a 2-D weight"):
        jk.identity()(key, (2, 2, 2))
    with pytest.raises(jinit.ShapeError, match="at least 2 dimensions"):
        jk.orthogonal()(key, (4,))
    with pytest.raises(jinit.DTypeError, match="cannot produce dtype int32"):
        jk.he_normal()(key, (4, 4), jnp.int32)


def test_empty_weights_give_empty_arrays():
    assert jk.he_uniform()(jax.random.key(0), (0, 4)).shape == (0, 4)
    assert jk.variance_scaling()(jax.random.key(0), (0,)).shape == (0,)


# --- input_axes / output_axes (EinsumDense, MultiHeadAttention) ---------------------------------

AXES_CASES = [  # keras kwargs, shape, (fan_in, fan_out)
    (dict(scale=1.0, mode="fan_in", distribution="truncated_normal", input_axes=[0],
          output_axes=[1, 2]), (32, 8, 16), (32, 128)),      # MHA query/key/value
    (dict(scale=1.0, mode="fan_avg", distribution="uniform", input_axes=[0, 1],
          output_axes=[2]), (8, 16, 32), (128, 32)),         # MHA output
    (dict(scale=2.0, mode="fan_out", distribution="untruncated_normal", input_axes=[-1],
          output_axes=[0]), (24, 5, 40), (40, 24)),          # negative axes, axis 1 ignored
]


@pytest.mark.parametrize(("kwargs", "shape", "fans"), AXES_CASES, ids=str)
def test_input_output_axes_match_keras(kwargs, shape, fans):
    assert jk.variance_scaling(**kwargs).fans(shape) == fans
    dist = {"untruncated_normal": "untruncated_normal"}.get(kwargs["distribution"],
                                                            kwargs["distribution"])
    std, bound = _vs_expect(kwargs["scale"], kwargs["mode"], dist)(*fans)
    ours = draw_jinit(jk.variance_scaling(**kwargs), shape, seed=70)
    theirs = draw_keras("VarianceScaling", shape, seed=70, **kwargs)
    check_same_distribution(ours, theirs, std=std, lo=None if bound is None else -bound,
                            hi=bound)


@pytest.mark.parametrize(("name", "class_name"), [("glorot_uniform", "GlorotUniform"),
                                                  ("he_normal", "HeNormal"),
                                                  ("lecun_uniform", "LecunUniform")])
def test_presets_take_axes(name, class_name):
    shape, axes = (32, 8, 16), dict(input_axes=[0], output_axes=[1, 2])
    expect = dict(PRESETS_BY_NAME)[name]
    std, bound = expect(32, 128)
    ours = draw_jinit(getattr(jk, name)(**axes), shape, seed=80)
    theirs = draw_keras(class_name, shape, seed=80, **axes)
    check_same_distribution(ours, theirs, std=std, lo=None if bound is None else -bound,
                            hi=bound)


PRESETS_BY_NAME = [(n, e) for n, _, e in PRESETS]


def test_axes_arguments_are_checked():
    with pytest.raises(jinit.InitializerArgumentError, match="both input_axes and output_axes"):
        jk.glorot_uniform(input_axes=[0])
    with pytest.raises(jinit.InitializerArgumentError, match="lists an axis twice"):
        jk.variance_scaling(input_axes=[0, 0], output_axes=[1])
    with pytest.raises(jinit.InitializerArgumentError, match="list of ints"):
        jk.variance_scaling(input_axes=["a"], output_axes=[1])
    key = jax.random.key(0)
    with pytest.raises(jinit.ShapeError, match="out of range"):
        jk.he_normal(input_axes=[0], output_axes=[3])(key, (4, 4, 4))
    with pytest.raises(jinit.ShapeError, match="both an input and an output axis"):
        jk.he_normal(input_axes=[0], output_axes=[-3])(key, (4, 4, 4))
    assert jk.he_normal(input_axes=[0], output_axes=[1])(key, (0, 4)).shape == (0, 4)


# --- STFT ---------------------------------------------------------------------------------------

STFT_CASES = [((256, 1, 513), "real", "hann", "density", False),
              ((256, 1, 513), "imag", "hamming", "spectrum", True),
              ((400, 1, 257), "real", "blackman", None, False),
              ((64, 1, 33), "imag", None, "density", False),
              ((48, 1, 2), "real", "tukey", "density", True),
              ((100, 1, 65), "imag", "bartlett", "spectrum", False)]


@pytest.mark.parametrize(("shape", "side", "window", "scaling", "periodic"), STFT_CASES, ids=str)
def test_stft_values_match_keras(shape, side, window, scaling, periodic):
    keras = require("keras")
    want = np.asarray(keras.initializers.STFT(side, window, scaling, periodic)(shape, "float32"))
    got = np.asarray(jk.stft(side, window, scaling, periodic)(jax.random.key(0), shape))
    assert got.dtype == np.float32
    # Same float32 operations in the same order: equal up to a few float32 ulps (TF's and
    # XLA's cos/sin differ in the last bits; arguments reach ~800 rad).
    atol = 8 * np.finfo(np.float32).eps * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    jitted = jax.jit(jk.stft(side, window, scaling, periodic), static_argnums=(1,))
    np.testing.assert_allclose(np.asarray(jitted(jax.random.key(1), shape)), want, rtol=0,
                               atol=atol)


def test_stft_array_window_matches_keras():
    keras = require("keras")
    window = np.linspace(0.5, 1.5, 32)
    want = np.asarray(keras.initializers.STFT("real", window, "density")((32, 1, 17)))
    got = np.asarray(jk.stft("real", window, "density")(jax.random.key(0), (32, 1, 17)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_stft_bad_shapes_raise():
    key = jax.random.key(0)
    with pytest.raises(jinit.ShapeError, match=r"\(frame_length, 1, fft_length // 2 \+ 1\)"):
        jk.stft()(key, (16, 2, 9))
    with pytest.raises(jinit.ShapeError, match="at least 2 frequency bins"):
        jk.stft()(key, (16, 1, 1))
    with pytest.raises(jinit.ShapeError, match="the window has 3 values"):
        jk.stft(window=[1.0, 2.0, 3.0])(key, (16, 1, 9))
    with pytest.raises(jinit.InitializerArgumentError, match="unknown window"):
        jk.stft(window="nope")
    with pytest.raises(jinit.InitializerArgumentError, match="1-D array"):
        jk.stft(window=np.ones((2, 2)))


def test_stft_dtypes():
    key = jax.random.key(0)
    with pytest.raises(jinit.DTypeError, match="floating dtype"):
        jk.stft()(key, (8, 1, 5), jnp.int32)
    assert jk.stft()(key, (8, 1, 5), jnp.bfloat16).dtype == jnp.bfloat16
