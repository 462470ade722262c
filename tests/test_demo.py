"""``python -m jinit demo``: the command line and the core walk-through, run in-process."""

from __future__ import annotations

import contextlib
import io
import math
import re

import pytest

from jinit import __main__ as cli
from jinit import _demos
from jinit._demos import core


@pytest.fixture(scope="module")
def computed():
    import jax

    return core.compute(jax.random.key(0))


@pytest.fixture(scope="module")
def core_output(computed) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        core.render(*computed)
    return out.getvalue()


def test_core_prints_every_recipe_with_its_code(core_output):
    for i, recipe in enumerate(core.RECIPES, 1):
        assert f"\n{i}. {recipe.title}\n" in core_output
        assert recipe.code.split("\n")[0] in core_output
    assert "Dense(8) -> relu -> Dense(1)" in core_output
    assert core_output.count("y = mlp(x)") == len(core.RECIPES)


def test_core_rows_are_aligned(core_output):
    rows = [line for line in core_output.splitlines() if re.match(r"   Dense_\d/(kernel|bias) ", line)]
    assert len(rows) == 4 * len(core.RECIPES)
    assert len({len(line) for line in rows}) == 1  # one fixed-width table
    assert not re.search(r"-0\.000\b", core_output)


def test_core_custom_distribution_table(core_output):
    # 131,072 draws per form: a proportion's standard error is <= sqrt(0.25 / N) ~ 0.0014, so
    # the printed (3-decimal) values are within 0.01 of the expectation.
    for label, _, p in core.CUSTOM_EVENTS:
        match = re.search(re.escape(label) + r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", core_output)
        assert match, label
        mixture, masked, expected = map(float, match.groups())
        assert expected == p and abs(mixture - p) < 0.01 and abs(masked - p) < 0.01


def test_core_redrawn_std_matches_expected(computed):
    all_rows, _ = computed
    checked = 0
    for recipe, rows in zip(core.RECIPES, all_rows, strict=True):
        for row in rows:
            if row.get("redrawn") is None:
                continue
            n = core.REDRAWS * math.prod(row["shape"])
            # The sample variance's relative s.e. is sqrt((kurtosis - 1) / N) <= sqrt(2 / N) for
            # every distribution here (normal, truncated normal, uniform, the mixture): 6 s.e.
            rel = row["redrawn"] ** 2 / row["expected"] ** 2 - 1
            assert abs(rel) < 6 * math.sqrt(2 / n), (recipe.title, row["name"])
            checked += 1
    assert checked == 17


def test_cli_lists_sections(capsys):
    assert cli.main(["demo", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "core" in names


def test_cli_rejects_unknown_section_and_command():
    with pytest.raises(SystemExit, match="unknown demo section"):
        _demos.run(["nope"])
    with pytest.raises(SystemExit):
        cli.main(["no-such-command"])


@pytest.mark.slow
def test_interop_section_shows_every_framework_and_no_log_noise():
    """With PyTorch, TensorFlow and MXNet installed (as `make demo` installs them), the tour
    ports the MLP to all three, and their native log lines (absl, oneDNN, TF C++) stay out of
    the output. Run as a subprocess: native logging writes to file descriptor 2 directly."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the demo must silence TensorFlow by itself
    proc = subprocess.run([sys.executable, "-m", "jinit", "demo", "--section", "interop"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "skipped" not in out
    for name in ("PyTorch", "Keras (TF)", "MXNet Gluon"):
        assert f"{name}: 4 parameters loaded" in out
    assert re.search(r"max \|diff\|(\s+\d\.\d\de[-+]\d\d){3}", out)
    noise = [line for line in out.splitlines()
             if re.match(r"[IWEF]\d{4} |WARNING: All log messages|.*oneDNN|.*tensorflow/|"
                         r"\[\d\d:\d\d:\d\d\] ", line)]
    assert not noise, noise
    assert proc.stderr.strip() == ""
