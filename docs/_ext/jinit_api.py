"""Sphinx extension: the API reference, generated from each public module's ``__all__``.

An API page holds one line ``.. jinit-api:: MODULE`` (in a ``.rst`` file). Before Sphinx
parses the page, the line is replaced by one autodoc entry per name in ``MODULE.__all__``,
grouped by the private module that defines it. A name added to ``__all__`` therefore appears
in the reference without editing any page; a name whose group is unknown lands under "More".
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
from typing import Any

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer

MARKER = re.compile(r"^\.\. jinit-api:: (?P<module>[\w.]+)[ \t]*$", re.MULTILINE)

#: Defining module (prefix) -> heading. Order here is the order on the page.
GROUPS: dict[str, str] = {
    "jinit._initializers": "Core initializers (the jax.nn.initializers superset)",
    "jinit._fans": "Core initializers (the jax.nn.initializers superset)",
    "jinit._gain": "Core initializers (the jax.nn.initializers superset)",
    "jinit._structural": "Structural initializers",
    "jinit._combinators": "Combinators",
    "jinit._tree": "Tree initializers",
    "jinit._edit": "Tree initializers",
    "jinit._paths": "Tree initializers",
    "jinit._summary": "Tree initializers",
    "jinit._research": "Research initializers",
    "jinit.interop._dlpack": "Arrays and trees",
    "jinit.interop._torch": "Arrays and trees",
    "jinit.interop._tensorflow": "Arrays and trees",
    "jinit.interop._mxnet": "Arrays and trees",
    "jinit.interop._models": "Whole models",
    "jinit.interop._load_": "Whole models",
}
OTHER_HEADING = "More"
#: Headings placed after every group above.
LAST: dict[str, str] = {"jinit._typing": "Types", "jinit._errors": "Errors"}
MODULES_HEADING = "Submodules"


def _defining_module(name: str, obj: Any, package: str) -> str:
    """The module where ``obj`` is defined (or, for a plain value, assigned)."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and module:
        return module
    return _assigning_module(name, obj, package) or package


def _assigning_module(name: str, obj: Any, package: str) -> str | None:
    root = package.split(".")[0]
    for modname, module in sorted(sys.modules.items()):
        if (modname == root or modname.startswith(root + ".")) and modname != package:
            if getattr(module, name, None) is obj and _attr_doc(modname, name):
                return modname
    return None


def _attr_doc(modname: str, name: str) -> list[str]:
    """The ``#:`` comment (or string) documenting ``name`` at ``modname``'s top level."""
    try:
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    except Exception:  # a module without source (compiled, frozen) documents nothing
        return []
    return list(docs.get(("", name), []))


def _home(name: str, obj: Any) -> str | None:
    """The top-level package, for a class it exports under the same name; else None."""
    if not inspect.isclass(obj):
        return None
    top = importlib.import_module("jinit")
    return "jinit" if top.__dict__.get(name) is obj else None


def _heading(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def _entry(module: str, name: str, obj: Any, package: str) -> str:
    full = f"{module}.{name}"
    if isinstance(obj, types.ModuleType):
        return f"``{full}``\n    The :py:mod:`{obj.__name__}` module.\n"
    home = _home(name, obj)
    if home is not None and home != module:
        # A class exported by the top-level package too: one full entry (there), one alias here.
        return (f".. py:class:: {name}\n   :module: {module}\n   :no-typesetting:\n\n"
                f"``{full}``\n    The same class as :class:`{home}.{name}`.\n")
    if inspect.isclass(obj):
        return f".. autoclass:: {full}\n   :members:\n   :show-inheritance:\n"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return f".. autofunction:: {full}\n"
    # A value (an initializer instance, a constant, a type alias): document it as data, with
    # the comment written where it is assigned, or the docstring of its type.
    defining = _assigning_module(name, obj, package)
    doc = _attr_doc(defining, name) if defining else []
    if not doc and not isinstance(obj, (str, int, float, tuple, dict, frozenset)):
        doc = (inspect.getdoc(type(obj)) or "").splitlines()[:1]
    value = re.sub(r"\s+", " ", repr(obj))
    body = "".join(f"   {line}\n" for line in doc)
    return f".. py:data:: {name}\n   :module: {module}\n   :value: {value}\n\n{body}"


def render(module_name: str) -> str:
    """The reStructuredText for every name in ``module_name.__all__``."""
    module = importlib.import_module(module_name)
    names = list(getattr(module, "__all__", None) or [])
    if not names:
        raise ValueError(f"{module_name} has no __all__: the reference is generated from it")
    groups: dict[str, list[str]] = {}
    for name in names:
        obj = getattr(module, name)
        where = _defining_module(name, obj, module_name)
        if isinstance(obj, types.ModuleType):
            heading = MODULES_HEADING
        else:
            heading = next((h for prefix, h in {**GROUPS, **LAST}.items()
                            if where == prefix or where.startswith(prefix)), OTHER_HEADING)
        # Factories and values first, then the classes they build.
        groups.setdefault(heading, []).append(
            (inspect.isclass(obj), _entry(module_name, name, obj, module_name)))
    order = list(dict.fromkeys([*GROUPS.values(), OTHER_HEADING, *LAST.values(),
                                MODULES_HEADING]))
    single = len(groups) == 1
    out = [f".. automodule:: {module_name}\n", f".. currentmodule:: {module_name}\n"]
    for heading in sorted(groups, key=order.index):
        if not single:
            out.append(_heading(heading, "-"))
        out.extend(text for _, text in sorted(groups[heading], key=lambda e: e[0]))
    return "\n".join(out)


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    source[0] = MARKER.sub(lambda m: render(m.group("module")), source[0])


def _reread_reference(app: Sphinx, env: Any, added: set, changed: set, removed: set
                      ) -> list[str]:
    """The reference depends on the code, not on its page files: re-read it on every build."""
    return [docname for docname in env.found_docs if docname.startswith("api/")]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _reread_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
