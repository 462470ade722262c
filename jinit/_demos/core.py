"""The textbook initialization walk-through, done the jinit way on a Flax MLP.

``Dense(8) -> relu -> Dense(1)`` on a ``(2, 4)`` input, initialized in turn with Flax's
default, N(0, 0.01), the constant 1, Xavier + the constant 42, a custom mixture distribution
(written two ways), and PyTorch's, Keras's and MXNet's defaults. For every parameter it prints
the shape, the first values, the std of the leaf itself, the std over many fresh draws of the
same initializer at the same shape (the leaf alone has too few values to judge), and the
expected std.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jinit
from jinit._paths import path_str
from jinit.compat import keras as keras_init
from jinit.compat import mxnet as mxnet_init
from jinit.compat import torch as torch_init

IN, HIDDEN, OUT = 4, 8, 1
LEAVES = ("Dense_0/kernel", "Dense_0/bias", "Dense_1/kernel", "Dense_1/bias")
REDRAWS = 4096  # keys per recipe for the "redrawn" std (131k values for the 4x8 kernel)
N_VALUES = 4  # values shown per leaf


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One way of initializing the MLP: an initializer and the expected std per leaf.

    A leaf missing from ``inits`` keeps Flax's layer default.
    """

    title: str
    code: str
    inits: dict[str, Callable]
    expected: dict[str, float]


def _mlp(inits: dict[str, Callable]):
    import flax.linen as nn

    def kw(layer: str) -> dict:
        names = {"kernel": "kernel_init", "bias": "bias_init"}
        return {names[leaf]: inits[f"{layer}/{leaf}"] for leaf in names
                if f"{layer}/{leaf}" in inits}

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(HIDDEN, **kw("Dense_0"))(x))
            return nn.Dense(OUT, **kw("Dense_1"))(x)

    return MLP()


def _uniform_std(bound: float) -> float:
    return bound / math.sqrt(3)


# The custom distribution: U(5, 10) w.p. 1/4, 0 w.p. 1/2, U(-10, -5) w.p. 1/4.
# E[w^2] = 1/2 * E[U(5, 10)^2] = 1/2 * (7.5^2 + 5^2 / 12); the mean is 0.
CUSTOM_STD = math.sqrt(0.5 * (7.5**2 + 25 / 12))
CUSTOM_MIXTURE = jinit.mixture([(0.25, torch_init.uniform(5.0, 10.0)),
                                (0.50, jinit.zeros),
                                (0.25, torch_init.uniform(-10.0, -5.0))])


def _abs_below_5(w: jax.Array) -> jax.Array:
    return jnp.abs(w) < 5


CUSTOM_MASKED = jinit.masked(torch_init.uniform(-10.0, 10.0), _abs_below_5)


def _both_kernels(init: Callable, bias: Callable | None = None) -> dict[str, Callable]:
    inits = {"Dense_0/kernel": init, "Dense_1/kernel": init}
    if bias is not None:
        inits.update({"Dense_0/bias": bias, "Dense_1/bias": bias})
    return inits


def _torch_bound(fan_in: int) -> float:
    return 1 / math.sqrt(fan_in)


