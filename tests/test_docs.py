"""The documentation: the site builds without warnings, every public name has a reference
entry, and every Python code block of the README and the docs pages runs.

A code block runs when it is fenced as ``python``; the blocks of one page run in order in one
namespace, in a fresh interpreter started from the repository root. A block whose first line
is ``# not run: <reason>`` is shown but not run (say why).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
import types
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

#: Modules whose ``__all__`` is the public API; modules named in an ``__all__`` are walked too.
PUBLIC_MODULES = ("jinit", "jinit.compat", "jinit.select", "jinit.recipes", "jinit.flax",
                  "jinit.nnx", "jinit.interop")

MD_PAGES = sorted([README, *DOCS.rglob("*.md")], key=str)
MD_PAGES = [p for p in MD_PAGES if "_build" not in p.parts]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


# --- the site ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
         str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the docs build failed or warned:\n{proc.stderr[-6000:]}"
    return out


def _inventory(site: Path) -> set[str]:
    """The Python objects documented in the site, read from Sphinx's ``objects.inv``."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four header lines, then a zlib stream
        header_end = raw.index(b"\n", header_end) + 1
    names = set()
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        match = re.match(r"(\S+)\s+py:\w+\s", line)
        if match:
            names.add(match.group(1))
    return names


def public_names() -> dict[str, str]:
    """``{public dotted name: name its reference entry has}`` over every public ``__all__``."""
    names: dict[str, str] = {}
    queue, seen = list(PUBLIC_MODULES), set()
    while queue:
        modname = queue.pop(0)
        if modname in seen:
            continue
        seen.add(modname)
        names[modname] = modname
        module = importlib.import_module(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                names[f"{modname}.{name}"] = obj.__name__  # documented as its own module
                if obj.__name__.startswith("jinit"):
                    queue.append(obj.__name__)
            else:
                names[f"{modname}.{name}"] = f"{modname}.{name}"
    return names


def test_every_public_name_has_a_reference_entry(built_site):
    documented = _inventory(built_site)
    names = public_names()
    assert len(names) > 150  # the walk reached every module
    missing = sorted(name for name, entry in names.items() if entry not in documented)
    assert not missing, f"public names without an API reference entry: {missing}"


def test_site_has_the_pages_users_look_for(built_site):
    for page in ("index", "getting_started", "tutorial", "architecture", "api/index",
                 "guides/core", "guides/compat", "guides/structural", "guides/combinators",
                 "guides/trees", "guides/flax", "guides/interop", "guides/research",
                 "guides/porting", "guides/speed", "guides/multihost", "guides/stacked_layers",
                 "guides/errors"):
        assert (built_site / f"{page}.html").is_file(), page
    tutorial = (built_site / "tutorial.html").read_text()
    assert "compare_torch_kaiming_uniform.png" in tutorial
    assert (built_site / "_images" / "compare_torch_kaiming_uniform.png").is_file()


def test_site_cites_nothing_users_cannot_see(built_site):
    """No page, guide or rendered docstring cites internal notes, issues or private calls."""
    for page in built_site.rglob("*.html"):
        text = re.sub(r"<[^>]+>", "", page.read_text())
        match = INTERNAL.search(text)
        assert match is None, f"{page.relative_to(built_site)}: {match.group(0)!r}"


def test_reference_follows_all(monkeypatch):
    """A name added to a module's ``__all__`` gets an entry without editing any page."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        jinit_api = importlib.import_module("jinit_api")
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    module = types.ModuleType("jinit._docs_probe")

    def brand_new(x):
        """A function nobody has documented yet."""

    brand_new.__module__ = module.__name__
    module.brand_new, module.LIMIT = brand_new, 3
    module.__all__ = ["brand_new", "LIMIT"]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    text = jinit_api.render(module.__name__)
    assert ".. autofunction:: jinit._docs_probe.brand_new" in text
    assert ".. py:data:: LIMIT\n   :module: jinit._docs_probe" in text


# --- README -----------------------------------------------------------------------------------

#: What a user cannot follow: project-internal notes, issue numbers, goal tracking.
INTERNAL = re.compile(r"\bissues? #?\d|(?-i:DESIGN)(\.md| decision \d)|reference/\w+\.md|"
                      r"reference B\d|shared notes|/work/|\bgoals?\b.*\bmet\b", re.IGNORECASE)
#: A private name written as something to call or import (``jinit.interop._mxnet.f()``).
PRIVATE = re.compile(r"\bjinit(?:\.\w+)*\._[a-z]\w*")


def test_readme_is_a_short_front_page():
    text = README.read_text()
    assert len(text.encode()) <= 15 * 1024
    assert not INTERNAL.search(text), INTERNAL.search(text)
    assert not PRIVATE.search(text), PRIVATE.search(text)
    for section in ("## Install", "## The two commands", "## 30-second tour", "## Features"):
        assert section in text
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md")),
                                  *sorted((DOCS / "guides").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_link_inside_and_cite_no_internals(page):
    text = page.read_text()
    assert not INTERNAL.search(text), INTERNAL.search(text)
    assert not PRIVATE.search(text), PRIVATE.search(text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: broken link {target}"
        assert ROOT in path.parents, f"{page.name}: link outside the repository {target}"


# --- code blocks ------------------------------------------------------------------------------

def python_blocks(page: Path) -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    return [b for b in blocks if not b.startswith("# not run:")]


RUNNER = textwrap.dedent("""
    import json, sys, traceback
    results = {}
    for path, blocks in json.loads(sys.stdin.read()).items():
        namespace = {"__name__": "__main__"}
        try:
            for i, block in enumerate(blocks):
                exec(compile(block, f"{path} (block {i + 1})", "exec"), namespace)
            results[path] = None
        except BaseException:
            results[path] = traceback.format_exc(limit=-4)
    print("@@RESULTS@@" + json.dumps(results))
""")


@pytest.fixture(scope="module")
def block_results() -> dict[str, str | None]:
    """Runs every page's Python blocks in one fresh interpreter (imports paid once)."""
    pages = {str(p.relative_to(ROOT)): python_blocks(p) for p in MD_PAGES}
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(pages), cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=900)
    marker = proc.stdout.rfind("@@RESULTS@@")
    assert marker >= 0, f"the code-block runner crashed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout[marker + len("@@RESULTS@@"):])


@pytest.mark.slow
@pytest.mark.parametrize("page", MD_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(page, block_results):
    error = block_results[str(page.relative_to(ROOT))]
    assert error is None, error


def test_readme_has_code_blocks():
    assert len(python_blocks(README)) >= 3
