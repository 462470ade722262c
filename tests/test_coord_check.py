"""jinit.coord_check: flat activation scales under muP, growing ones under the standard param.

The numbers: a 4-layer ReLU MLP at widths 32..256, 2 Adam steps (lr 1e-2), one seed. Measured
(quiet machine, several seeds): under muP every layer's width exponent after an update is
within +-0.1 of 0; under the standard parametrization (Flax defaults, one LR) the hidden and
output layers' exponent after the first update is 0.3-1.7. The bounds (|g| < 0.25 vs
max g > 0.5) sit between the two with margin on both sides.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
import pytest

import jinit

WIDTHS = (32, 64, 128, 256)


class MLP(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        for _ in range(3):
            x = nn.relu(nn.Dense(self.width)(x))
        return nn.Dense(4)(x)


X = jax.random.normal(jax.random.key(1), (128, 16))
Y = jax.random.normal(jax.random.key(2), (128, 4))


def _mup(width):
    base = jax.eval_shape(MLP(WIDTHS[0]).init, jax.random.key(0), X)["params"]
    return jinit.rules((".*/bias", jinit.zeros), jinit.mup(jinit.lecun_normal(), base=base))


@pytest.fixture(scope="module")
def checks():
    kw = dict(widths=WIDTHS, steps=2, seeds=1)
    return (jinit.coord_check(MLP, _mup, X, Y, **kw),
            jinit.coord_check(MLP, lambda w: jinit.compat.flax.defaults(), X, Y, **kw))


@pytest.mark.slow
def test_mup_is_flat_and_standard_param_grows(checks):
    mup, sp = checks
    assert mup.layers == sp.layers == ("Dense_0", "Dense_1", "Dense_2", "Dense_3", "output")
    assert mup.scales.shape == (3, len(WIDTHS), 5) and np.isfinite(mup.scales).all()
    for step in (1, 2):
        g = mup.growth(step)
        assert max(abs(v) for v in g.values()) < 0.25, (step, g)
        # The ratio of the widest to the narrowest width's scale stays within 8^0.25 = 1.7.
        ratio = mup.scales[step, -1] / mup.scales[step, 0]
        assert (ratio < 8**0.25).all() and (ratio > 8**-0.25).all(), ratio
    g = sp.growth(1)
    assert max(g.values()) > 0.5, g
    assert (sp.scales[1, -1, 1:] > sp.scales[1, 0, 1:]).all()  # every layer past the input
    # The input layer is the same under both (Adam on input weights is width-independent).
    assert abs(mup.growth(1)["Dense_0"]) < 0.1 and abs(g["Dense_0"]) < 0.1
    # At initialization both give O(1) hidden activations.
    for c in checks:
        assert all(abs(c.growth(0)[f"Dense_{i}"]) < 0.1 for i in range(3))


@pytest.mark.slow
def test_plot_writes_a_png(checks, tmp_path):
    path = checks[0].plot(tmp_path / "coord.png", title="muP")
    data = (tmp_path / "coord.png").read_bytes()
    assert path == str(tmp_path / "coord.png") and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_mup_lr_is_muP_adam():
    params = jax.eval_shape(MLP(128).init, jax.random.key(0), X)["params"]
    from jinit._coord_check import _rates

    rates = _rates(_mup(128), params, 1e-2, None)  # width_mult 128 / 32 = 4
    assert math.isclose(rates["Dense_0"]["kernel"], 1e-2)          # input: lr
    assert math.isclose(rates["Dense_1"]["kernel"], 1e-2 / 4)      # hidden: lr / width_mult
    assert math.isclose(rates["Dense_3"]["kernel"], 1e-2 / 4)      # output: lr / width_mult
    assert math.isclose(rates["Dense_1"]["bias"], 1e-2)            # vectors: lr
    sp = _rates(_mup(128), params, 1e-2, False)
    assert all(math.isclose(r, 1e-2) for r in jax.tree.leaves(sp))
    with pytest.raises(jinit.InitializerArgumentError, match="mup_lr=True needs"):
        _rates(jinit.compat.flax.defaults(), params, 1e-2, True)


@pytest.mark.parametrize("kwargs", [dict(widths=(32,)), dict(widths=(32, 32)), dict(steps=-1),
                                    dict(seeds=0), dict(lr=0.0), dict(widths="ab")])
def test_bad_arguments(kwargs):
    with pytest.raises(jinit.InitializerArgumentError):
        jinit.coord_check(MLP, _mup, X, **kwargs)


def test_stateful_models_are_refused():
    class WithBN(nn.Module):
        width: int

        @nn.compact
        def __call__(self, x):
            return nn.BatchNorm(use_running_average=True)(nn.Dense(self.width)(x))

    with pytest.raises(jinit.InitializerArgumentError, match="batch_stats"):
        jinit.coord_check(WithBN, lambda w: jinit.compat.flax.defaults(), X, widths=(8, 16))
