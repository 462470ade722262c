"""The ``jinit`` command: a user's mistake is one line on stderr and exit status 2."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import tomllib

import jinit.__main__
from jinit import _cli
from jinit._demos import compare

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _fails(capsys, argv: list[str]) -> str:
    """Runs the command in-process; asserts exit 2 with one stderr line; returns that line."""
    with pytest.raises(SystemExit) as e:
        _cli.main(argv)
    captured = capsys.readouterr()
    assert e.value.code == 2, argv
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"jinit {argv[0]}: error: ") or captured.err.startswith(
        "jinit: error: "), captured.err
    return captured.err


@pytest.mark.parametrize("argv, expected", [
    (["compare", "torch.kaiming_unifrom"],
     "no initializer 'torch.kaiming_unifrom'. Did you mean 'torch.kaiming_uniform'"),
    (["compare", "kaiming_unifrom", "--framework", "torch"],
     "Did you mean 'torch.kaiming_uniform'"),
    (["compare", "caffe.xavier"], "unknown framework 'caffe'"),
    (["compare"], "give an initializer NAME"),
    (["compare", "torch.kaiming_uniform", "--arg", "oops"], "expected NAME=VALUE, got 'oops'"),
    (["compare", "torch.kaiming_uniform", "--arg", "mode=fan_middle"], "--arg mode='fan_middle'"),
    (["compare", "torch.kaiming_uniform", "--arg", "slope=1"], "--arg slope: "),
    (["compare", "torch.kaiming_uniform", "--shape", "0"], "a dimension must be a positive"),
    (["compare", "torch.kaiming_uniform", "--out", "/no/such/folder/x.png"],
     "--out /no/such/folder/x.png: the folder '/no/such/folder' does not exist"),
    (["compare", "torch.kaiming_uniform", "--out", "hist.bmp"], "unsupported file type '.bmp'"),
    (["demo", "tres"], "unknown demo section 'tres'. Did you mean 'trees'?"),
    (["demo", "--section", "nope"], "unknown demo section 'nope'"),
    (["no-such-command"], "invalid choice: 'no-such-command'"),
])
def test_mistakes_are_one_line_exit_2(capsys, argv, expected):
    assert expected in _fails(capsys, argv)


def test_suggestions_are_initializer_names_only(capsys):
    # Near-misses of a helper, a module, a tree initializer: only comparable names come back.
    known = set(compare.names())
    for typo in ("torch.calculate_gian", "jax.compat", "torch.defautls", "jax.rulse",
                 "torch.kaiming_unifrom"):
        err = _fails(capsys, ["compare", typo])
        suggested = re.findall(r"'([\w.]+)'", err.partition("Did you mean ")[2])
        assert set(suggested) <= known, err


def test_list(capsys):
    assert _cli.main(["compare", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == compare.names() and "torch.kaiming_uniform" in listed
    assert all(n.partition(".")[0] in compare.FRAMEWORKS for n in listed)


def test_out_is_checked_before_the_framework_is_touched():
    # In a fresh interpreter: a bad --out fails without importing torch (nothing was drawn).
    code = ("import sys\nfrom jinit._cli import main\n"
            "try:\n    main(['compare', 'torch.kaiming_uniform', '--out', '/no/such/x.png'])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.stdout.split() == ["2", "False"], run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and "does not exist" in run.stderr


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.mark.parametrize("blocked, argv, hint", [
    ("matplotlib", ["compare", "jax.lecun_normal", "--out", "x.png"], 'jinit[plot]'),
    ("torch", ["compare", "torch.kaiming_uniform", "--out", "x.png"], 'jinit[torch]'),
    ("flax", ["demo", "core"], 'jinit[flax]'),
])
def test_missing_extra_says_what_to_install(tmp_path, blocked, argv, hint):
    # The package is made unimportable in a subprocess (as if not installed).
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            f"from jinit._cli import main; main({argv!r})")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=_env(), timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert f'{blocked} is not installed; run: pip install "{hint}"' in run.stderr
    assert not (tmp_path / "x.png").exists()


def test_python_dash_m_is_the_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["jinit"].partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is _cli.main is jinit.__main__.main
    run = subprocess.run([sys.executable, "-m", "jinit", "compare", "torch.kaiming_unifrom"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [
        "python -m jinit compare: error: no initializer 'torch.kaiming_unifrom'. Did you mean "
        "'torch.kaiming_uniform', 'torch.kaiming_normal' or 'jax.kaiming_uniform'? "
        "(jinit compare --list shows all)"]


def test_install_hints_name_real_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert set(_cli.EXTRAS.values()) <= set(extras)
