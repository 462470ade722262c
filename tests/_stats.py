"""Helpers shared by the compat tests: draw >= 100k values, compare two samples, layouts.

Thresholds (all seeds are fixed, so every test is deterministic):

* Two-sample Kolmogorov-Smirnov, p > ``KS_P_MIN`` = 1e-4. Under the null the p-value is
  U(0, 1): with ~150 KS comparisons in the compat suites, a correct implementation had a ~1.5%
  chance of being flagged when the seeds were chosen. Power at N = M = 1e5: the critical
  statistic is D ~= 1.93 * sqrt(2/N) ~= 0.0087, i.e. a 3.6% std change of a normal, any mean
  shift of 0.02 std, or a truncation-vs-none mistake are rejected.
* Sample std vs the analytic std: relative error < 6 standard errors. The standard error of
  a sample std is sqrt((kurtosis - 1) / (4N)) <= 1/sqrt(2N) for the normal, uniform and
  truncated-normal families (kurtosis <= 3), so the tolerance is 6/sqrt(2N) (1.3% at 1e5).
* Bounds: every value inside the analytic bound (1e-6 relative slack for float32 rounding of
  the bound itself), and the extreme value within 1% of it: for U(-b, b) and the +-2 std
  truncated normals P(no value within 1% of the bound) < exp(-200) at N = 1e5.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from scipy import stats

KS_P_MIN = 1e-4
N_MIN = 100_000
SLACK = 1e-6


def reps(shape: tuple[int, ...], n_min: int = N_MIN) -> int:
    """How many draws of ``shape`` give at least ``n_min`` values."""
    return max(1, math.ceil(n_min / max(1, math.prod(shape))))


def draw_jinit(init, shape, seed: int = 0, n_min: int = N_MIN) -> np.ndarray:
    """``reps(shape)`` independent draws, stacked: ``(reps, *shape)`` float64."""
    key = jax.random.key(seed)
    return np.stack([np.asarray(init(jax.random.fold_in(key, r), shape), np.float64)
                     for r in range(reps(shape, n_min))])


def std_tol(n: int) -> float:
    return 6 / math.sqrt(2 * n)


def check_same_distribution(ours, theirs, *, std: float | None = None, lo: float | None = None,
                            hi: float | None = None, tight: bool = True) -> None:
    """KS test of ``ours`` vs ``theirs``; both samples' std and bounds vs the analytic values."""
    ours = np.ravel(np.asarray(ours, np.float64))
    theirs = np.ravel(np.asarray(theirs, np.float64))
    assert ours.size >= N_MIN and theirs.size >= N_MIN, (ours.size, theirs.size)
    p = stats.ks_2samp(ours, theirs).pvalue
    assert p > KS_P_MIN, f"KS two-sample p={p:.3g} <= {KS_P_MIN} (N={ours.size}, M={theirs.size})"
    for name, x in (("jinit", ours), ("framework", theirs)):
        if std is not None:
            rel = abs(x.std() / std - 1)
            assert rel < std_tol(x.size), f"{name}: std {x.std():.6g} vs {std:.6g} ({rel:.2%})"
        if lo is not None:
            assert x.min() >= lo - SLACK * abs(lo), f"{name}: min {x.min()} < bound {lo}"
        if hi is not None:
            assert x.max() <= hi + SLACK * abs(hi), f"{name}: max {x.max()} > bound {hi}"
    if tight and lo is not None and hi is not None:
        width = hi - lo
        assert ours.min() < lo + 0.01 * width and ours.max() > hi - 0.01 * width, (
            f"jinit range [{ours.min()}, {ours.max()}] does not reach the bounds [{lo}, {hi}]")


def io_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The Flax/Keras-layout shape ``(*k, in, out)`` of an ``(out, in, *k)`` torch/mxnet shape."""
    return (*shape[2:], shape[1], shape[0])


def to_oi(draws: np.ndarray) -> np.ndarray:
    """Stacked Flax-layout draws ``(reps, *k, in, out)`` -> ``(reps, out, in, *k)``."""
    nd = draws.ndim - 1
    return np.transpose(draws, (0, nd, nd - 1, *range(1, nd - 1)))


def oi_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """torch/mxnet ``(fan_in, fan_out)`` of an ``(out, in, *k)`` shape."""
    rf = math.prod(shape[2:])
    return shape[1] * rf, shape[0] * rf
