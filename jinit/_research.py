"""Research initializers no framework ships: LSUV (data-dependent) and muP (width transfer).

Both are thin layers over the tree machinery: :func:`mup` returns a :func:`jinit.rules` object
whose initializer is layer-aware (it reads each leaf's base shape and its siblings), and
:func:`lsuv` rescales kernels of an already initialized tree with plain array arithmetic,
measuring layer outputs with one jitted forward function.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jinit import select as _select
from jinit._combinators import Scaled, WithDtype
from jinit._errors import InitializerArgumentError, LeafInitError, PathError, ShapeError
from jinit._fans import compute_fans, layout_axes
from jinit._initializers import VarianceScaling, check_real, normalize_axes, zeros
from jinit._paths import flatten, is_array_like
from jinit._tree import LeafContext, Rule, Rules, _unknown_path_message, rules
from jinit._typing import Axes, PyTree

__all__ = ["LsuvLayer", "MuP", "lsuv", "mup"]


# --- muP ----------------------------------------------------------------------------------------

#: What muP calls each weight, from which of its fan dimensions grow with width.
KINDS = ("input", "hidden", "output", "vector", "finite")


def _fan_family(init: Any, shape: tuple[int, ...]) -> tuple[str, tuple[float, float]] | None:
    """``(mode, fans)`` of a fan-based initializer at ``shape``; ``None`` for fixed-std ones.

    The variance-scaling family (Glorot, He, LeCun, and the compat layout variants) picks its
    variance from the fans, so muP first brings it back to its base-width value. Elementwise
    rescaling wrappers are looked through.
    """
    from jinit.compat._common import LayoutVarianceScaling  # same package; no framework import
    from jinit.compat.keras import AxesVarianceScaling

    if isinstance(init, (Scaled, WithDtype)):
        return _fan_family(init.init, shape)
    try:
        if isinstance(init, AxesVarianceScaling):
            return init.mode, init.fans(shape)
        if isinstance(init, VarianceScaling):
            return init.mode, compute_fans(shape, init.in_axis, init.out_axis, init.batch_axis)
        if isinstance(init, LayoutVarianceScaling):
            if len(shape) >= 2:
                return init.mode, compute_fans(shape, *layout_axes(init.layout, len(shape)))
            if init.vector_fans:
                n = float(math.prod(shape))
                return init.mode, (n, n)
    except ShapeError:  # no fans here (a bias): the initializer itself reports it if run
        pass
    return None


def _denominator(mode: str, fans: tuple[float, float]) -> float:
    fan_in, fan_out = fans
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]


@dataclasses.dataclass(frozen=True)
class MuP:
    """The layer-aware muP initializer behind :func:`mup` (see there for the rules).

    ``resolve(ctx)`` classifies the leaf (input / hidden / output weight, vector, finite),
    computes its width multipliers and returns ``init`` rescaled to the muP std.
    """

    init: Any
    base: tuple[tuple[str, tuple[int, ...]], ...] | None
    width_mult: float | None
    input: _select.Predicate | None
    output: _select.Predicate | None
    readout_zero_init: bool
    output_multiplier: bool
    in_axis: Axes
    out_axis: Axes

    def __post_init__(self) -> None:
        object.__setattr__(self, "_base", dict(self.base) if self.base is not None else None)

    def __repr__(self) -> str:
        scale = (f"base=<{len(self.base)} shapes>" if self.base is not None
                 else f"width_mult={self.width_mult}")
        return f"mup({self.init!r}, {scale})"

    # -- classification ---------------------------------------------------------------------

    def _mults(self, path: str, shape: tuple[int, ...]) -> tuple[float, float] | None:
        """``(m_in, m_out)`` from the base shapes; ``None`` in width_mult mode."""
        if self._base is None:
            return None
        if path not in self._base:
            raise PathError("the base shapes have " + _unknown_path_message(path, list(self._base))
                            + "\nGive base= the params of the same model at base width.")
        base = self._base[path]
        if len(base) != len(shape):
            raise ShapeError(f"leaf {path!r} has shape {shape} but its base shape is {base}: "
                             "muP needs the same rank at every width.")
        if len(shape) < 2:
            return 1.0, 1.0
        ratio = [t / b for t, b in zip(shape, base, strict=True)]

        def mult(axes: Axes) -> float:
            return math.prod(ratio[a] for a in ((axes,) if isinstance(axes, int) else axes))

        return mult(self.in_axis), mult(self.out_axis)

    def _kind(self, path: str, struct: Any) -> tuple[str, float, float]:
        """``(kind, m_in, m_out)`` of one leaf."""
        shape = tuple(struct.shape)
        mults = self._mults(path, shape)
        forced = ("output" if self.output is not None and self.output(path, struct) else
                  "input" if self.input is not None and self.input(path, struct) else None)
        if len(shape) < 2:
            return ("output" if forced == "output" else "vector"), 1.0, 1.0
        if mults is None:  # width_mult mode: the selectors say which fans grow
            w = float(self.width_mult)
            kind = forced or "hidden"
            return kind, (1.0 if kind == "input" else w), (1.0 if kind == "output" else w)
        m_in, m_out = mults
        if forced is not None:
            return forced, m_in, m_out
        kind = {(True, True): "hidden", (False, True): "input", (True, False): "output",
                (False, False): "finite"}[(m_in != 1, m_out != 1)]
        return kind, m_in, m_out

    def _readout_bias(self, ctx: LeafContext) -> bool:
        """Whether a vector leaf is the bias of a readout layer (zeroed with the weight)."""
        for name, struct in ctx.siblings.items():
            sib = f"{ctx.parent}/{name}" if ctx.parent else name
            if len(struct.shape) >= 2 and self._kind(sib, struct)[0] == "output":
                return True
        return False

    # -- resolution -------------------------------------------------------------------------

    def resolve(self, ctx: LeafContext) -> Any:
        struct = jax.ShapeDtypeStruct(ctx.shape, ctx.dtype)
        kind, m_in, m_out = self._kind(ctx.path, struct)
        if self.readout_zero_init and (
                (kind == "output") or (kind == "vector" and self._readout_bias(ctx))):
            return zeros
        factor = {"hidden": m_in ** -0.5,
                  "output": 1.0 if self.output_multiplier else 1.0 / m_in}.get(kind, 1.0)
        factor *= self._base_std_ratio(ctx.path, ctx.shape, kind, m_in, m_out)
        return self.init if factor == 1.0 else Scaled(self.init, factor)

    def _base_std_ratio(self, path: str, shape: tuple[int, ...], kind: str, m_in: float,
                        m_out: float) -> float:
        """std of ``init`` at base width over its std at ``shape`` (1 for fixed-std inits)."""
        here = _fan_family(self.init, shape)
        if here is None:
            return 1.0
        mode, fans = here
        if self._base is not None:
            _, base_fans = _fan_family(self.init, self._base[path])
        elif kind == "vector":
            base_fans = fans
        else:
            base_fans = (fans[0] / m_in, fans[1] / m_out)
        return math.sqrt(_denominator(mode, fans) / _denominator(mode, base_fans))


def mup(
    init: Any,
    *,
    base: PyTree | None = None,
    width_mult: float | None = None,
    input: Any = None,  # noqa: A002 - muP's own name for the embedding-like weights
    output: Any = None,
    readout_zero_init: bool = False,
    output_multiplier: bool = False,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
) -> Rules:
    r"""Builds a muP (maximal update parametrization) tree initializer from a base init.

    ``init`` is the initializer you would use at the **base width** (e.g. ``jinit.normal(0.02)``
    or ``jinit.he_normal()``); muP then rescales it per leaf as the ``mup`` package does
    (``set_base_shapes`` + ``mup.init.*``), with ``m_in``/``m_out`` the width multipliers
    (``width / base_width``) of the leaf's fan-in / fan-out dimensions:

    ============  ======================  ====================================================
    leaf          which fans grow         std relative to ``init`` at base width
    ============  ======================  ====================================================
    hidden        fan-in and fan-out      ``m_in^{-1/2}``  (var ∝ 1/fan_in)
    input         fan-out only            ``1``            (constant in width)
    output        fan-in only             ``1/m_in`` (var ∝ 1/fan_in²); ``0`` with
                                          ``readout_zero_init``; ``1`` with
                                          ``output_multiplier=True``
    vector        (biases, norm scales)   ``1``  (readout bias: ``0`` with readout_zero_init)
    finite        neither                 ``1``
    ============  ======================  ====================================================

    "At base width" is exact for the variance-scaling family (Glorot/He/LeCun and the compat
    ``LayoutVarianceScaling``, also under ``jinit.scaled``): their fan-dependent std is first
    brought back to its base-shape value, as ``mup.init.kaiming_*``/``xavier_*`` do. Any other
    initializer is treated as width-independent (``mup.init.normal_``/``uniform_``): give it a
    std that does not depend on width.

    The readout: ``mup.MuReadout`` stores weights with the base std and divides its input by
    ``width_mult`` in the forward pass. Plain Flax ``Dense`` readouts have no such multiplier,
    so by default it is folded into the init (std ``/ m_in``); pass ``output_multiplier=True``
    if your readout applies ``x * output_mult / width_mult`` itself. muP also changes the
    optimizer (Adam LR of hidden and output weights ∝ ``1/width_mult``) and attention
    (``1/d`` logits): those are not initialization and are left to you.

    Args:
      init: the initializer at base width (any ``(key, shape, dtype)`` callable).
      base: the same model's params at base width (arrays or ``jax.ShapeDtypeStruct``, e.g.
        ``jax.eval_shape(model_at_base_width.init, key, x)``); paths must match. The
        dimensions that differ are the "infinite" (width) ones, as in ``set_base_shapes``.
      width_mult: instead of ``base``: one width multiplier for every width dimension. Then
        every weight of rank >= 2 is hidden unless ``input``/``output`` select it.
      input: selector of input (embedding-like) weights; overrides the shape inference.
      output: selector of output (readout) weights; overrides the shape inference.
      readout_zero_init: zero the readout weights (and the readout layer's bias).
      output_multiplier: the model applies the readout's ``1/width_mult`` in its forward pass.
      in_axis, out_axis: the fan-in / fan-out axes of kernels (Flax ``(..., in, out)``).

    Returns:
      A :class:`jinit.Rules` tree initializer; use it directly or splice it into
      ``jinit.rules(...)`` after more specific rules (``(".*/bias", jinit.zeros)``).

    Raises:
      InitializerArgumentError: neither or both of ``base``/``width_mult``, a non-positive
        width or width multiplier, bad axes.
      RuleError: at call time, an ``input``/``output`` selector that matches no leaf.
      LeafInitError: at call time, a leaf missing from ``base`` or of another rank.

    References:
      Yang et al., `Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
      Hyperparameter Transfer <https://arxiv.org/abs/2203.03466>`_, 2022;
      `microsoft/mup <https://github.com/microsoft/mup>`_.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> def mlp(width):
      ...     return {"embed": {"kernel": jax.ShapeDtypeStruct((32, width), jnp.float32)},
      ...             "hidden": {"kernel": jax.ShapeDtypeStruct((width, width), jnp.float32)},
      ...             "readout": {"kernel": jax.ShapeDtypeStruct((width, 10), jnp.float32)}}
      >>> init = jinit.mup(jinit.normal(0.02), base=mlp(128))
      >>> p = init(jax.random.key(0), mlp(512))          # width_mult = 4
      >>> {k: round(float(v["kernel"].std()), 3) for k, v in p.items()}
      {'embed': 0.02, 'hidden': 0.01, 'readout': 0.005}
    """
    owner = "jinit.mup"
    if not callable(init):
        raise InitializerArgumentError(f"{owner}: init must be an initializer; got {init!r}.")
    if (base is None) == (width_mult is None):
        raise InitializerArgumentError(
            f"{owner}: pass exactly one of base= (the params at base width) or width_mult= "
            f"(width / base width); got base={'set' if base is not None else None}, "
            f"width_mult={width_mult!r}.")
    base_shapes = None
    if base is not None:
        flat = flatten(base)
        base_shapes = tuple((p, tuple(int(d) for d in x.shape))
                            for p, x in zip(flat.paths, flat.leaves, strict=True)
                            if is_array_like(x))
        bad = [(p, s) for p, s in base_shapes if any(d <= 0 for d in s)]
        if bad:
            raise InitializerArgumentError(
                f"{owner}: base widths must be positive; leaf {bad[0][0]!r} has base shape "
                f"{bad[0][1]}.")
    else:
        check_real("width_mult", width_mult, owner=owner, positive=True)
        width_mult = float(width_mult)
    sel_in = _select.to_selector(input) if input is not None else None
    sel_out = _select.to_selector(output) if output is not None else None
    cfg = MuP(init, base_shapes, width_mult, sel_in, sel_out, bool(readout_zero_init),
              bool(output_multiplier), normalize_axes("in_axis", in_axis, owner=owner),
              normalize_axes("out_axis", out_axis, owner=owner))
    pairs = [(sel, cfg) for sel in (sel_out, sel_in) if sel is not None]
    return rules(*pairs, Rule(_select.path(".*"), cfg, required=False))


# --- LSUV ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LsuvLayer:
    """One layer's LSUV record (see :func:`lsuv`).

    Attributes:
      path: the kernel's path.
      var_before: the output variance on the batch before LSUV touched this layer.
      var_after: the output variance after the last rescaling.
      iterations: how many times the kernel was rescaled.
      converged: whether ``|var_after - target_var| < tol``.
    """

    path: str
    var_before: float
    var_after: float
    iterations: int
    converged: bool


def _is_linen(model: Any) -> bool:
    linen = sys.modules.get("flax.linen")
    return linen is not None and isinstance(model, linen.Module)


def _linen_outputs_fn(module: Any, tree: PyTree, kernels: list[str], method: Any,
                      kwargs: Mapping[str, Any]) -> Callable[[PyTree, Any], dict[str, Any]]:
    """``outputs_fn`` of a linen module: each selected kernel's module output, forward order."""
    wrapped = not (isinstance(tree, Mapping) and "params" in tree)
    owner: dict[str, str] = {}  # module path -> kernel path
    for k in kernels:
        inner = k if wrapped else k.removeprefix("params/")
        if not wrapped and inner == k:
            raise PathError(f"lsuv: layer {k!r} is not in the 'params' collection; select "
                            "kernels (e.g. 'params/.*/kernel').")
        owner[inner.rpartition("/")[0]] = k
    kwargs = dict(kwargs)
    extra = kwargs.pop("mutable", ())  # e.g. ["batch_stats"] to run BatchNorm in train mode
    mutable = True if extra is True else ["intermediates", *(
        [extra] if isinstance(extra, str) else extra or ())]

    def outputs_fn(params: PyTree, batch: Any) -> dict[str, Any]:
        seen: list[str] = []

        def capture(mdl: Any, name: str) -> bool:
            where = "/".join(mdl.path)
            if name == "__call__" and where in owner:
                seen.append(where)
                return True
            return False

        variables = {"params": params} if wrapped else params
        _, state = module.apply(variables, batch, capture_intermediates=capture,
                                mutable=mutable, method=method, **kwargs)
        found = state["intermediates"]
        out: dict[str, Any] = {}
        for where in dict.fromkeys(seen):  # forward order, once per module
            node = found
            for part in where.split("/") if where else ():  # "" is the root module
                node = node[part]
            out[owner[where]] = _pool(node["__call__"], owner[where])
        return out

    return outputs_fn


def _pool(outputs: Any, path: str) -> jax.Array:
    """One array of every output a layer produced (a shared layer is called several times)."""
    arrays = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    if not arrays or not all(isinstance(a, jax.Array) for a in arrays):
        raise LeafInitError(f"lsuv: the output of layer {path!r} is not an array "
                            f"({type(arrays[0]).__name__ if arrays else 'nothing'}).", path=path)
    return jnp.concatenate([a.ravel() for a in arrays]) if len(arrays) > 1 else arrays[0]


def lsuv(
    model: Any,
    params: PyTree,
    batch: Any,
    *,
    layers: Any = None,
    tol: float = 0.1,
    max_iter: int = 10,
    target_var: float = 1.0,
    method: Any = None,
    apply_kwargs: Mapping[str, Any] | None = None,
    return_report: bool = False,
) -> PyTree | tuple[PyTree, tuple[LsuvLayer, ...]]:
    """Layer-sequential unit-variance init: rescales kernels so each layer's output has var 1.

    Start from your own init (LSUV's paper uses orthogonal: ``jinit.rules((".*/kernel",
    jinit.orthogonal()), ...)``). Then, for each selected layer in forward order: run
    ``batch`` through the model, measure ``v = Var(layer output)`` over all elements, and set
    ``W <- W * sqrt(target_var / v)``, until ``|v - target_var| < tol`` or ``max_iter``
    rescalings. Biases and every other leaf are left as they are (the same objects).

    ``model`` is either

    * a Flax linen module: ``params`` is its variables dict (``{"params": ...}``) or its params
      alone; a layer's output is its module's ``__call__`` output, read with
      ``capture_intermediates``; ``layers`` selects kernels (default: every ``kernel``); or
    * a function ``outputs_fn(params, batch) -> {kernel_path: output}`` returning, in forward
      order, each layer's output keyed by its kernel's path (as :func:`jinit.paths` lists it);
      ``layers`` (default: all returned) narrows them.

    The forward pass is jitted once and reused; the per-layer loop runs in Python. A layer
    that has not converged after ``max_iter`` rescalings raises a ``RuntimeWarning``.

    Args:
      model: a linen module or an ``outputs_fn``.
      params: the initialized tree (not modified).
      batch: a representative input batch (the paper uses one minibatch).
      layers: selector of the kernels to normalize.
      tol: the tolerance on ``|Var - target_var|`` (> 0).
      max_iter: the maximum number of rescalings per layer (>= 1).
      target_var: the output variance to reach (> 0).
      method, apply_kwargs: passed to ``module.apply`` (e.g. ``{"train": False}``).
      return_report: also return one :class:`LsuvLayer` per layer.

    Returns:
      The new params (same structure and container types), and the report if asked.

    Raises:
      InitializerArgumentError: for ``tol``/``target_var`` <= 0 or ``max_iter`` < 1.
      PathError: ``layers`` selects nothing, a selected kernel has no output, or an output
        key is not a path of ``params``.
      LeafInitError: a layer's output is not an array, or its variance is 0 or not finite
        (rescaling cannot fix a dead layer).

    References:
      Mishkin & Matas, `All you need is a good init <https://arxiv.org/abs/1511.06422>`_,
      ICLR 2016.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jinit
      >>> model = nn.Sequential([nn.Dense(64), nn.tanh, nn.Dense(64), nn.tanh, nn.Dense(10)])
      >>> x = jax.random.normal(jax.random.key(1), (256, 32))
      >>> variables = model.init(jax.random.key(0), x)
      >>> new, report = jinit.lsuv(model, variables, x, return_report=True)
      >>> [(r.path, r.converged) for r in report]  # doctest: +NORMALIZE_WHITESPACE
      [('params/layers_0/kernel', True), ('params/layers_2/kernel', True),
       ('params/layers_4/kernel', True)]
    """
    owner = "jinit.lsuv"
    check_real("tol", tol, owner=owner, positive=True)
    check_real("target_var", target_var, owner=owner, positive=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InitializerArgumentError(f"{owner}: max_iter must be an int >= 1; got "
                                       f"max_iter={max_iter!r}.")
    flat = flatten(params)
    index = {p: i for i, p in enumerate(flat.paths) if is_array_like(flat.leaves[i])}
    if _is_linen(model):
        select = _select.to_selector(layers if layers is not None else _select.name("kernel"))
        match = select.prepare(params)
        kernels = [p for p, i in index.items() if match(p, flat.leaves[i])]
        if not kernels:
            raise PathError(_nothing_selected(select, list(index)))
        outputs_fn = _linen_outputs_fn(model, params, kernels, method, dict(apply_kwargs or {}))
    elif callable(model):
        outputs_fn, kernels = model, None
    else:
        raise InitializerArgumentError(
            f"{owner}: model must be a flax.linen Module or a function outputs_fn(params, "
            f"batch) -> {{kernel_path: output}}; got {model!r}.")

    order = _forward_order(outputs_fn, params, batch, index)
    if kernels is None:
        if layers is None:
            kernels = order
        else:
            match = _select.to_selector(layers).prepare(params)
            kernels = [p for p in order if match(p, flat.leaves[index[p]])]
            if not kernels:
                raise PathError(_nothing_selected(layers, order))
    missing = [k for k in kernels if k not in order]
    if missing:
        raise PathError(f"lsuv: no output was produced for layer(s) {missing}; outputs came "
                        f"for {order}. Is the module called in the forward pass?")
    kernels = [k for k in order if k in kernels]

    variances = jax.jit(lambda p, b: {k: jnp.var(v.astype(jnp.float32))
                                      for k, v in outputs_fn(p, b).items() if k in kernels})
    leaves = list(flat.leaves)
    report = []
    for path in kernels:
        i = index[path]
        first = None
        for it in range(max_iter + 1):
            v = float(variances(flat.unflatten(leaves), batch)[path])
            if not (math.isfinite(v) and v > 0):
                raise LeafInitError(
                    f"lsuv: the output of layer {path!r} has variance {v} on this batch; a "
                    "constant (dead) or diverging layer cannot be rescaled to unit variance. "
                    "Check its init and the batch.", path=path)
            first = v if first is None else first
            if abs(v - target_var) < tol or it == max_iter:
                break
            w = leaves[i]
            leaves[i] = (w * math.sqrt(target_var / v)).astype(w.dtype)
        converged = abs(v - target_var) < tol
        if not converged:
            warnings.warn(f"lsuv: layer {path!r} did not reach |Var - {target_var}| < {tol} in "
                          f"{max_iter} rescalings (Var = {v:.4g}).", RuntimeWarning, stacklevel=2)
        report.append(LsuvLayer(path, first, v, it, converged))
    out = flat.unflatten(leaves)
    return (out, tuple(report)) if return_report else out


def _forward_order(outputs_fn: Callable[..., Any], params: PyTree, batch: Any,
                   index: Mapping[str, int]) -> list[str]:
    """The output keys in the order ``outputs_fn`` returns them (traced; nothing computed)."""
    order: list[str] = []

    def probe(p: PyTree, b: Any) -> Any:
        outs = outputs_fn(p, b)
        if not isinstance(outs, Mapping):
            raise InitializerArgumentError(
                f"lsuv: outputs_fn must return a dict {{kernel_path: output}}; it returned "
                f"{type(outs).__name__}.")
        order.extend(outs)
        return None

    jax.eval_shape(probe, params, batch)
    for k in order:
        if k not in index:
            raise PathError("lsuv: outputs_fn returned an output for " +
                            _unknown_path_message(k, list(index)))
    return order


def _nothing_selected(selector: Any, paths: list[str]) -> str:
    shown = ", ".join(map(repr, paths[:12])) + (" ..." if len(paths) > 12 else "")
    return (f"lsuv: layers={selector!r} selects no kernel.\nCandidate paths: {shown}.\nFix the "
            "selector (strings are regexes fullmatched on these paths).")
