"""The muP coordinate check: activation scales across widths during the first training steps.

Under a correct muP every layer's typical activation entry ("coordinate") keeps its size as the
model gets wider, at initialization and after each update; under the standard parametrization
the updates make hidden and output activations grow with width. :func:`coord_check` trains
the same model at several widths for a few Adam steps and records, per layer and step, the
mean absolute activation; :meth:`CoordCheck.plot` draws the curves (flat is right).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jinit._errors import BackendUnavailableError, InitializerArgumentError
from jinit._paths import flatten
from jinit._research import MuP
from jinit._tree import Rules

__all__ = ["CoordCheck", "coord_check"]


@dataclasses.dataclass(frozen=True, eq=False)
class CoordCheck:
    """What :func:`coord_check` measured.

    Attributes:
      widths: the widths, increasing.
      layers: the recorded layers (module paths, forward order; ``"output"`` is the model's).
      scales: ``(steps + 1, len(widths), len(layers))`` mean ``|activation|`` (averaged over
        seeds); ``scales[0]`` is at initialization, ``scales[t]`` after ``t`` updates.
    """

    widths: tuple[int, ...]
    layers: tuple[str, ...]
    scales: np.ndarray

    @property
    def steps(self) -> int:
        """The number of training steps recorded after initialization."""
        return self.scales.shape[0] - 1

    def growth(self, step: int = -1) -> dict[str, float]:
        """Per layer, the exponent ``g`` of ``scale ∝ width^g`` at ``step`` (least squares in log-log).

        About 0 for every layer under a correct muP; about 1 for hidden and output layers
        after one or more updates under the standard parametrization with one Adam LR.
        """
        logw = np.log(np.asarray(self.widths, np.float64))
        logs = np.log(np.maximum(self.scales[step], np.finfo(np.float64).tiny))
        slope = np.polyfit(logw, logs, 1)[0]
        return dict(zip(self.layers, (float(s) for s in np.atleast_1d(slope)), strict=True))

    def plot(self, path: str | os.PathLike[str], *, title: str | None = None) -> str:
        """Draws mean ``|activation|`` against width, one panel per step, one line per layer.

        Needs matplotlib (``pip install 'jinit[plot]'``). Returns the path written (PNG, or
        whatever format the suffix names).
        """
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise BackendUnavailableError(
                "CoordCheck.plot needs matplotlib: pip install 'jinit[plot]'.") from e
        n = self.steps + 1
        fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), sharey=True, squeeze=False)
        for t, ax in enumerate(axes[0]):
            for j, layer in enumerate(self.layers):
                ax.plot(self.widths, self.scales[t, :, j], marker="o", label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("width")
            ax.set_title(f"t = {t}")
        axes[0][0].set_ylabel("mean |activation|")
        axes[0][-1].legend(fontsize="small", loc="best")
        fig.suptitle(title or "coordinate check (flat lines: width-independent)")
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=100)
        plt.close(fig)
        return os.fspath(path)


def _mup_lr_scales(tree_init: Any, params: Any) -> dict[str, float] | None:
    """muP's Adam LR multipliers per leaf path: ``1/m_in`` for hidden and output weights.

    ``None`` when ``tree_init`` is not a :func:`jinit.mup` rule set.
    """
    if not isinstance(tree_init, Rules):
        return None
    cfg = next((r.init for r in tree_init.rules if isinstance(r.init, MuP)), None)
    if cfg is None:
        return None
    flat = flatten(params)
    out = {}
    for path, leaf in zip(flat.paths, flat.leaves, strict=True):
        kind, m_in, _ = cfg._kind(path, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype))
        out[path] = 1.0 / m_in if kind in ("hidden", "output") else 1.0
    return out


def _activations(module: Any) -> Callable[[Any, Any], dict[str, jax.Array]]:
    """``(variables, x) -> {layer: mean |output|}`` for every submodule call and the output."""

    def run(variables: Any, x: Any) -> dict[str, jax.Array]:
        out, state = module.apply(variables, x, capture_intermediates=True,
                                  mutable=["intermediates"])
        found = {}
        flat = flatten(state["intermediates"])
        for path, value in zip(flat.paths, flat.leaves, strict=True):
            module_path, _, rest = path.rpartition("/__call__")
            if module_path and isinstance(value, jax.Array):
                found.setdefault(module_path, jnp.mean(jnp.abs(value.astype(jnp.float32))))
        found["output"] = jnp.mean(jnp.abs(jnp.asarray(out, jnp.float32)))
        return found

    return run


def _check_widths(widths: Any) -> tuple[int, ...]:
    try:
        ws = tuple(operator.index(w) for w in widths)
    except TypeError as e:
        raise InitializerArgumentError(
            f"coord_check: widths must be a sequence of ints; got {widths!r}.") from e
    if len(ws) < 2 or any(w < 1 for w in ws) or len(set(ws)) != len(ws):
        raise InitializerArgumentError(
            f"coord_check: widths must be at least two distinct positive ints; got {widths!r}.")
    return tuple(sorted(ws))


def coord_check(
    model: Callable[[int], Any],
    init: Callable[[int], Any],
    x: Any,
    y: Any = None,
    *,
    widths: Sequence[int] = (64, 128, 256, 512),
    steps: int = 3,
    lr: float = 1e-2,
    seeds: int = 2,
    mup_lr: bool | None = None,
    key: jax.Array | None = None,
) -> CoordCheck:
    r"""Runs the muP coordinate check: per-layer activation scales across widths and steps.

    For each width ``w``: builds ``model(w)`` (a Flax linen module), initializes its params
    with the tree initializer ``init(w)`` (e.g. ``jinit.mup(...)`` with the base width's
    shapes, or ``jinit.compat.flax.defaults()`` for the standard parametrization), then takes
    ``steps`` Adam steps on the mean squared error to ``y`` (zeros if ``None``) on the fixed
    batch ``x``. Before the first step and after each, the mean ``|output|`` of every
    submodule (and of the model) is recorded; results are averaged over ``seeds`` keys.

    Learning rates: a :func:`jinit.mup` initializer trains with muP's Adam rates (hidden and
    output weights ``lr / width_mult``, everything else ``lr``), any other with ``lr``
    everywhere; ``mup_lr`` forces one or the other.

    Read the result with :meth:`CoordCheck.growth` (the exponent of width, ~0 when right) or
    draw it with :meth:`CoordCheck.plot`.

    Args:
      model: ``width -> flax.linen.Module`` (whose only variables are ``params``).
      init: ``width -> tree initializer`` of that module's params.
      x: one input batch; y: its regression target (default zeros).
      widths: at least two widths.
      steps: training steps after initialization (>= 0).
      lr: the Adam learning rate at base width.
      seeds: keys averaged over (>= 1).
      mup_lr: use muP's per-layer Adam rates (default: when ``init(w)`` is a muP rule set).
      key: the root key (default ``jax.random.key(0)``).

    Returns:
      A :class:`CoordCheck`.

    Raises:
      InitializerArgumentError: bad widths, steps, seeds or lr; ``mup_lr=True`` with an
        initializer that is not a :func:`jinit.mup` rule set.

    References:
      Yang et al., `Tensor Programs V <https://arxiv.org/abs/2203.03466>`_, 2022, Appendix D.1
      ("coordinate check"); `microsoft/mup <https://github.com/microsoft/mup>`_.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jinit
      >>> class MLP(nn.Module):
      ...     width: int
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         x = nn.relu(nn.Dense(self.width)(x))
      ...         x = nn.relu(nn.Dense(self.width)(x))
      ...         return nn.Dense(1)(x)
      >>> x = jax.random.normal(jax.random.key(1), (64, 16))
      >>> base = jax.eval_shape(MLP(32).init, jax.random.key(0), x)["params"]
      >>> mup = lambda w: jinit.rules((".*/bias", jinit.zeros),
      ...                             jinit.mup(jinit.lecun_normal(), base=base))
      >>> check = jinit.coord_check(MLP, mup, x, widths=(32, 64, 128), steps=1, seeds=1)
      >>> check.layers
      ('Dense_0', 'Dense_1', 'Dense_2', 'output')
      >>> max(abs(g) for g in check.growth(step=1).values()) < 0.2  # flat after an update
      True
    """
    ws = _check_widths(widths)
    for name, value, low in (("steps", steps, 0), ("seeds", seeds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InitializerArgumentError(
                f"coord_check: {name} must be an int >= {low}; got {name}={value!r}.")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InitializerArgumentError(f"coord_check: lr must be a finite number > 0; got "
                                       f"lr={lr!r}.")
    key = jax.random.key(0) if key is None else key
    per_width, layers = [], None
    for w in ws:
        got = _one_width(model(w), init(w), x, y, steps, lr, seeds, mup_lr, key)
        layers = layers or list(got)
        per_width.append([[got[name][t] if name in got else np.nan for name in layers]
                          for t in range(steps + 1)])
    scales = np.transpose(np.asarray(per_width, np.float64), (1, 0, 2))
    return CoordCheck(ws, tuple(layers), scales)


def _one_width(module: Any, tree_init: Any, x: Any, y: Any, steps: int, lr: float, seeds: int,
               mup_lr: bool | None, key: jax.Array) -> dict[str, list[float]]:
    """Mean |activation| per layer and step at one width, averaged over seeds."""
    acts = jax.jit(_activations(module))
    variables = jax.eval_shape(module.init, key, x)
    extra = sorted(set(variables) - {"params"})
    if extra:
        raise InitializerArgumentError(
            f"coord_check: the model has variable collections {extra} besides 'params'; use a "
            "model without state (e.g. no BatchNorm) or in its inference mode.")
    target = jnp.zeros(()) if y is None else jnp.asarray(y)

    def loss(params):
        out = module.apply({"params": params}, x)
        return 0.5 * jnp.mean((out - target) ** 2)

    totals: dict[str, np.ndarray] = {}
    step = None
    for s in range(seeds):
        params = tree_init(jax.random.fold_in(key, s), variables["params"])
        if step is None:  # the same rates for every seed: one compiled step
            step = jax.jit(_adam_step(loss, _rates(tree_init, params, lr, mup_lr)))
        state = jax.tree.map(jnp.zeros_like, (params, params))
        for t in range(steps + 1):
            if t:
                params, state = step(params, state, t)
            for name, v in acts({"params": params}, x).items():
                totals.setdefault(name, np.zeros(steps + 1))[t] += float(v) / seeds
    return {name: list(v) for name, v in totals.items()}


def _rates(tree_init: Any, params: Any, lr: float, mup_lr: bool | None) -> Any:
    """The per-leaf Adam learning rates: muP's, or ``lr`` everywhere."""
    scales = _mup_lr_scales(tree_init, params)
    if mup_lr and scales is None:
        raise InitializerArgumentError(
            f"coord_check: mup_lr=True needs a jinit.mup(...) initializer; got {tree_init!r}.")
    flat = flatten(params)
    use = scales is not None and mup_lr is not False
    return flat.unflatten([lr * (scales[p] if use else 1.0) for p in flat.paths])


def _adam_step(loss: Callable[[Any], jax.Array], rates: Any, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-8) -> Callable[..., Any]:
    """One Adam update with a learning rate per leaf (``rates``, a tree like the params)."""

    def step(params, state, t):
        grads = jax.grad(loss)(params)
        m, v = state
        m = jax.tree.map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
        c1, c2 = 1 - b1**t, 1 - b2**t
        params = jax.tree.map(lambda p, r, m_, v_: p - r * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps),
                              params, rates, m, v)
        return params, (m, v)

    return step