RECIPES: list[Recipe] = [
    Recipe("Flax's default: lecun_normal kernels (truncated, std 1/sqrt(fan_in)), zero biases",
           "nn.Dense(8)", {},
           {"Dense_0/kernel": 1 / math.sqrt(IN), "Dense_1/kernel": 1 / math.sqrt(HIDDEN)}),
    Recipe("All weights N(0, 0.01), biases zero",
           "nn.Dense(8, kernel_init=jinit.normal(0.01), bias_init=jinit.zeros)",
           _both_kernels(jinit.normal(0.01), jinit.zeros),
           {"Dense_0/kernel": 0.01, "Dense_1/kernel": 0.01}),
    Recipe("All weights constant 1, biases zero",
           "nn.Dense(8, kernel_init=jinit.constant(1.0), bias_init=jinit.zeros)",
           _both_kernels(jinit.constant(1.0), jinit.zeros), {}),
    Recipe("Xavier on the first layer, the constant 42 on the second",
           "nn.Dense(8, kernel_init=jinit.xavier_uniform())\n"
           "nn.Dense(1, kernel_init=jinit.constant(42.0))",
           {"Dense_0/kernel": jinit.xavier_uniform(), "Dense_1/kernel": jinit.constant(42.0)},
           {"Dense_0/kernel": math.sqrt(2 / (IN + HIDDEN))}),
    Recipe("Custom: U(5,10) w.p. 1/4, 0 w.p. 1/2, U(-10,-5) w.p. 1/4, as a mixture",
           "U = jinit.compat.torch.uniform   # U(a, b)\n"
           "jinit.mixture([(0.25, U(5, 10)), (0.5, jinit.zeros), (0.25, U(-10, -5))])",
           _both_kernels(CUSTOM_MIXTURE),
           {"Dense_0/kernel": CUSTOM_STD, "Dense_1/kernel": CUSTOM_STD}),
    Recipe("The same distribution as U(-10, 10) with |w| < 5 masked to zero",
           "jinit.masked(jinit.compat.torch.uniform(-10, 10), lambda w: jnp.abs(w) < 5)",
           _both_kernels(CUSTOM_MASKED),
           {"Dense_0/kernel": CUSTOM_STD, "Dense_1/kernel": CUSTOM_STD}),
    Recipe("PyTorch's nn.Linear default: weight and bias U(+-1/sqrt(fan_in))",
           "kernel_init=jinit.compat.torch.kaiming_uniform(a=math.sqrt(5), layout='flax'),\n"
           "bias_init=jinit.compat.torch.uniform(-b, b) with b = 1/sqrt(fan_in) = 1/sqrt(4), "
           "1/sqrt(8)",
           {"Dense_0/kernel": torch_init.kaiming_uniform(a=math.sqrt(5), layout="flax"),
            "Dense_0/bias": torch_init.uniform(-_torch_bound(IN), _torch_bound(IN)),
            "Dense_1/kernel": torch_init.kaiming_uniform(a=math.sqrt(5), layout="flax"),
            "Dense_1/bias": torch_init.uniform(-_torch_bound(HIDDEN), _torch_bound(HIDDEN))},
           {"Dense_0/kernel": _uniform_std(_torch_bound(IN)),
            "Dense_0/bias": _uniform_std(_torch_bound(IN)),
            "Dense_1/kernel": _uniform_std(_torch_bound(HIDDEN)),
            "Dense_1/bias": _uniform_std(_torch_bound(HIDDEN))}),
    Recipe("Keras's Dense default: glorot_uniform kernels, zero biases",
           "kernel_init=jinit.compat.keras.glorot_uniform(), bias_init=jinit.compat.keras.zeros",
           _both_kernels(keras_init.glorot_uniform(), keras_init.zeros),
           {"Dense_0/kernel": math.sqrt(2 / (IN + HIDDEN)),
            "Dense_1/kernel": math.sqrt(2 / (HIDDEN + OUT))}),
    Recipe("MXNet Gluon's default: net.initialize() = Uniform(0.07) weights, zero biases",
           "kernel_init=jinit.compat.mxnet.uniform(0.07), bias_init=jinit.compat.mxnet.zero",
           _both_kernels(mxnet_init.uniform(0.07), mxnet_init.zero),
           {"Dense_0/kernel": _uniform_std(0.07), "Dense_1/kernel": _uniform_std(0.07)}),
]


def _values(x: np.ndarray) -> str:
    flat = [f"{0.0 if abs(v) < 5e-4 else v:7.3f}" for v in x.ravel()[:N_VALUES]]  # no -0.000
    flat += [" " * 7] * (N_VALUES - len(flat))
    return "[" + " ".join(flat) + (" ...]" if x.size > N_VALUES else "    ]")


def _name(path) -> str:
    return path_str(path).removeprefix("params/")


def _recipe_program(recipe: Recipe) -> Callable:
    """``keys -> (params of every key, y for the first key)`` for one recipe (not jitted).

    ``model.init`` is vmapped over the keys: the first key's parameters are the ones shown,
    and all of them together give the "redrawn" std at the cost of a single initialization.
    """
    x = jax.random.uniform(jax.random.key(42), (2, IN))
    model = _mlp(recipe.inits)

    def program(keys):
        params = jax.vmap(model.init, in_axes=(0, None))(keys, x)
        first = jax.tree.map(lambda p: p[0], params)
        return params, model.apply(first, x)

    return program


