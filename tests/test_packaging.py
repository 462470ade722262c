"""The distribution: metadata, a complete sdist, and an install from it whose tests run.

The sdist is built from a copy of this tree with the installed setuptools (no network), the way
``python -m build --sdist --no-isolation`` does.
"""

from __future__ import annotations

import email
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAME = "jinit-0.1.0"
#: Build state and caches: never shipped, never copied.
LOCAL = ("__pycache__", "*.pyc", "*.egg-info", ".git", ".jax_cache", ".pytest_cache",
         ".ruff_cache", "build", "dist", "_build")
SHIPPED_TREES = ("jinit", "interop", "tests", "docs", "benchmarks")


def _python(code: str, cwd: pathlib.Path, **env: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, pathlib.Path]:
    tmp = tmp_path_factory.mktemp("dist")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*LOCAL))
    (tmp / "out").mkdir()
    (tmp / "meta").mkdir()
    sdist = _python("import os; from setuptools import build_meta as b; "
                    "print(b.build_sdist(os.environ['OUT']))", src, OUT=str(tmp / "out"))
    dist_info = _python("import os; from setuptools import build_meta as b; "
                        "print(b.prepare_metadata_for_build_wheel(os.environ['OUT']))", src,
                        OUT=str(tmp / "meta"))
    with tarfile.open(tmp / "out" / sdist) as tar:
        tar.extractall(tmp, filter="data")
    return {"tmp": tmp, "sdist": tmp / "out" / sdist, "unpacked": tmp / NAME,
            "metadata": tmp / "meta" / dist_info / "METADATA",
            "entry_points": tmp / "meta" / dist_info / "entry_points.txt"}


def _source_files() -> set[str]:
    """Every file of the shipped folders in this tree (build state and links excluded)."""
    out = set()
    for top in SHIPPED_TREES:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT)
            if path.is_file() and not any(
                    pathlib.PurePath(part).match(p) for part in rel.parts for p in LOCAL) and not \
                    any(parent.is_symlink() for parent in [path, *path.parents]):
                out.add(rel.as_posix())
    return out


def test_sdist_is_complete(built):
    with tarfile.open(built["sdist"]) as tar:
        shipped = {n.removeprefix(NAME + "/") for n in tar.getnames()}
    missing = _source_files() - shipped
    assert not missing, f"not in the sdist: {sorted(missing)}"
    assert {"LICENSE", "PYPI.md", "README.md", "Makefile", "pyproject.toml", "tests/conftest.py",
            "tests/_stats.py", "tests/_defaults_harness.py", "tests/interop/_arrays.py",
            "docs/conf.py"} <= shipped
    assert not [n for n in shipped if "__pycache__" in n or n.endswith(".pyc")
                or n.startswith(("docs/_build", "jinit/interop"))]


def test_metadata(built):
    for meta_file in (built["unpacked"] / "PKG-INFO", built["metadata"]):
        meta = email.message_from_string(meta_file.read_text(encoding="utf-8"))
        assert meta["License-Expression"] == "Apache-2.0" and meta["License"] is None
        assert meta.get_all("License-File") == ["LICENSE"]
        assert not [c for c in meta.get_all("Classifier") if c.startswith("License ::")]
        assert "Typing :: Typed" in meta.get_all("Classifier")
        assert meta["Description-Content-Type"] == "text/markdown"
        description = meta.get_payload()
        assert description.strip() == (ROOT / "PYPI.md").read_text(encoding="utf-8").strip()
        assert len(description.encode()) < 5_000
    license_text = (built["unpacked"] / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert "jinit = jinit._cli:main" in built["entry_points"].read_text()


@pytest.mark.slow
def test_sdist_installs_and_its_tests_run(built):
    site, unpacked = built["tmp"] / "site", built["unpacked"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site),
                    str(built["sdist"])], check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(site)}
    # The console script, installed from the sdist: a typo is one line, exit 2.
    run = subprocess.run([str(site / "bin" / "jinit"), "compare", "torch.kaiming_unifrom"],
                         capture_output=True, text=True, env=env, cwd=unpacked, timeout=300)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("jinit compare: error: ") and "torch.kaiming_uniform" in run.stderr
    # The sdist's own tests, against the installed package (-P: the unpacked jinit/, which has
    # no jinit/interop, is not on the path) ...
    where = _python("import jinit, jinit.interop; print(jinit.interop.__file__)", unpacked,
                    PYTHONPATH=str(site), PYTHONSAFEPATH="1")
    assert where.startswith(str(site)), where
    tests = ["tests/test_core_errors.py", "tests/interop/test_interop_lazy.py"]
    run = subprocess.run([sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *tests], capture_output=True, text=True, env=env, cwd=unpacked,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    # ... and from the unpacked tree itself (its jinit/ first on the path).
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_core_jax_compat.py::test_every_jax_name_exists_with_same_"
                          "signature"], capture_output=True, text=True, cwd=unpacked,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]


def test_pypi_description_code_runs():
    text = (ROOT / "PYPI.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    out = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rule 1 ('.*/kernel')" in out.stdout and "total: 2 leaves" in out.stdout
