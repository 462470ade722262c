"""Flax nnx integration: (re-)initialize an nnx module's variables with a tree initializer.

``from jinit import nnx`` imports Flax (``import jinit`` does not).

The tree initializer sees an ``nnx.State`` whose paths read like linen params
(``"layers/0/kernel"``, the ``Variable``'s ``value`` attribute is not part of the path), so the
same rules and the same per-path keys apply to linen and nnx models.

* :func:`reinit` re-initializes a module in place (like torch's ``reset_parameters``);
* :func:`reinit_state` is the functional form over ``nnx.split`` state;
* :func:`init` builds a module abstractly (``nnx.eval_shape``) and creates its variables with
  the tree initializer, so Flax's own initializers are never computed for them.

Stacks built with ``nnx.vmap``/``nnx.scan`` (a ``(L, in, out)`` kernel) are initialized per
layer. :func:`init` and :func:`reinit` find the stacked axes of Flax's own layers from the
module (an ``nnx.Linear`` knows its ``(in_features, out_features)`` kernel: the extra axes of
its leaf are the stack; see :data:`LAYER_SHAPES`); variables that name the stacked axis
(``transform_metadata={nnx.PARTITION_NAME: "layers"}`` on partitioned variables) are found
from their metadata. Otherwise give the axis to the rules (``jinit.rules(preset,
layer_axis=[("blocks/.*", 0)])``): leaves that look stacked without a known axis raise a
:class:`jinit.LayerAxisWarning` saying so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import jax
from flax import nnx

from jinit import _layer_axes
from jinit._errors import RuleError
from jinit._paths import flatten, is_abstract
from jinit._typing import PRNGKey, TreeInitializer

__all__ = ["LAYER_SHAPES", "init", "layer_axes", "reinit", "reinit_state"]

M = TypeVar("M", bound=nnx.Module)

#: What :func:`reinit` and :func:`reinit_state` re-initialize by default: the parameters and
#: the running statistics (torch's ``reset_parameters`` resets both).
LEARNED = (nnx.Param, nnx.BatchStat)


def _conv(m: nnx.Conv) -> dict[str, tuple[int, ...]]:
    out = m.out_features
    return {"kernel": (*m.kernel_size, m.in_features // m.feature_group_count, out),
            "bias": (out,)}


def _norm(*names: str) -> Callable[[Any], dict[str, tuple[int, ...]]]:
    return lambda m: dict.fromkeys(names, (m.num_features,))


#: One layer's parameter shapes, from the attributes of Flax's nnx layers: a registry (add
#: ``LAYER_SHAPES[MyLayer] = lambda m: {"w": (m.n, m.k)}`` for your own layers).
LAYER_SHAPES: dict[type, Callable[[Any], Mapping[str, tuple[int, ...]]]] = {
    nnx.Linear: lambda m: {"kernel": (m.in_features, m.out_features), "bias": (m.out_features,)},
    nnx.Conv: _conv,
    nnx.Embed: lambda m: {"embedding": (m.num_embeddings, m.features)},
    nnx.LayerNorm: _norm("scale", "bias"),
    nnx.RMSNorm: _norm("scale"),
    nnx.BatchNorm: _norm("scale", "bias", "mean", "var"),
}


def _stack_axes(shape: tuple[int, ...], one: tuple[int, ...]) -> tuple[int, ...] | None:
    """The axes whose removal turns ``shape`` into ``one``, if exactly one choice does."""
    extra = len(shape) - len(one)
    if extra < 0:
        return None
    fits = [axes for axes in itertools.combinations(range(len(shape)), extra)
            if tuple(d for i, d in enumerate(shape) if i not in axes) == one]
    return fits[0] if len(fits) == 1 else None


def layer_axes(model: nnx.Module) -> dict[str, tuple[int, ...]]:
    """Finds the layer axes of stacked (``nnx.vmap``/``nnx.scan``) layers from the module.

    For every layer in :data:`LAYER_SHAPES`, the axes of each variable beyond the layer's own
    shape are its layer axes (``()`` when there are none). Layers whose extra axes cannot be
    placed unambiguously, and layers not in the registry, are left out (the tree initializer
    then falls back to partition names, and warns where a leaf looks stacked).

    Returns:
      ``{path: layer axes}``, paths as tree initializers see them (``"blocks/kernel"``).

    Examples:
      >>> from flax import nnx
      >>> from jinit import nnx as jnnx
      >>> @nnx.split_rngs(splits=4)
      ... @nnx.vmap(in_axes=(0,), out_axes=0)
      ... def create(rngs):
      ...     return nnx.Linear(8, 16, rngs=rngs)
      >>> jnnx.layer_axes(nnx.eval_shape(lambda: create(nnx.Rngs(0))))
      {'bias': (0,), 'kernel': (0,)}
    """
    out = {}
    for path, node in nnx.iter_graph(model):
        rule = LAYER_SHAPES.get(type(node))
        if rule is None:
            continue
        for name, one in rule(node).items():
            var = getattr(node, name, None)
            if not isinstance(var, nnx.Variable) or not hasattr(var, "shape"):
                continue
            axes = _stack_axes(tuple(var.shape), tuple(one))
            if axes is not None:
                out["/".join(map(str, (*path, name)))] = axes
    return dict(sorted(out.items()))


def reinit_state(state: nnx.State, tree_init: TreeInitializer, key: PRNGKey,
                 filter: Any = LEARNED) -> nnx.State:
    """Returns ``state`` with the variables selected by ``filter`` re-initialized.

    Functional and traceable (``jax.jit``): use it on the state of ``nnx.split(model)``.
    Variables outside ``filter`` (RNG state, caches, ...) are returned as they are; the tree
    initializer never sees them.

    Args:
      state: an ``nnx.State`` (from ``nnx.split`` or ``nnx.state``).
      tree_init: a ``(key, state) -> state`` tree initializer, e.g. :func:`jinit.rules` or
        ``jinit.compat.keras.defaults()``.
      key: the PRNG key.
      filter: an nnx filter of the variables to re-initialize; default
        ``(nnx.Param, nnx.BatchStat)``.

    Returns:
      A new ``nnx.State`` of the same structure and variable types.

    Examples:
      >>> import jax, jinit
      >>> from flax import nnx
      >>> from jinit import nnx as jnnx
      >>> graphdef, state = nnx.split(nnx.Linear(3, 4, rngs=nnx.Rngs(0)))
      >>> state = jnnx.reinit_state(state, jinit.rules((".*", jinit.zeros)), jax.random.key(0))
      >>> float(abs(nnx.merge(graphdef, state).kernel[...]).sum())
      0.0
    """
    if not isinstance(state, nnx.State):
        raise RuleError(f"reinit_state needs an nnx.State (from nnx.split); got "
                        f"{type(state).__name__}. For a module, use jinit.nnx.reinit.")
    selected, rest = state.split(filter, ...)
    return nnx.merge_state(tree_init(key, selected), rest)


def reinit(model: nnx.Module, tree_init: TreeInitializer, key: PRNGKey,
           filter: Any = LEARNED) -> None:
    """Re-initializes ``model``'s variables selected by ``filter``, in place.

    The values are those of :func:`reinit_state` on the model's state. Inside ``nnx.jit`` the
    update propagates like any nnx state change.

    Args:
      model: an nnx module.
      tree_init: a ``(key, state) -> state`` tree initializer.
      key: the PRNG key.
      filter: an nnx filter; default ``(nnx.Param, nnx.BatchStat)``.

    Examples:
      >>> import jax, jinit
      >>> from flax import nnx
      >>> from jinit import nnx as jnnx
      >>> from jinit.compat import torch
      >>> model = nnx.Linear(256, 512, rngs=nnx.Rngs(0))
      >>> jnnx.reinit(model, torch.defaults(), jax.random.key(0))
      >>> bool(abs(model.bias[...]).max() <= 1 / 16)
      True
    """
    if not isinstance(model, nnx.Module):
        raise RuleError(f"reinit needs an nnx.Module; got {type(model).__name__}. For an "
                        "nnx.State, use jinit.nnx.reinit_state.")
    with _layer_axes.detected(layer_axes(model)):
        nnx.update(model, tree_init(key, nnx.state(model, filter)))


def init(factory: Callable[[], M], tree_init: TreeInitializer, key: PRNGKey,
         filter: Any = nnx.Param) -> M:
    """Builds ``factory()`` with the variables selected by ``filter`` made by ``tree_init``.

    The module is first built abstractly with ``nnx.eval_shape``: nothing is computed, so Flax's
    initializers never run for the selected variables. The tree initializer creates them from
    their shapes. The other variables (running statistics, RNG state, ...) are made by Flax: the
    factory runs once under ``jax.jit`` and only their values are kept, so XLA drops the
    parameter computations. ``factory`` should create its own ``nnx.Rngs``
    (``lambda: Model(..., rngs=nnx.Rngs(0))``).

    Args:
      factory: a function of no arguments returning the module.
      tree_init: a ``(key, state) -> state`` tree initializer.
      key: the PRNG key.
      filter: the variables the tree initializer makes; default ``nnx.Param``.

    Returns:
      The module.

    Examples:
      >>> import jax, jinit
      >>> from flax import nnx
      >>> from jinit import nnx as jnnx
      >>> from jinit.compat import keras
      >>> make = lambda: nnx.Sequential(nnx.Linear(8, 8, rngs=nnx.Rngs(0)),
      ...                               nnx.BatchNorm(8, rngs=nnx.Rngs(0)))
      >>> model = jnnx.init(make, keras.defaults(), jax.random.key(0))
      >>> model.layers[1].var[...].tolist() == [1.0] * 8
      True
    """
    abstract = nnx.eval_shape(factory)
    graphdef, state = nnx.split(abstract)
    selected, rest = state.split(filter, ...)
    with _layer_axes.detected(layer_axes(abstract)):
        new = tree_init(key, selected)
    flat = flatten(new)
    left = [p for p, x in zip(flat.paths, flat.leaves, strict=True) if is_abstract(x)]
    if left:
        raise RuleError(f"the tree initializer left {len(left)} variable(s) without a value: "
                        f"{', '.join(left[:8])}. Give them a rule or a default.")
    if jax.tree_util.tree_leaves(rest):
        rest = jax.jit(lambda: nnx.split(factory())[1].split(filter, ...)[1])()
    return nnx.merge(graphdef, new, rest)