def _rows(recipe: Recipe, batch: dict[str, np.ndarray], y: np.ndarray) -> list[dict]:
    rows = []
    for name in LEAVES:
        init = recipe.inits.get(name) or _flax_default(name)
        rows.append({"name": name, "shape": batch[name].shape[1:], "values": batch[name][0],
                     "std": float(batch[name][0].std()),
                     # constants have nothing to re-draw
                     "redrawn": None if isinstance(init, jinit.Constant) else float(
                         batch[name].std()),
                     "expected": recipe.expected.get(name, 0.0)})
    rows.append({"name": "y = mlp(x)", "shape": y.shape, "values": np.asarray(y)})
    return rows


def compute(key: jax.Array, recipes: Sequence[Recipe] = tuple(RECIPES)
            ) -> tuple[list[list[dict]], list[dict[str, np.ndarray]]]:
    """Runs every recipe as ONE jitted program (one compilation keeps the demo fast).

    Returns, per recipe, its rows (one per parameter, then the output) and the parameters
    of all ``REDRAWS`` keys by name.
    """
    programs = [_recipe_program(r) for r in recipes]
    keys = jax.random.split(key, REDRAWS)
    lowered = jax.jit(lambda k: [p(k) for p in programs]).lower(keys)
    # The program runs once on tiny arrays: halve the compile time, the demo's main cost.
    compiled = lowered.compile({"xla_backend_optimization_level": 0})
    results = jax.device_get(compiled(keys))
    batches = [{_name(p): np.asarray(v)
                for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
               for params, _ in results]
    rows = [_rows(r, b, y) for r, b, (_, y) in zip(recipes, batches, results, strict=True)]
    return rows, batches


def _flax_default(name: str) -> Callable:
    return jinit.lecun_normal() if name.endswith("kernel") else jinit.zeros


def print_recipe(number: int, recipe: Recipe, rows: list[dict]) -> None:
    print(f"\n{number}. {recipe.title}")
    for line in recipe.code.split("\n"):
        print(f"   {line}")
    for row in rows:
        line = f"   {row['name']:15s} {str(row['shape']):8s} {_values(row['values'])}"
        if "std" in row:
            redrawn = "      -" if row["redrawn"] is None else f"{row['redrawn']:7.3f}"
            line += f"  {row['std']:7.3f}  {redrawn}  {row['expected']:8.3f}"
        print(line)


CUSTOM_EVENTS = [("P(w = 0)", lambda w: w == 0, 0.5),
                 ("P(5 <= w < 10)", lambda w: (w >= 5) & (w < 10), 0.25),
                 ("P(-10 <= w < -5)", lambda w: (w >= -10) & (w < -5), 0.25)]


def print_custom_check(custom: dict[str, np.ndarray]) -> None:
    """Both forms of the custom distribution, measured on many draws."""
    a, b = custom["mixture"], custom["masked"]
    print(f"\n   Both forms, measured on all {a.size:,} re-drawn values of Dense_0/kernel:")
    print(f"   {'':18s} {'mixture':>8s} {'masked':>8s} {'expected':>9s}")
    for label, event, p in CUSTOM_EVENTS:
        print(f"   {label:18s} {event(a).mean():8.3f} {event(b).mean():8.3f} {p:9.3f}")
    print(f"   {'std':18s} {a.std():8.3f} {b.std():8.3f} {CUSTOM_STD:9.3f}")


def run() -> None:
    """Prints the walk-through."""
    render(*compute(jax.random.key(0)))


def render(all_rows: list[list[dict]], batches: list[dict[str, np.ndarray]]) -> None:
    """Prints what :func:`compute` returned."""
    print(f"Model: Dense({HIDDEN}) -> relu -> Dense({OUT}) (flax.linen) on an input x ~ U(0, 1) "
          f"of shape (2, {IN}).")
    print(f"Each recipe runs model.init for {REDRAWS} keys split from jax.random.key(0) (one "
          "vmapped, jitted call);")
    print("the first key's parameters are shown. Columns: first values, std of that leaf, std "
          f"over all {REDRAWS}")
    print("re-draws (a leaf alone has few values), and the expected std.")
    print(f"\n   {'parameter':15s} {'shape':8s} {'first values':^37s}  {'std':>7s}  "
          f"{'redrawn':>7s}  {'expected':>8s}")
    for i, (recipe, rows) in enumerate(zip(RECIPES, all_rows, strict=True), 1):
        print_recipe(i, recipe, rows)
        if recipe.inits.get("Dense_0/kernel") is CUSTOM_MASKED:
            print_custom_check({"mixture": batches[i - 2]["Dense_0/kernel"],
                                "masked": batches[i - 1]["Dense_0/kernel"]})
