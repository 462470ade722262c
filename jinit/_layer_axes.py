"""Layer axes of stacked parameters, and the axis names Flax boxes carry.

``nn.scan``/``nn.vmap`` (linen) and ``nnx.scan``/``nnx.vmap`` stack the parameters of L layers
into one leaf: a Dense kernel becomes ``(L, in, out)``. A tree initializer initializes such a leaf
per layer (fans of one layer, an independent draw per slice) once it knows the leaf's *layer
axes*. They come, first match wins, from:

1. the ``layer_axis=`` argument of :func:`jinit.rules` (explicit);
2. the module, when one is given (``jinit.flax.init`` reads the axes ``nn.scan``/``nn.vmap``
   add, ``jinit.nnx.init``/``reinit`` compare nnx layers' leaves with one layer's shapes; they
   hand them to the tree initializer through :func:`detected`);
3. the axis names of Flax boxes (``nn.Partitioned``/``nn.LogicallyPartitioned``, nnx variables'
   ``out_sharding``): an axis named one of :data:`LAYER_AXIS_NAMES` (``"layers"``, as
   ``metadata_params={nn.PARTITION_NAME: "layers"}`` names it) is a layer axis.

Leaves with more axes than their layer kind explains and no known layer axis are reported by
:func:`unexplained`; the tree initializer warns (:class:`LayerAxisWarning`) with the fix.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from jax import tree_util

from jinit._paths import _box_types, path_str

#: Axis names that mark a layer axis in Flax partition metadata (``nn.PARTITION_NAME``).
LAYER_AXIS_NAMES: tuple[str, ...] = ("layers", "layer", "stack", "scan", "depth", "repeat")


class LayerAxisWarning(UserWarning):
    """A leaf looks stacked (more axes than its layer explains) but no layer axis is known."""


# --- axis names of Flax boxes -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BoxInfo:
    """The partition metadata of one boxed leaf.

    Attributes:
      names: one entry per axis (a name, a tuple of names, or ``None``).
      logical: the names are logical (``nn.LogicallyPartitioned``, nnx variables) rather than
        mesh axes (``nn.Partitioned``).
      rules: logical axis rules the box carries itself (``nn.LogicallyPartitioned.rules``).
    """

    names: tuple[Any, ...]
    logical: bool
    rules: Any = None

    def layer_axes(self) -> tuple[int, ...]:
        """The axes whose name is one of :data:`LAYER_AXIS_NAMES`."""
        return tuple(i for i, n in enumerate(self.names) if n in LAYER_AXIS_NAMES)


def _info(box: Any) -> BoxInfo | None:
    names = getattr(box, "names", None)
    if names is None and hasattr(box, "get_metadata"):  # nnx.Variable
        meta = box.get_metadata()
        names = next((meta[k] for k in ("out_sharding", "sharding_names", "sharding")
                      if meta.get(k)), None)
        rules = meta.get("sharding_rules")
        return None if not names else BoxInfo(tuple(names), True, rules)
    if names is None:
        return None
    spmd = sys.modules.get("flax.linen.spmd")
    logical = spmd is not None and isinstance(box, spmd.LogicallyPartitioned)
    return BoxInfo(tuple(names), logical, getattr(box, "rules", None))


def boxes(tree: Any) -> dict[str, BoxInfo]:
    """``{path: BoxInfo}`` of every boxed leaf with axis names (paths as selectors see them)."""
    types = _box_types()
    if not types:
        return {}
    out = {}
    for keypath, x in tree_util.tree_flatten_with_path(
            tree, is_leaf=lambda x: isinstance(x, types))[0]:
        if isinstance(x, types):
            info = _info(x)
            if info is not None:
                out[path_str(keypath)] = info
    return out


# --- axes found from the module (jinit.flax.init) -----------------------------------------------

_DETECTED: contextvars.ContextVar[Mapping[str, tuple[int, ...]] | None] = (
    contextvars.ContextVar("jinit_detected_layer_axes", default=None))


@contextlib.contextmanager
def detected(axes: Mapping[str, tuple[int, ...]]) -> Iterator[None]:
    """Within the block, tree initializers take ``{path: layer axes}`` as found from a module."""
    token = _DETECTED.set(dict(axes))
    try:
        yield
    finally:
        _DETECTED.reset(token)


def detected_axes() -> Mapping[str, tuple[int, ...]]:
    """The module-detected layer axes in effect (empty outside :func:`detected`)."""
    return _DETECTED.get() or {}


# --- the tree being planned (per-layer shapes for layer-kind selectors) -------------------------

#: Shapes: ``((path, per-layer shape), ...)`` of every array leaf, hashable.
Shapes = tuple[tuple[str, tuple[int, ...]], ...]
_PLANNING: contextvars.ContextVar[tuple[Any, Shapes] | None] = (
    contextvars.ContextVar("jinit_planning", default=None))


@contextlib.contextmanager
def planning(tree: Any, shapes: Shapes) -> Iterator[None]:
    """Marks ``tree`` as being planned, with the per-layer shapes of its array leaves."""
    token = _PLANNING.set((tree, shapes))
    try:
        yield
    finally:
        _PLANNING.reset(token)


def planned_shapes(tree: Any) -> Shapes | None:
    """The per-layer shapes of ``tree`` if a tree initializer is planning it, else ``None``."""
    current = _PLANNING.get()
    return current[1] if current is not None and current[0] is tree else None


def per_layer(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without its layer ``axes``: the shape of one layer's parameter."""
    return tuple(d for i, d in enumerate(shape) if i not in axes)


