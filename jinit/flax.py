"""Flax linen integration: initialize a module's parameters with a jinit tree initializer.

``import jinit.flax`` imports Flax (``import jinit`` does not).

:func:`init` is ``module.init`` with the parameters coming from a tree initializer
(:func:`jinit.rules`, ``jinit.compat.torch.defaults()``, ...) instead of the modules'
``kernel_init``/``bias_init``:

1. ``jax.eval_shape(module.init, ...)`` gives the shapes and dtypes of every variable without
   computing anything, so Flax's own initializers never run;
2. the tree initializer creates the parameters from those shapes (per-path keys);
3. only when the module has other collections (``batch_stats``, ``cache``, ...) is the module
   run once more, in Flax's init mode with the new parameters already in place: Flax then creates
   exactly those other variables, the way ``module.init`` does, and never calls a parameter's
   init function again (it only checks its shape abstractly).

Stacked layers: one more abstract pass (``module.apply`` under ``jax.eval_shape``, with every
param in a probe box) records the axes that ``nn.scan``/``nn.vmap`` (and the transforms built on
them, such as ``nn.remat_scan``) slice off each param, whatever their ``variable_axes`` and with
or without partition metadata. The tree initializer then initializes those params per layer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import flax.core
import flax.linen as nn
import jax
import numpy as np
from flax.core import meta

from jinit import _layer_axes
from jinit._errors import RuleError
from jinit._paths import is_abstract, path_str
from jinit._typing import PRNGKey, PyTree, TreeInitializer

__all__ = ["init", "layer_axes"]

_PARAMS = "params"
#: ``module.init``'s default: every collection but ``intermediates``.
ALL_BUT_INTERMEDIATES = nn.DenyList("intermediates")


def _split_arrays(tree: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """Separates array-like leaves (traced by ``eval_shape``) from static ones (closed over)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    is_dyn = [isinstance(x, (jax.Array, np.ndarray, jax.ShapeDtypeStruct)) for x in leaves]
    dyn = [x for x, d in zip(leaves, is_dyn, strict=True) if d]

    def merge(values: list[Any]) -> Any:
        it = iter(values)
        return jax.tree_util.tree_unflatten(
            treedef, [next(it) if d else x for x, d in zip(leaves, is_dyn, strict=True)])

    return dyn, merge


def _concrete(x: Any) -> Any:
    """Shape-only inputs become zeros for the one pass that creates non-param collections."""
    return jax.numpy.zeros(x.shape, x.dtype) if is_abstract(x) else x


def _scope_fn(module: nn.Module, method: Any) -> Callable[..., Any]:
    """What ``nn.init_with_output`` runs: ``method`` of a clone of ``module`` bound to a scope."""
    fn = method if method is not None else type(module).__call__
    if isinstance(fn, str):
        fn = getattr(type(module), fn)
    if inspect.ismethod(fn) and isinstance(fn.__self__, nn.Module):
        fn = fn.__func__  # module.encode, as module.init accepts it: rebind to the clone

    def scope_fn(scope, *args, **kwargs):
        return fn(module.clone(parent=scope, _deep_clone=True), *args, **kwargs)

    return scope_fn


class _Log:
    """Where the probe boxes write the axes the lifted transforms remove (hashed by identity)."""

    def __init__(self) -> None:
        self.removed: dict[str, list[tuple[tuple[int, ...], int]]] = {}


class _AxisProbe(meta.AxisMetadata):
    """A param box that records each ``remove_axis`` a lifted transform applies to it."""

    def __init__(self, value: Any, path: str, log: _Log):
        self.value, self.path, self.log = value, path, log

    def unbox(self) -> Any:
        return self.value

    def replace_boxed(self, val: Any) -> _AxisProbe:
        return _AxisProbe(val, self.path, self.log)

    def add_axis(self, index: int, params: dict[Any, Any]) -> _AxisProbe:
        return self

    def remove_axis(self, index: int, params: dict[Any, Any]) -> _AxisProbe:
        self.log.removed.setdefault(self.path, []).append((tuple(self.value.shape), index))
        return self


