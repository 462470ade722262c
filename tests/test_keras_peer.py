"""Keras 3's own initializer value tests, run against ``jinit.compat.keras``.

Adapted from ``keras/src/initializers/random_initializers_test.py`` and
``constant_initializers_test.py`` (keras 3.15.1): the same shapes, arguments and tolerances,
with the Keras initializer replaced by its jinit counterpart. Keras's seed checks become key
checks (same key, same values; other key, other values); its serialization and
``initializers.get`` checks have no counterpart (jinit initializers are frozen dataclasses
compared by value, tested elsewhere) and are left out. Invalid arguments raise jinit errors,
which are ``ValueError`` subclasses as in Keras.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
import scipy.signal
from _defaults_harness import linen_spec
from conftest import require

import jinit
from jinit.compat import keras as initializers

KEY = jax.random.key(1234)


def _np(x):
    return np.asarray(x)


# --- random_initializers_test.py ----------------------------------------------------------------


def test_random_normal():
    shape, mean, stddev = (25, 20), 0.0, 1.0
    initializer = initializers.random_normal(mean=mean, stddev=stddev)
    values = initializer(KEY, shape)
    assert values.shape == shape
    np.testing.assert_allclose(np.std(_np(values)), stddev, atol=1e-1)
    # A fixed key yields the same results each call; another key other results.
    np.testing.assert_array_equal(_np(initializer(KEY, shape)), _np(values))
    assert not np.allclose(_np(initializer(jax.random.key(1337), shape)), _np(values))


def test_random_uniform():
    shape, minval, maxval = (5, 5), -1.0, 1.0
    values = _np(initializers.random_uniform(minval=minval, maxval=maxval)(KEY, shape))
    assert values.shape == shape
    assert np.min(values) >= minval
    assert np.max(values) < maxval


def test_variance_scaling():
    shape, scale = (25, 20), 2.0
    values = initializers.variance_scaling(scale=scale, mode="fan_in")(KEY, shape)
    assert values.shape == shape
    np.testing.assert_allclose(np.std(_np(values)), np.sqrt(scale / 25), atol=1e-1)
    values = initializers.variance_scaling(scale=scale, mode="fan_out")(KEY, shape)
    assert values.shape == shape
    np.testing.assert_allclose(np.std(_np(values)), np.sqrt(scale / 20), atol=1e-1)


def test_orthogonal():
    shape, gain = (5, 5), 2.0
    array = _np(initializers.orthogonal(gain=gain)(KEY, shape))
    assert array.shape == shape
    for column in array.T:  # columns have norm gain
        np.testing.assert_allclose(np.linalg.norm(column), gain * 1.0, rtol=1e-6)
    for i in range(array.shape[-1]):  # and are orthogonal to each other
        for j in range(i + 1, array.shape[-1]):
            np.testing.assert_allclose(np.dot(array[..., i], array[..., j]), 0.0, atol=1e-6)


def test_variance_scaling_invalid_scale():
    with pytest.raises(ValueError, match="scale must be > 0"):
        initializers.variance_scaling(scale=-1.0, mode="fan_in")


def test_variance_scaling_invalid_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        initializers.variance_scaling(scale=2.0, mode="invalid_mode")


def test_variance_scaling_invalid_distribution():
    with pytest.raises(ValueError, match="distribution must be one of"):
        initializers.variance_scaling(scale=2.0, mode="fan_in", distribution="invalid_dist")


def test_compute_fans_with_axes():
    shape = (512, 8, 64)
    # Query projection.
    fan_in, fan_out = initializers.variance_scaling(input_axes=[0], output_axes=[1, 2]).fans(
        shape)
    assert (fan_in, fan_out) == (512, 512)
    # Output projection.
    fan_in, fan_out = initializers.variance_scaling(input_axes=[0, 1], output_axes=[2]).fans(
        shape)
    assert (fan_in, fan_out) == (512 * 8, 64)


def test_variance_scaling_with_axes():
    shape, scale = (32, 4, 16), 2.0
    initializer = initializers.variance_scaling(scale=scale, mode="fan_in", input_axes=[0],
                                                output_axes=[1, 2])
    values = initializer(KEY, shape)
    assert values.shape == shape
    np.testing.assert_allclose(np.std(_np(values)), np.sqrt(scale / 32), atol=1e-1)
    # Without axes: the convolution fans.
    values = initializers.variance_scaling(scale=scale, mode="fan_in")(KEY, shape)
    np.testing.assert_allclose(np.std(_np(values)), np.sqrt(scale / 128), atol=1e-1)


def test_mha_query_projection_variance():
    num_heads, key_dim, dim = 8, 16, 32
    # The Flax counterpart of MultiHeadAttention(num_heads=8, key_dim=16) on (None, 10, 32).
    spec = linen_spec(nn.MultiHeadDotProductAttention(num_heads=num_heads,
                                                      qkv_features=num_heads * key_dim),
                      (1, 10, dim))
    assert spec["query"]["kernel"].shape == (dim, num_heads, key_dim)
    # kernel_initializer="lecun_normal": Keras rebuilds it with the einsum's axes.
    init = jinit.rules((r"(query|key|value)/kernel",
                        initializers.lecun_normal(input_axes=[0], output_axes=[1, 2])),
                       initializers.defaults())
    kernel = init(KEY, spec)["query"]["kernel"]
    np.testing.assert_allclose(np.std(_np(kernel)), np.sqrt(1.0 / dim), atol=1e-1)
    # Against Keras itself, tighter: both stds within 5% of sqrt(1/32) = 0.177.
    keras = require("keras")
    keras.utils.set_random_seed(1337)
    mha = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim,
                                          kernel_initializer="lecun_normal")
    mha.build((None, 10, dim), (None, 10, dim))
    theirs = _np(mha.query_dense.kernel)
    assert theirs.shape == (dim, num_heads, key_dim)
    for std in (np.std(theirs), np.std(_np(kernel))):
        assert abs(std / np.sqrt(1.0 / dim) - 1) < 0.05, std


# --- constant_initializers_test.py ---------------------------------------------------------------


def test_zeros_initializer():
    np.testing.assert_allclose(_np(initializers.zeros(KEY, (3, 3))), np.zeros((3, 3)))


def test_ones_initializer():
    np.testing.assert_allclose(_np(initializers.ones(KEY, (3, 3))), np.ones((3, 3)))


def test_constant_initializer():
    values = _np(initializers.constant(value=6.0)(KEY, (3, 3)))
    np.testing.assert_allclose(values, np.full((3, 3), 6.0))


def test_constant_initializer_array_value():
    constant_value = np.random.default_rng(0).random((3, 3))
    values = _np(initializers.constant(value=constant_value)(KEY, (3, 3)))
    np.testing.assert_allclose(values, constant_value, rtol=1e-6)


def test_identity_initializer():
    values = _np(initializers.identity(gain=2)(KEY, (3, 3)))
    np.testing.assert_allclose(values, np.eye(3) * 2)


def test_stft_initializer():
    shape = (256, 1, 513)
    time_range = np.arange(256).reshape((-1, 1, 1))
    freq_range = (np.arange(513) / 1024.0).reshape((1, 1, -1))
    pi = np.arccos(np.float32(-1))
    args = -2 * pi * time_range * freq_range
    tol_kwargs = {"atol": 1e-4, "rtol": 1e-6}

    values = _np(initializers.stft("real", None)(KEY, shape))
    np.testing.assert_allclose(np.cos(args), values, atol=1e-4)

    values = _np(initializers.stft("real", "hamming", None, True)(KEY, shape, "float32"))
    window = scipy.signal.windows.get_window("hamming", 256, True)
    window = window.astype("float32").reshape((-1, 1, 1))
    np.testing.assert_allclose(np.cos(args) * window, values, **tol_kwargs)

    values = _np(initializers.stft("imag", "tukey", "density", False)(KEY, shape, "float32"))
    window = scipy.signal.windows.get_window("tukey", 256, False)
    window = window.astype("float32").reshape((-1, 1, 1))
    window = window / np.sqrt(np.sum(window**2))
    np.testing.assert_allclose(np.sin(args) * window, values, **tol_kwargs)

    values = _np(initializers.stft("imag", list(range(1, 257)), "spectrum")(
        KEY, shape, "float32"))
    window = np.arange(1, 257).astype("float32").reshape((-1, 1, 1))
    window = window / np.sum(window)
    np.testing.assert_allclose(np.sin(args) * window, values, **tol_kwargs)

    with pytest.raises(ValueError):
        initializers.stft("imaginary")
    with pytest.raises(ValueError):
        initializers.stft("real", scaling="l2")
    with pytest.raises(ValueError):
        initializers.stft("real", window="unknown")