# --- leaves whose rank their layer does not explain --------------------------------------------

#: Leaves that are 1-D in one layer (norm scale/shift, biases, running statistics, PReLU slope).
_VECTORS = frozenset({"bias", "scale", "mean", "var", "negative_slope"})
_DENSE = re.compile(r"(?i)(?!.*general).*(dense|linear).*")
_GATES = re.compile(r"(?i)(i|h)[ifgorzn]_?|dense_[ih]")
#: Layers whose bias legitimately has several axes that are not the kernel's trailing ones
#: (an Einsum's bias spans any of its kernel's axes; ConvLocal's the output positions).
_FREE_BIAS = re.compile(r"(?i).*(einsum|local).*")


def unexplained(shapes: Shapes) -> dict[str, str]:
    """``{path: why}`` for leaves with more axes than their layer kind explains.

    ``shapes`` are per-layer shapes (known layer axes already removed). A module is suspect when
    a leaf that is 1-D in one layer (bias, norm scale, running mean/var) has 2 or more axes
    (unless it is a DenseGeneral bias: the kernel's output axes; or an Einsum's or
    ConvLocal's, named so), when a Dense/Linear or
    recurrent-gate kernel has more than 2 axes, or when an embedding has more than 2; every
    leaf of a suspect module is reported.
    """
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    for path, shape in shapes:
        parent, _, name = path.rpartition("/")
        modules.setdefault(parent, {})[name] = tuple(shape)
    out = {}
    for module, leaves in modules.items():
        why = _why(module.rpartition("/")[2], leaves)
        if why:
            out.update({f"{module}/{n}" if module else n: why for n in leaves})
    return out


def _why(own: str, leaves: Mapping[str, tuple[int, ...]]) -> str | None:
    kernel = leaves.get("kernel")
    for name in sorted(_VECTORS & set(leaves)):
        shape = leaves[name]
        if len(shape) < 2:
            continue
        if name == "bias" and kernel is not None and (_FREE_BIAS.fullmatch(own) or (
                len(kernel) > len(shape) and tuple(kernel[len(kernel) - len(shape):]) == shape)):
            continue  # DenseGeneral / attention: the bias spans the kernel's output axes
        return f"a {name} is 1-D in one layer, but this one has shape {shape}"
    if kernel is not None and len(kernel) > 2 and (_DENSE.fullmatch(own) or _GATES.fullmatch(own)):
        return f"a {own} kernel is 2-D in one layer, but this one has shape {kernel}"
    emb = leaves.get("embedding")
    if emb is not None and len(emb) > 2:
        return f"an embedding is 2-D in one layer, but this one has shape {emb}"
    return None
