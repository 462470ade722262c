"""The public API: what `import jinit` exposes, documented, and free of framework imports."""

from __future__ import annotations

import inspect
import subprocess
import sys

import jinit
import jinit.compat
import jinit.interop
import jinit.select


def _public(module):
    return [n for n in module.__all__ if not n.startswith("_")]


def test_all_names_resolve_and_are_documented():
    for module in (jinit, jinit.compat, jinit.select, jinit.interop, jinit.compat.torch,
                   jinit.compat.keras, jinit.compat.mxnet, jinit.compat.flax):
        names = _public(module) if hasattr(module, "__all__") else [
            n for n in dir(module) if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
                continue
            assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


def test_public_objects_live_in_jinit():
    for name in _public(jinit):
        obj = getattr(jinit, name)
        mod = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            assert mod.startswith("jinit"), (name, mod)


def test_jax_names_are_a_subset():
    import jax

    missing = {n for n in dir(jax.nn.initializers) if not n.startswith("_")} - set(dir(jinit))
    assert missing == {"Initializer"} - set(dir(jinit))


def test_import_jinit_imports_no_framework():
    code = ("import sys, jinit, jinit.compat.torch, jinit.interop; "
            "heavy = [m for m in ('torch', 'tensorflow', 'mxnet', 'flax', 'keras') "
            "if m in sys.modules]; print(heavy); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_submodules():
    assert jinit.flax.__name__ == "jinit.flax" and jinit.nnx.__name__ == "jinit.nnx"
    assert jinit.interop.__name__ == "jinit.interop"
    assert jinit.__version__


def test_star_import_binds_no_module_and_needs_no_flax():
    # Flax made unimportable, as on a machine without it; `from jinit import *` must not
    # rebind flax, nnx (real packages) or select (a stdlib module), nor any other submodule.
    code = ("import sys, types; sys.modules['flax'] = None\n"
            "import select\n"
            "from jinit import *\n"
            "import jinit\n"
            "bound = sorted(v.__name__ for v in list(globals().values())\n"
            "               if isinstance(v, types.ModuleType) and v.__name__.startswith('jinit'))\n"
            "assert select is sys.modules['select'], select\n"
            "assert 'flax' not in globals() and 'nnx' not in globals(), 'flax/nnx bound'\n"
            "print(bound)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "['jinit']", run.stdout  # only the explicit `import jinit`
    assert not {"flax", "nnx", "select", "interop", "compat", "recipes"} & set(jinit.__all__)
    for module in ("compat", "select", "recipes", "flax", "nnx", "interop"):
        assert getattr(jinit, module).__name__ == f"jinit.{module}"  # still attributes
