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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import flax.core
import flax.linen as nn
import jax
import numpy as np

from jinit._errors import RuleError
from jinit._paths import is_abstract
from jinit._typing import PRNGKey, PyTree, TreeInitializer

__all__ = ["init"]

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
