"""T-Fixup, DeepNet and ZerO recipes, each against its paper's defining property.

Std checks: a sample std's relative standard error is at most 1/sqrt(2n) for the normal and
uniform families, so "within 6 standard errors" is ``6/sqrt(2n)``; every leaf checked has at
least 65k values (tolerance <= 1.7%), and the scale factors tested differ by >= 13%.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import hadamard

import jinit
from jinit import recipes

S = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)  # noqa: E731
D, F = 256, 1024


def _block():
    return {"attn": {n: {"kernel": S(D, D), "bias": S(D)} for n in ("query", "key", "value", "out")},
            "mlp": {"Dense_0": {"kernel": S(D, F)}, "Dense_1": {"kernel": S(F, D)}}}


def _stack(n, prefix="block"):
    return {f"{prefix}_{i}": _block() for i in range(n)}


def _std_ok(x, want):
    x = np.asarray(x, np.float64)
    rel = abs(x.std() / want - 1)
    assert rel < 6 / math.sqrt(2 * x.size), (x.std(), want, rel)


def _xavier(fan_in, fan_out):
    return math.sqrt(2 / (fan_in + fan_out))


def _check_block(block, scale):
    """Value/out/MLP weights are Xavier × scale; query/key plain Xavier; biases 0."""
    for n in ("value", "out"):
        _std_ok(block["attn"][n]["kernel"], _xavier(D, D) * scale)
    _std_ok(block["mlp"]["Dense_0"]["kernel"], _xavier(D, F) * scale)
    _std_ok(block["mlp"]["Dense_1"]["kernel"], _xavier(F, D) * scale)
    for n in ("query", "key"):
        _std_ok(block["attn"][n]["kernel"], _xavier(D, D))
    assert not np.asarray(block["attn"]["query"]["bias"]).any()


# --- T-Fixup ------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 12])
def test_t_fixup_decoder_scales_by_9m_to_the_minus_quarter(m):
    tree = {"wte": {"embedding": S(1000, D)}} | _stack(m)
    p = recipes.t_fixup(decoder_layers=m)(jax.random.key(m), tree)
    scale = (9 * m) ** -0.25
    _check_block(p["block_0"], scale)
    _check_block(p[f"block_{m - 1}"], scale)
    _std_ok(p["wte"]["embedding"], D ** -0.5 * scale)  # N(0, 1/d) · (9M)^{-1/4}


def test_t_fixup_encoder_uses_0_67_n_to_the_minus_quarter():
    n = 6
    tree = {"Embed_0": {"embedding": S(1000, D)}} | _stack(n)
    p = recipes.t_fixup(encoder_layers=n)(jax.random.key(0), tree)
    _check_block(p["block_3"], 0.67 * n ** -0.25)
    _std_ok(p["Embed_0"]["embedding"], D ** -0.5 * (9 * n) ** -0.25)


def test_t_fixup_encoder_decoder_scales_each_stack_by_its_depth():
    n, m = 6, 3
    tree = {"encoder": {"embed": {"embedding": S(1000, D)}} | _stack(n),
            "decoder": {"embed": {"embedding": S(1000, D)}} | _stack(m)}
    p = recipes.t_fixup(encoder_layers=n, decoder_layers=m)(jax.random.key(0), tree)
    _check_block(p["encoder"]["block_0"], 0.67 * n ** -0.25)
    _check_block(p["decoder"]["block_0"], (9 * m) ** -0.25)
    _std_ok(p["encoder"]["embed"]["embedding"], D ** -0.5 * (9 * n) ** -0.25)
    _std_ok(p["decoder"]["embed"]["embedding"], D ** -0.5 * (9 * m) ** -0.25)


def test_t_fixup_refuses_names_it_cannot_see():
    tree = {"layer_0": {"proj_a": {"kernel": S(8, 8)}, "proj_b": {"kernel": S(8, 8)}}}
    with pytest.raises(jinit.RuleError):
        recipes.t_fixup(decoder_layers=2)(jax.random.key(0), tree)
    # Encoder-decoder: an encoder selector that matches nothing raises too.
    with pytest.raises(jinit.RuleError):
        recipes.t_fixup(2, 2)(jax.random.key(0), {"dec": _stack(2)})
    for bad in [dict(), dict(encoder_layers=-1), dict(decoder_layers=2.0),
                dict(encoder_layers=True)]:
        with pytest.raises(jinit.InitializerArgumentError):
            recipes.t_fixup(**bad)


# --- DeepNet ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 6, 18, 100, 1000])
def test_deepnet_scales_follow_the_paper(n):
    enc = recipes.deepnet_scales(encoder_layers=n)
    dec = recipes.deepnet_scales(decoder_layers=n)
    for _, alpha, beta in ((enc, enc.encoder_alpha, enc.encoder_beta),
                           (dec, dec.decoder_alpha, dec.decoder_beta)):
        assert math.isclose(alpha**4, 2 * n) and math.isclose(beta**-4, 8 * n)
    assert enc.decoder_beta is None and dec.encoder_alpha is None
    both = recipes.deepnet_scales(encoder_layers=n, decoder_layers=2 * n)
    assert math.isclose(both.encoder_alpha, 0.81 * (n**4 * 2 * n) ** (1 / 16))
    assert math.isclose(both.encoder_beta, 0.87 * (n**4 * 2 * n) ** (-1 / 16))
    assert math.isclose(both.decoder_alpha**4, 3 * 2 * n)
    assert math.isclose(both.decoder_beta**-4, 12 * 2 * n)
    # beta shrinks as depth^{-1/4}: 16x deeper, half the scale.
    assert math.isclose(recipes.deepnet_scales(16 * n).encoder_beta / enc.encoder_beta, 0.5)


def test_deepnet_init_is_xavier_normal_times_beta():
    m = 24
    p = recipes.deepnet(decoder_layers=m)(jax.random.key(1), _stack(2))
    _check_block(p["block_1"], (8 * m) ** -0.25)
    w = np.asarray(p["block_1"]["attn"]["query"]["kernel"])
    assert np.abs(w).max() > 3 * _xavier(D, D)  # untruncated normal (paper: xavier_normal_)


def test_deepnet_encoder_decoder_uses_each_beta():
    n, m = 12, 6
    s = recipes.deepnet_scales(n, m)
    tree = {"Encoder_0": _stack(1), "Decoder_0": _stack(1)}
    p = recipes.deepnet(n, m)(jax.random.key(2), tree)
    _check_block(p["Encoder_0"]["block_0"], s.encoder_beta)
    _check_block(p["Decoder_0"]["block_0"], s.decoder_beta)


# --- ZerO ---------------------------------------------------------------------------------------

SHAPES = [(16, 16), (32, 8), (8, 32), (5, 13), (13, 5), (1, 7), (100, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_zero_is_deterministic_identity_or_hadamard(shape):
    init = recipes.hadamard_identity()
    w = np.asarray(init(jax.random.key(0), shape))
    for key in (jax.random.key(1), jax.random.key(12345)):  # no randomness at all
        np.testing.assert_array_equal(np.asarray(init(key, shape)), w)
    np.testing.assert_array_equal(np.asarray(jax.jit(init, static_argnums=1)(
        jax.random.key(7), shape)), w)
    fan_in, fan_out = shape
    W = w.T  # (out, in), the paper's convention
    if fan_out <= fan_in:  # identity / partial identity
        np.testing.assert_array_equal(W, np.eye(fan_out, fan_in))
    else:  # c * H_m[:out, :in], m = ceil(log2 out), c = 2^{-(m-1)/2}
        m = math.ceil(math.log2(fan_out))
        want = 2 ** (-(m - 1) / 2) * hadamard(2**m)[:fan_out, :fan_in]
        np.testing.assert_allclose(W, want, rtol=1e-7)
    assert np.linalg.matrix_rank(W) == min(shape)  # full rank: no dead units


def test_zero_hadamard_blocks_are_full_rank_everywhere():
    # Every in < out <= 69 would be ~2,300 eager compiles; the edges of each power-of-two
    # band (where the Hadamard cut is tightest) plus a random spread cover the same cases.
    init = recipes.hadamard_identity()
    rng = np.random.default_rng(0)
    edges = [(i, o) for o in (2, 3, 5, 8, 9, 16, 17, 33, 63, 64, 65, 69) for i in (1, o // 2, o - 1)]
    spread = [(int(rng.integers(1, o)), o) for o in rng.integers(2, 70, size=24)]
    for fan_in, fan_out in sorted(set(edges + spread)):
        w = np.asarray(init(jax.random.key(0), (fan_in, fan_out)), np.float64)
        assert np.linalg.matrix_rank(w) == fan_in, (fan_in, fan_out)


def test_zero_conv_kernels_hold_the_matrix_at_the_center():
    w = np.array(recipes.hadamard_identity()(jax.random.key(0), (3, 3, 4, 8)))
    center = w[1, 1].copy()
    np.testing.assert_array_equal(center, np.asarray(
        recipes.hadamard_identity()(jax.random.key(0), (4, 8))))
    w[1, 1] = 0
    assert not w.any()
    torch_w = np.asarray(recipes.hadamard_identity(layout="torch")(jax.random.key(0),
                                                                   (8, 4, 3, 3)))
    np.testing.assert_array_equal(torch_w[:, :, 1, 1], center.T)


def test_zer_o_resnet_blocks_start_as_identity():
    conv = lambda: {"kernel": S(3, 3, 16, 16), "bias": S(16)}  # noqa: E731
    tree = {"stem": {"Conv_0": {"kernel": S(3, 3, 3, 16)}},
            **{f"Block_{i}": {"Conv_0": conv(), "Conv_1": conv(), "BatchNorm_0": {
                "scale": S(16), "bias": S(16)}} for i in range(3)},
            "head": {"kernel": S(16, 10), "bias": S(10)}}
    p = recipes.zer_o()(jax.random.key(0), tree)
    for i in range(3):
        b = p[f"Block_{i}"]
        assert not np.asarray(b["Conv_1"]["kernel"]).any()  # the branch's last layer: 0
        np.testing.assert_array_equal(np.asarray(b["Conv_0"]["kernel"])[1, 1], np.eye(16))
        np.testing.assert_array_equal(b["BatchNorm_0"]["scale"], np.ones(16))
        assert not np.asarray(b["Conv_0"]["bias"]).any()
    np.testing.assert_array_equal(np.asarray(p["head"]["kernel"]).T, np.eye(10, 16))
    again = recipes.zer_o()(jax.random.key(99), tree)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


def test_zer_o_mlp_passes_the_signal_through_a_bottleneck():
    widths = [8, 32, 32, 8, 4]
    tree = {f"Dense_{i}": {"kernel": S(a, b), "bias": S(b)}
            for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False))}
    p = recipes.zer_o(residual=False)(jax.random.key(0), tree)
    x = np.random.default_rng(0).normal(size=(64, 8))
    for i in range(len(widths) - 1):
        x = x @ np.asarray(p[f"Dense_{i}"]["kernel"], np.float64)
    assert np.linalg.matrix_rank(x) == 4  # nothing collapsed


def test_zero_bad_inputs():
    with pytest.raises(jinit.ShapeError, match="at least 2 dimensions"):
        recipes.hadamard_identity()(jax.random.key(0), (4,))
    with pytest.raises(jinit.InitializerArgumentError):
        recipes.hadamard_identity(layout="nchw")
    with pytest.raises(jinit.InitializerArgumentError, match="needs residual=True"):
        recipes.zer_o(residual=False, last=".*")


def test_zero_needs_a_float_dtype():
    with pytest.raises(jinit.DTypeError, match="floating dtype"):
        recipes.hadamard_identity()(jax.random.key(0), (2, 4), jnp.int32)
    assert recipes.hadamard_identity()(jax.random.key(0), (2, 4), jnp.bfloat16).dtype == \
        jnp.bfloat16