jax.tree_util.register_pytree_node(
    _AxisProbe, lambda b: ((b.value,), (b.path, b.log)),
    lambda aux, children: _AxisProbe(children[0], *aux))


def _original_axes(shape: tuple[int, ...], removed: list[tuple[tuple[int, ...], int]]
                   ) -> tuple[int, ...]:
    """Axes of the full shape, from ``(shape, index)`` removals, outer transform first.

    A nested transform's body may be traced more than once (its removals repeat); each removal
    applies to the shape the previous one left, so repeats are skipped by shape.
    """
    positions, out, current = list(range(len(shape))), [], tuple(shape)
    for seen, index in dict.fromkeys(removed):
        if seen == current:
            out.append(positions.pop(index))
            current = current[:index] + current[index + 1:]
    return tuple(sorted(out))


def layer_axes(module: nn.Module, variables: Mapping[str, Any], *args: Any,
               method: Callable[..., Any] | str | None = None,
               rngs: Mapping[str, PRNGKey] | None = None, **kwargs: Any
               ) -> dict[str, tuple[int, ...]]:
    """Finds the layer axes ``nn.scan``/``nn.vmap`` give the module's params (abstractly).

    Runs ``module.apply`` once under ``jax.eval_shape`` with every param in a probe box that
    records the axes the lifted transforms slice off. Nothing is computed.

    Args:
      module: a linen module.
      variables: its variables (arrays or ``jax.ShapeDtypeStruct``), e.g. from
        ``jax.eval_shape(module.init, ...)``.
      *args: the module's inputs (``jax.ShapeDtypeStruct`` allowed).
      method: the method to apply, as in ``module.apply``.
      rngs: rngs the module needs (dropout, ...).
      **kwargs: keyword inputs of the module.

    Returns:
      ``{path: layer axes}`` for every param, ``()`` for params that are not stacked.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jinit.flax
      >>> class Block(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x, _):
      ...         return nn.Dense(8)(x), None
      >>> model = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True},
      ...                 length=4)()
      >>> x = jnp.ones((1, 8))
      >>> variables = jax.eval_shape(lambda k: model.init(k, x, None), jax.random.key(0))
      >>> jinit.flax.layer_axes(model, variables, x, None)
      {'Dense_0/bias': (0,), 'Dense_0/kernel': (0,)}
    """
    log = _Log()
    params = meta.unbox(variables[_PARAMS])
    probe = jax.tree_util.tree_map_with_path(
        lambda kp, x: _AxisProbe(x, path_str(kp), log), params)
    others = {c: meta.unbox(v) for c, v in variables.items() if c != _PARAMS}
    dyn, merge = _split_arrays((args, kwargs))

    def run(p: Any, values: list[Any], r: Any) -> Any:
        a, kw = merge(values)
        return module.apply({**others, _PARAMS: p}, *a, method=method, mutable=True,
                            rngs=r, **kw)

    jax.eval_shape(run, probe, dyn, dict(rngs or {}))
    shapes = {path_str(kp): tuple(x.shape)
              for kp, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    return {path: _original_axes(shape, log.removed.get(path, []))
            for path, shape in shapes.items()}


def init(
    module: nn.Module,
    tree_init: TreeInitializer,
    key: PRNGKey | Mapping[str, PRNGKey],
    *args: Any,
    method: Callable[..., Any] | str | None = None,
    mutable: Any = ALL_BUT_INTERMEDIATES,
    **kwargs: Any,
) -> dict[str, PyTree]:
    """Returns ``module.init(key, *args, **kwargs)`` with the params made by ``tree_init``.

    The ``params`` collection is ``tree_init(key, abstract_params)`` where ``abstract_params``
    are the ``jax.ShapeDtypeStruct`` leaves of ``jax.eval_shape(module.init, ...)``: Flax's
    ``kernel_init``/``bias_init`` are never computed. Other collections (``batch_stats``, ...)
    are created by Flax in init mode, with these params in place, as ``module.init`` creates
    them; a module with only ``params`` is not run at all. Works eagerly and under
    ``jax.jit`` (inputs, key and all); boxed params (``nn.with_partitioning``) keep their boxes.

    Params stacked by ``nn.scan``/``nn.vmap`` are initialized per layer: their layer axes are
    found with :func:`layer_axes` and handed to the tree initializer (a :func:`jinit.rules`
    object, or any function calling one), so ``jinit.compat.flax.defaults()`` gives a scanned
    model exactly Flax's per-layer distribution.

    Args:
      module: a linen module.
      tree_init: a ``(key, params) -> params`` tree initializer, e.g. :func:`jinit.rules` or
        ``jinit.compat.torch.defaults()``. It must give every param a value.
      key: the PRNG key of the params, or a dict of rngs as ``module.init`` takes
        (``{"params": k1, "dropout": k2}``); ``tree_init`` gets the ``"params"`` key.
      *args: the module's inputs. ``jax.ShapeDtypeStruct`` inputs are allowed: a module with
        only params never sees them; otherwise they are replaced by zeros for that one pass.
      method: the method to init with, as in ``module.init``.
      mutable: the collections to create, as in ``module.init``.
      **kwargs: keyword inputs of the module.

    Returns:
      The variables dict, ``{"params": ..., "batch_stats": ..., ...}``.

    Raises:
      RuleError: if ``tree_init`` leaves a param without a value, or the module has no params.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jinit, jinit.flax
      >>> from jinit.compat import torch
      >>> model = nn.Sequential([nn.Dense(512), nn.relu, nn.Dense(10)])
      >>> variables = jinit.flax.init(model, torch.defaults(), jax.random.key(0),
      ...                             jnp.ones((1, 256)))
      >>> w = variables["params"]["layers_0"]["kernel"]
      >>> w.shape, bool(abs(w).max() <= 1 / 16)
      ((256, 512), True)

      Rules come first; unmatched params would raise, so the defaults close the rule list:

      >>> init = jinit.rules((".*/bias", jinit.zeros), torch.defaults())
      >>> v = jax.jit(lambda k: jinit.flax.init(model, init, k, jnp.ones((1, 256))))(
      ...     jax.random.key(1))
      >>> float(abs(v["params"]["layers_2"]["bias"]).max())
      0.0
    """
    rngs = dict(key) if isinstance(key, Mapping) else {_PARAMS: key}
    if _PARAMS not in rngs:
        raise RuleError(f"jinit.flax.init needs a 'params' key; got rngs for {sorted(rngs)}.")
    dyn, merge = _split_arrays((args, kwargs))

    def run_init(rng: Any, values: list[Any]) -> Any:
        a, kw = merge(values)
        return module.init(rng, *a, method=method, mutable=mutable, **kw)

    shapes = jax.eval_shape(run_init, rngs, dyn)
    if _PARAMS not in shapes:
        raise RuleError(
            f"{type(module).__name__} created no params (collections: {sorted(shapes)}); there "
            "is nothing for the tree initializer to initialize.")
    try:
        axes = layer_axes(module, shapes, *args, method=method, rngs=rngs, **kwargs)
    except Exception:  # noqa: BLE001  (no module axes: leaves that look stacked still warn)
        axes = {}
    try:
        with _layer_axes.detected(axes):
            params = tree_init(rngs[_PARAMS], shapes[_PARAMS])
    except RuleError as e:
        raise RuleError(
            f"{e}\nNote: jinit.flax.init gives the tree initializer the 'params' collection "
            "alone, so its paths read 'Dense_0/kernel', without a 'params/' prefix.") from e
    missing = [jax.tree_util.keystr(p) for p, x in
               jax.tree_util.tree_flatten_with_path(params)[0] if is_abstract(x)]
    if missing:
        raise RuleError(
            f"the tree initializer left {len(missing)} param(s) without a value: "
            f"{', '.join(missing[:8])}. Give them a rule or a default.")
    if set(shapes) == {_PARAMS}:
        return {_PARAMS: params}
    a, kw = merge([_concrete(x) for x in dyn])
    apply = flax.core.apply(_scope_fn(module, method), mutable=mutable,
                            flags={"initializing": True})
    _, variables = apply({_PARAMS: params}, *a, rngs=rngs, **kw)
    variables = flax.core.unfreeze(variables) if isinstance(
        variables, flax.core.FrozenDict) else dict(variables)
    variables[_PARAMS] = params
    return variables
