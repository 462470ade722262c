"""Structural initializers: defining properties, framework oracles, jit/vmap, bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

import jinit

KEY = jax.random.key(0)


def torch_layout_to_flax(w: np.ndarray) -> np.ndarray:
    """(out, in, *k) -> (*k, in, out)."""
    return np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))


# --- identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)], ids=str)
def test_identity_matches_torch_eye(shape, variant):
    torch = require("torch")
    expected = torch.nn.init.eye_(torch.empty(shape)).numpy()
    np.testing.assert_array_equal(np.asarray(variant(jinit.identity())(KEY, shape, jnp.float32)),
                                  expected)


def test_identity_gain_broadcast_and_int_dtype():
    w = jinit.identity(0.5)(KEY, (2, 3, 3))
    np.testing.assert_array_equal(np.asarray(w), np.broadcast_to(0.5 * np.eye(3), (2, 3, 3)))
    wi = jinit.identity()(KEY, (2, 2), jnp.int32)
    assert wi.dtype == jnp.int32 and wi.tolist() == [[1, 0], [0, 1]]
    assert jinit.identity(dtype=jnp.bfloat16)(KEY, (2, 2)).dtype == jnp.bfloat16


def test_identity_bad_input():
    with pytest.raises(jinit.ShapeError, match=r"at least 2 dimensions; got \(4,\)"):
        jinit.identity()(KEY, (4,))
    with pytest.raises(jinit.InitializerArgumentError, match="identity: gain must be finite"):
        jinit.identity(float("nan"))


# --- dirac -------------------------------------------------------------------------------------

DIRAC_CASES = [((6, 4, 3), 1), ((4, 4, 3, 3), 1), ((6, 2, 4, 4), 3), ((8, 2, 2, 3, 5), 2),
               ((3, 5, 3, 3), 1), ((4, 6, 4), 2)]


@pytest.mark.parametrize("shape,groups", DIRAC_CASES, ids=str)
def test_dirac_torch_layout_matches_torch(shape, groups, variant):
    torch = require("torch")
    expected = torch.nn.init.dirac_(torch.empty(shape), groups).numpy()
    init = jinit.dirac(groups, centre="ceil", layout="torch")
    np.testing.assert_array_equal(np.asarray(variant(init)(KEY, shape, jnp.float32)), expected)


@pytest.mark.parametrize("shape,groups", DIRAC_CASES, ids=str)
def test_dirac_flax_layout_is_the_transposed_torch_kernel(shape, groups):
    torch = require("torch")
    expected = torch_layout_to_flax(torch.nn.init.dirac_(torch.empty(shape), groups).numpy())
    got = jinit.dirac(groups, centre="ceil", layout="flax")(KEY, expected.shape)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_dirac_floor_centre_is_delta_orthogonals_centre():
    # k = 4 (even): jax's delta_orthogonal puts its tap at (k - 1) // 2 = 1; torch at k // 2 = 2.
    shape = (4, 4, 3, 3)
    ortho_taps = np.argwhere(np.abs(np.asarray(jinit.delta_orthogonal()(KEY, shape))).sum((2, 3)))
    dirac_taps = np.argwhere(np.asarray(jinit.dirac()(KEY, shape)).sum((2, 3)))
    np.testing.assert_array_equal(dirac_taps, ortho_taps)
    assert dirac_taps.tolist() == [[1, 1]]
    ceil_taps = np.argwhere(np.asarray(jinit.dirac(centre="ceil")(KEY, shape)).sum((2, 3)))
    assert ceil_taps.tolist() == [[2, 2]]


def test_dirac_grouped_conv_is_identity():
    # A grouped conv (feature_group_count=2) with a dirac kernel returns its input.
    x = jax.random.normal(jax.random.key(1), (1, 7, 6))
    w = jinit.dirac(groups=2, gain=1.0)(KEY, (3, 3, 6))  # (k, in/groups, out)
    y = jax.lax.conv_general_dilated(x, w, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"),
                                     feature_group_count=2)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-6)


def test_dirac_gain_int_dtype_repr():
    w = jinit.dirac(gain=3)(KEY, (1, 2, 2), jnp.int32)
    assert w.dtype == jnp.int32 and int(w.sum()) == 6
    assert repr(jinit.dirac(2, layout="torch")).startswith(
        "Dirac(groups=2, centre='floor', layout='torch'")


def test_dirac_bad_input():
    with pytest.raises(jinit.InitializerArgumentError, match="groups must be a positive int"):
        jinit.dirac(0)
    with pytest.raises(jinit.InitializerArgumentError, match="groups must be a positive int"):
        jinit.dirac(1.5)
    with pytest.raises(jinit.InitializerArgumentError, match=r"centre must be one of"):
        jinit.dirac(centre="middle")
    with pytest.raises(jinit.InitializerArgumentError, match=r"layout must be one of"):
        jinit.dirac(layout="nchw")
    with pytest.raises(jinit.ShapeError, match=r"output channels \(6, axis 0.*groups=4"):
        jinit.dirac(4, layout="torch")(KEY, (6, 2, 3))
    with pytest.raises(jinit.ShapeError, match="at least 3 dimensions"):
        jinit.dirac()(KEY, (4, 4))


# --- sparse ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows,sparsity", [(10, 0.25), (100, 0.3), (7, 0.0), (5, 1.0)])
def test_sparse_zeros_exactly_ceil_per_column(rows, sparsity, variant):
    w = np.asarray(variant(jinit.sparse(sparsity, std=0.5))(KEY, (rows, 40), jnp.float32))
    # N(0, std) is never exactly zero, so every zero is one of the masked rows.
    assert ((w == 0).sum(axis=0) == math.ceil(sparsity * rows)).all()


def test_sparse_zero_rows_are_uniform_and_values_match_torch():
    torch = require("torch")
    from scipy import stats

    rows, cols, sparsity, std = 10, 20_000, 0.3, 0.02
    w = np.asarray(jinit.sparse(sparsity, std)(KEY, (rows, cols)))
    # Each row is zeroed in a column w.p. 0.3: 6 binomial sigmas over 20k columns.
    freq = (w == 0).mean(axis=1)
    assert np.abs(freq - 0.3).max() < 6 * math.sqrt(0.3 * 0.7 / cols)
    torch.manual_seed(0)
    t = torch.nn.init.sparse_(torch.empty(rows, cols), sparsity, std).numpy()
    ours, theirs = w[w != 0], t[t != 0]
    assert ours.size == theirs.size == 140_000
    # Two-sample KS with 140k samples each: p > 0.001 (fixed seeds, so deterministic).
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    # The std of 140k normal draws has relative standard error 1/sqrt(2N) ~ 0.0019.
    assert abs(ours.std() / std - 1) < 6 / math.sqrt(2 * ours.size)


def test_sparse_low_precision_and_vmap():
    assert jinit.sparse(0.5)(KEY, (4, 3), jnp.bfloat16).dtype == jnp.bfloat16
    keys = jax.random.split(KEY, 3)
    init = jinit.sparse(0.5)
    batched = jax.vmap(lambda k: init(k, (6, 4)))(keys)
    for k, b in zip(keys, batched, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(init(k, (6, 4))))


def test_sparse_bad_input():
    with pytest.raises(jinit.ShapeError, match=r"needs a 2-D \(rows, cols\) weight.*\(2, 3, 4\)"):
        jinit.sparse(0.1)(KEY, (2, 3, 4))
    with pytest.raises(jinit.ShapeError, match="at least 2 dimensions"):
        jinit.sparse(0.1)(KEY, (4,))
    with pytest.raises(jinit.InitializerArgumentError, match=r"sparsity must be a fraction"):
        jinit.sparse(1.5)
    with pytest.raises(jinit.InitializerArgumentError, match=r"sparsity must be >= 0"):
        jinit.sparse(-0.1)
    with pytest.raises(jinit.InitializerArgumentError, match="std must be finite"):
        jinit.sparse(0.1, std=float("nan"))
    with pytest.raises(jinit.DTypeError, match="cannot produce dtype int32"):
        jinit.sparse(0.1)(KEY, (3, 3), jnp.int32)


# --- bilinear ----------------------------------------------------------------------------------


def mxnet_bilinear(shape):
    """mxnet.initializer.Bilinear._init_weight, verbatim in numpy (OIHW)."""
    weight = np.zeros(np.prod(shape), dtype="float32")
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    for i in range(np.prod(shape)):
        x = i % shape[3]
        y = (i // shape[3]) % shape[2]
        weight[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return weight.reshape(shape)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 1, 3, 3), (2, 1, 5, 5), (1, 2, 3, 5),
                                   (1, 1, 6, 2)], ids=str)
def test_bilinear_matches_mxnet_formula(shape, variant):
    expected = mxnet_bilinear(shape)
    mx_layout = jinit.bilinear(layout="mxnet", factor_from="last")
    np.testing.assert_allclose(np.asarray(variant(mx_layout)(KEY, shape, jnp.float32)), expected,
                               rtol=1e-6)
    flax = jinit.bilinear(factor_from="last")(KEY, torch_layout_to_flax(expected).shape)
    np.testing.assert_allclose(np.asarray(flax), torch_layout_to_flax(expected), rtol=1e-6)
    if shape[2] == shape[3]:  # square kernels: "own" and "last" agree
        np.testing.assert_allclose(
            np.asarray(jinit.bilinear(layout="torch")(KEY, shape)), expected, rtol=1e-6)


def test_bilinear_own_factors_are_separable():
    def kernel_1d(k):  # the factor of one axis in mxnet's formula, with that axis's own size
        f = math.ceil(k / 2)
        return 1 - np.abs(np.arange(k) / f - (2 * f - 1 - f % 2) / (2 * f))

    w = np.asarray(jinit.bilinear()(KEY, (3, 5, 2, 1, 1)))[..., 0, 0]
    expected = np.einsum("i,j,k->ijk", kernel_1d(3), kernel_1d(5), kernel_1d(2))
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_bilinear_upsamples_by_linear_interpolation():
    # Transposed conv, stride f = 2, kernel 4: interior outputs interpolate a linear ramp exactly.
    x = jnp.arange(6.0).reshape(1, 6, 1)
    w = jinit.bilinear()(KEY, (4, 1, 1))
    y = jax.lax.conv_transpose(x, w, (2,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))
    interior = np.asarray(y[0, 2:-2, 0])
    np.testing.assert_allclose(np.diff(interior), 0.5, rtol=1e-6)


def test_bilinear_bad_input():
    with pytest.raises(jinit.DTypeError, match="fractional weights.*int32"):
        jinit.bilinear()(KEY, (4, 4, 1, 1), jnp.int32)
    with pytest.raises(jinit.ShapeError, match="at least 3 dimensions"):
        jinit.bilinear()(KEY, (4, 4))
    with pytest.raises(jinit.InitializerArgumentError, match="factor_from must be one of"):
        jinit.bilinear(factor_from="first")
    with pytest.raises(jinit.InitializerArgumentError, match="layout must be one of"):
        jinit.bilinear(layout="oihw")


# --- gate biases -------------------------------------------------------------------------------


def test_lstm_forget_bias_matches_mxnet_lstmbias_formula(variant):
    hidden, forget_bias = 5, 1.5
    expected = np.zeros(4 * hidden, np.float32)
    expected[hidden:2 * hidden] = forget_bias  # mxnet.init.LSTMBias: arr[H:2H] = forget_bias
    got = variant(jinit.lstm_forget_bias(forget_bias))(KEY, (4 * hidden,), jnp.float32)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_gate_bias_orders_values_and_leading_axes():
    b = np.asarray(jinit.gate_bias("ijfo", f=1.0, j=-2.0, default=0.5)(KEY, (2, 8)))
    np.testing.assert_array_equal(b, np.broadcast_to([.5, .5, -2, -2, 1, 1, .5, .5], (2, 8)))
    assert jinit.lstm_forget_bias(order="igfo")(KEY, (4,), jnp.int32).tolist() == [0, 0, 1, 0]
    assert jinit.gate_bias("rzn")(KEY, (3,)).tolist() == [0.0, 0.0, 0.0]
    assert jinit.gate_bias(f=2.0) == jinit.lstm_forget_bias(2.0)  # hashable, comparable


@pytest.mark.slow
def test_lstm_forget_bias_matches_keras_unit_forget_bias():
    keras = require("keras")
    layer = keras.layers.LSTM(3, unit_forget_bias=True)
    layer.build((1, 2, 4))
    expected = np.asarray(layer.cell.bias.numpy())
    got = jinit.lstm_forget_bias(order="ifco")(KEY, expected.shape)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_gate_bias_bad_input():
    with pytest.raises(jinit.InitializerArgumentError, match="distinct gate letters"):
        jinit.gate_bias("iffo")
    with pytest.raises(jinit.InitializerArgumentError, match="gate 'x' is not in order='ifgo'"):
        jinit.gate_bias(x=1.0)
    with pytest.raises(jinit.InitializerArgumentError, match="gate_bias: f must be finite"):
        jinit.gate_bias(f=float("inf"))
    with pytest.raises(jinit.ShapeError, match=r"\(10\) must be n_gates \* hidden = 4 \* H"):
        jinit.lstm_forget_bias()(KEY, (10,))
    with pytest.raises(jinit.ShapeError, match="at least 1 dimensions"):
        jinit.lstm_forget_bias()(KEY, ())


def test_chrono_defining_property():
    from scipy import stats

    hidden, t_max = 50_000, 100.0
    b = np.asarray(jinit.chrono(t_max)(KEY, (4 * hidden,)), np.float64)
    b_i, b_f, b_g, b_o = np.split(b, 4)
    np.testing.assert_array_equal(b_i, -b_f)
    assert not b_g.any() and not b_o.any()
    # exp(b_f) ~ U[1, t_max - 1]: one-sample KS on 50k draws, p > 0.001.
    assert stats.kstest(np.exp(b_f), stats.uniform(1, t_max - 2).cdf).pvalue > 1e-3


def test_chrono_bad_input():
    with pytest.raises(jinit.InitializerArgumentError, match="t_max .* must be > 2"):
        jinit.chrono(2)
    with pytest.raises(jinit.InitializerArgumentError, match="must contain the input gate"):
        jinit.chrono(10, order="rzn")


# --- shared: jit/eager, vmap over keys, reprs -----------------------------------------------------

ALL = {
    "identity": (jinit.identity(2.0), (3, 4)),
    "dirac": (jinit.dirac(2, layout="torch"), (4, 2, 3, 3)),
    "sparse": (jinit.sparse(0.3), (8, 6)),
    "bilinear": (jinit.bilinear(), (4, 4, 2, 3)),
    "gate_bias": (jinit.gate_bias("ifco", f=1.0, o=-1.0), (12,)),
    "chrono": (jinit.chrono(20.0), (16,)),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_jit_equals_eager_and_vmap_equals_loop(name):
    init, shape = ALL[name]
    eager = init(KEY, shape, jnp.float32)
    jitted = jax.jit(init, static_argnums=(1, 2))(KEY, shape, jnp.float32)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6)
    keys = jax.random.split(KEY, 3)
    batched = jax.vmap(lambda k: init(k, shape))(keys)
    for k, b in zip(keys, batched, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(init(k, shape)), rtol=1e-6)
    assert hash(init) == hash(eval("jinit." + repr(init), {"jinit": jinit, "float32": None}))


def test_empty_bilinear_and_complex_chrono():
    # QA regressions: a zero-size spatial axis divided by zero; chrono leaked a jax ValueError.
    assert jinit.bilinear()(KEY, (0, 4, 2, 2)).shape == (0, 4, 2, 2)
    with pytest.raises(jinit.DTypeError, match="real numbers"):
        jinit.chrono(10.0)(KEY, (8,), jnp.complex64)
