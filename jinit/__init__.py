"""jinit: jittable parameter initializers, pytree init rules and framework interop for JAX.

A drop-in superset of ``jax.nn.initializers``: the shared names keep their signatures and
return bit-identical values for the same key. ``jinit.compat.{torch,keras,mxnet}`` reproduce
each framework's initializers and layer defaults; ``jinit.rules`` builds tree initializers;
``jinit.interop`` hands parameter trees to PyTorch, TensorFlow/Keras and MXNet.
"""

import types as _types
from importlib import metadata as _metadata

# --- errors and types -------------------------------------------------------------------------
from jinit._errors import (
    BackendUnavailableError as BackendUnavailableError,
    DTypeError as DTypeError,
    InitializerArgumentError as InitializerArgumentError,
    InteropError as InteropError,
    JinitError as JinitError,
    LeafInitError as LeafInitError,
    PathError as PathError,
    PortError as PortError,
    RuleError as RuleError,
    ShapeError as ShapeError,
)
from jinit._typing import InitFn as InitFn, Selector as Selector, TreeInitializer as TreeInitializer

# --- core: the jax.nn.initializers superset ---------------------------------------------------
from jinit._fans import compute_fans as compute_fans, layout_axes as layout_axes
from jinit._initializers import (
    Constant as Constant,
    DeltaOrthogonal as DeltaOrthogonal,
    Initializer as Initializer,
    Normal as Normal,
    Orthogonal as Orthogonal,
    TruncatedNormal as TruncatedNormal,
    Uniform as Uniform,
    VarianceScaling as VarianceScaling,
    constant as constant,
    delta_orthogonal as delta_orthogonal,
    glorot_normal as glorot_normal,
    glorot_uniform as glorot_uniform,
    he_normal as he_normal,
    he_uniform as he_uniform,
    kaiming_normal as kaiming_normal,
    kaiming_uniform as kaiming_uniform,
    lecun_normal as lecun_normal,
    lecun_uniform as lecun_uniform,
    normal as normal,
    ones as ones,
    orthogonal as orthogonal,
    truncated_normal as truncated_normal,
    uniform as uniform,
    variance_scaling as variance_scaling,
    xavier_normal as xavier_normal,
    xavier_uniform as xavier_uniform,
    zeros as zeros,
)
from jinit._gain import calculate_gain as calculate_gain

# --- structural initializers and combinators (owner: structural) ------------------------------
from jinit._combinators import (
    Clipped as Clipped,
    Fused as Fused,
    Masked as Masked,
    Mixture as Mixture,
    Scaled as Scaled,
    Shifted as Shifted,
    Stacked as Stacked,
    WithDtype as WithDtype,
    clipped as clipped,
    fused as fused,
    masked as masked,
    mixture as mixture,
    scaled as scaled,
    shifted as shifted,
    stacked as stacked,
    with_dtype as with_dtype,
)
from jinit._structural import (
    Bilinear as Bilinear,
    Chrono as Chrono,
    Dirac as Dirac,
    GateBias as GateBias,
    Identity as Identity,
    Sparse as Sparse,
    bilinear as bilinear,
    chrono as chrono,
    dirac as dirac,
    gate_bias as gate_bias,
    identity as identity,
    lstm_forget_bias as lstm_forget_bias,
    sparse as sparse,
)

# --- tree initializers (owner: trees) ---------------------------------------------------------
from jinit import select as select
from jinit._edit import set as set, update as update
from jinit._kernel_cache import set_kernel_cache as set_kernel_cache
from jinit._layer_axes import (
    LAYER_AXIS_NAMES as LAYER_AXIS_NAMES,
    LayerAxisWarning as LayerAxisWarning,
)
from jinit._paths import leaf_key as leaf_key
from jinit._summary import summary as summary
from jinit._tree import (
    Contextual as Contextual,
    Keep as Keep,
    LayerAware as LayerAware,
    LeafContext as LeafContext,
    LeafPlan as LeafPlan,
    Rule as Rule,
    Rules as Rules,
    contextual as contextual,
    keep as keep,
    partition as partition,
    paths as paths,
    rules as rules,
)

# --- research initializers and recipes (owner: research) ---------------------------------------
from jinit import recipes as recipes
from jinit._research import LsuvLayer as LsuvLayer, MuP as MuP, lsuv as lsuv, mup as mup
from jinit._coord_check import CoordCheck as CoordCheck, coord_check as coord_check

# --- subpackages -----------------------------------------------------------------------------
from jinit import compat as compat

try:
    __version__ = _metadata.version("jinit")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

# Submodules whose imports are heavy (Flax ~1.3 s) or framework-facing load on first access.
_LAZY_SUBMODULES = ("flax", "nnx", "interop")

# The public objects. Submodules (compat, select, recipes and the lazy ones) are attributes,
# not star-import names: `from jinit import *` must not rebind `flax`, `nnx` or `select`
# (real packages and a stdlib module), nor import Flax.
__all__ = [name for name, value in globals().items()
           if not name.startswith("_") and not isinstance(value, _types.ModuleType)]


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"jinit.{name}")
    raise AttributeError(f"module 'jinit' has no attribute {name!r}")
