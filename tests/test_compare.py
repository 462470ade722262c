"""``jinit compare``: the names it knows, the checks before drawing, the KS test and the figure."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

from jinit._cli import UsageError
from jinit._demos import compare


@pytest.mark.slow  # imports torch, keras and mxnet
def test_every_listed_name_exists_in_its_framework():
    # --list promises a comparison for each name: the framework must have the counterpart.
    for framework in ("torch", "keras", "mxnet"):
        require(framework)
    listed = compare.names()
    assert {n.partition(".")[0] for n in listed} == set(compare.FRAMEWORKS)
    for qualified in listed:
        framework, _, name = qualified.partition(".")
        assert compare.reference(framework, name, {}).label, qualified


def test_names_are_initializers_only():
    listed = set(compare.names())
    for not_an_initializer in ("torch.defaults", "torch.calculate_gain", "torch.TruncNormal",
                               "jax.compute_fans", "jax.rules", "jax.select", "jax.Initializer",
                               "jax.chrono", "mxnet.MXNetBilinear"):
        assert not_an_initializer not in listed
    assert {"torch.zeros", "keras.zeros", "mxnet.zero", "jax.zeros"} <= listed
    assert not any(n.partition(".")[2].startswith("_") for n in listed)


def test_torch_samples_match():
    require("torch")
    c = compare.compare("kaiming_uniform", "torch", (256, 512), kwargs={"a": 0.5})
    # Same U(-b, b) law, n = m = 131072: the 0.1% KS critical value is 1.95*sqrt(2/n) = 0.0076.
    assert c.framework == "torch" and c.ks()[0] < 0.0076


@pytest.mark.parametrize("name, framework, kwargs, match", [
    ("caffe.xavier", None, {}, "unknown framework 'caffe'"),
    ("pytorch.xavier_uniform", None, {}, "Did you mean 'torch'"),
    ("torch.xavier_uniform", "keras", {}, "names framework 'torch' but --framework is 'keras'"),
    ("torch.kaiming_unifrom", None, {}, "Did you mean 'torch.kaiming_uniform'"),
    ("torch.glorot_uniform", None, {}, "Did you mean 'keras.glorot_uniform'"),
    ("torch.defaults", None, {}, "is not a leaf initializer"),
    ("jax.chrono", None, {}, "no counterpart in jax.nn.initializers"),
    ("torch.zeros", None, {"a": 1}, "--arg a: jinit.compat.torch.zeros has no argument 'a'"),
    ("torch.kaiming_uniform", None, {"mdoe": "fan_in"}, "--arg mdoe: .*Did you mean 'mode'"),
    ("torch.kaiming_uniform", None, {"mode": "fan_middle"}, "--arg mode='fan_middle': .*mode "
     "must be one of"),
    ("jax.lecun_normal", None, {"in_axis": "x"}, "--arg in_axis='x'"),
])
def test_bad_names_and_arguments(name, framework, kwargs, match):
    with pytest.raises(UsageError, match=match):
        compare.compare(name, framework, (4, 4), kwargs=kwargs)


def test_framework_side_arguments_are_checked_before_drawing():
    require("torch")
    # jinit's layout= has no torch counterpart: named, with the framework function.
    with pytest.raises(UsageError, match="--arg layout: torch.nn.init.kaiming_uniform_ has no "
                       "argument 'layout'"):
        compare.compare("torch.kaiming_uniform", kwargs={"layout": "flax"})
    with pytest.raises(UsageError, match="torch has no initializer matching jinit's 'no_such'"):
        compare.reference("torch", "no_such", {})


def test_bad_shape_names_the_shape():
    with pytest.raises(UsageError, match="--shape 5: .*at least 2 dimensions"):
        compare.compare("jax.lecun_normal", shape=(5,))


def test_out_is_checked(tmp_path):
    with pytest.raises(UsageError, match="--out .*: the folder .* does not exist"):
        compare.check_out(str(tmp_path / "missing" / "x.png"))
    with pytest.raises(UsageError, match=r"unsupported file type '.bmp'; use one of .*\.png"):
        compare.check_out(str(tmp_path / "x.bmp"))
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        compare.check_out(str(tmp_path / "d.png"))
    compare.check_out(str(tmp_path / "ok.svg"))  # nothing written yet
    assert not (tmp_path / "ok.svg").exists()


def test_kwarg_parsing():
    assert compare._kwarg("a=0.5") == ("a", 0.5)
    assert compare._kwarg("mode=fan_out") == ("mode", "fan_out")
    with pytest.raises(Exception, match="NAME=VALUE"):
        compare._kwarg("oops")
    with pytest.raises(UsageError, match="--arg a given twice"):
        compare._kwargs([("a", 1), ("a", 2)])


def test_ks_2samp_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    for n, m, shift in [(200, 300, 0.0), (2000, 1500, 0.0), (2000, 1500, 0.1), (50, 60, 0.3)]:
        a, b = rng.normal(size=n), rng.normal(size=m) + shift
        d, p = compare.ks_2samp(a, b)
        ref = stats.ks_2samp(a, b, method="asymp")
        assert d == pytest.approx(ref.statistic, abs=1e-12)
        # Stephens' asymptotic form vs scipy's exact one-sample law at n_eff: ~0.006 apart here.
        assert p == pytest.approx(ref.pvalue, abs=0.01), (n, m, shift)
    x = np.linspace(0.01, 4, 400)
    assert max(abs(compare._kolmogorov_sf(v) - stats.kstwobign.sf(v)) for v in x) < 1e-12


def test_figure_annotations():
    c = compare.compare("jax.variance_scaling", shape=(64, 48),
                        kwargs={"scale": 2.0, "mode": "fan_out", "distribution": "uniform"})
    fig = compare.figure(c)
    title = fig.get_suptitle()
    args = "scale=2.0, mode='fan_out', distribution='uniform'"
    assert f"jinit.variance_scaling({args}) vs jax.nn.initializers.variance_scaling({args})" \
        in title
    d, p = c.ks()
    assert f"Kolmogorov-Smirnov statistic {d:.4f}, p-value {p:.3g}" in title
    assert "(64, 48), 3,072 values each" in title
    left, right = fig.axes
    assert [t.get_text().split(":")[0] for t in left.get_legend().get_texts()] == [
        "jinit.variance_scaling", "jax.nn.initializers.variance_scaling"]
    reference = [line for line in right.get_lines()
                 if line.get_label() == "y = x (identical distributions)"]
    assert len(reference) == 1 and reference[0].get_linestyle() == "--"
    xs, ys = reference[0].get_data()
    assert np.array_equal(xs, ys)
    assert "y = x (identical distributions)" in [t.get_text() for t in
                                                 right.get_legend().get_texts()]


def test_writes_the_figure(tmp_path):
    out = tmp_path / "c.png"
    c = compare.compare("jax.lecun_normal", shape=(64, 48), out=str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert c.ours.shape == c.theirs.shape == (64, 48)
