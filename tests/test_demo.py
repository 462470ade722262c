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
