"""jinit.interop: parameter trees to and from PyTorch, TensorFlow/Keras and MXNet/Gluon.

Importing this package imports no framework: each public name is resolved on first access
(module ``__getattr__``), and the framework itself is imported on the first call.

Array level (DLPack, ownership modes "copy" / "move" / "share", per-leaf reports):
``to_torch``, ``from_torch``, ``to_tensorflow``, ``from_tensorflow``, ``to_mxnet``,
``from_mxnet``, ``ExportRecord``, ``ExportReport``, ``InteropError``.

Model level (pairing by name, then structure; hyper-parameters read from ``source=``):
``load_torch``, ``load_keras``, ``load_gluon``, ``params_from_torch``, ``params_from_keras``,
``params_from_gluon``, ``plan`` (dry run), ``register_layer`` / ``LayerRule`` / ``HParam`` /
``ops`` (rules for new layer types), ``LoadReport``, ``ParamReport``, ``PortPlan``, ``PortError``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it (imported lazily on first access).
_LAZY = {
    "ExportRecord": "_dlpack",
    "ExportReport": "_dlpack",
    "MODES": "_dlpack",
    "InteropError": "_dlpack",
    "to_torch": "_torch",
    "from_torch": "_torch",
    "to_tensorflow": "_tensorflow",
    "from_tensorflow": "_tensorflow",
    "to_mxnet": "_mxnet",
    "from_mxnet": "_mxnet",
    "import_mxnet": "_mxnet",
    "import_torch": "_torch",
    "import_tensorflow": "_tensorflow",
    "load_torch": "_load_torch",
    "params_from_torch": "_load_torch",
    "load_keras": "_load_keras",
    "params_from_keras": "_load_keras",
    "load_gluon": "_load_gluon",
    "params_from_gluon": "_load_gluon",
    "gluon_attention": "_load_gluon",
    "LoadReport": "_models",
    "ParamReport": "_models",
    "PortError": "_models",
    "PortWarning": "_models",
    "PortPlan": "_models",
    "PlanEntry": "_models",
    "plan": "_models",
    "register_layer": "_registry",
    "LayerRule": "_registry",
    "HParam": "_registry",
    "ops": "ops",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jinit.interop' has no attribute {name!r}")
    imported = importlib.import_module(f"jinit.interop.{module}")
    value = imported if module == name else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs only; never executed
    from jinit.interop._dlpack import MODES, ExportRecord, ExportReport, InteropError  # noqa: F401
    from jinit.interop._mxnet import from_mxnet, to_mxnet  # noqa: F401
    from jinit.interop._tensorflow import from_tensorflow, to_tensorflow  # noqa: F401
    from jinit.interop._torch import from_torch, to_torch  # noqa: F401
