"""``python -m jinit compare NAME``: histograms of a jinit initializer next to the original.

Draws the values of ``jinit.compat.<framework>.<name>`` and of the framework's own initializer
of that name on a weight of the same shape (each in the framework's native layout), plus a
quantile-quantile plot, and writes a PNG (matplotlib, Agg backend). The title carries both
means and standard deviations and the two-sample Kolmogorov-Smirnov statistic, so a user can
see that the distributions match.

Names: ``torch.kaiming_uniform`` (or ``kaiming_uniform --framework torch``) compares with
``torch.nn.init.kaiming_uniform_``; ``keras.glorot_uniform`` with
``keras.initializers.get("glorot_uniform")``; ``mxnet.xavier`` with ``mxnet.init.Xavier``;
``jax.lecun_normal`` with ``jax.nn.initializers.lecun_normal`` against ``jinit.lecun_normal``.
Keyword arguments go to both sides: ``--arg mode=fan_out --arg a=0.1``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jinit._errors import BackendUnavailableError, InitializerArgumentError

FRAMEWORKS = ("torch", "keras", "mxnet", "jax")


def split_name(name: str, framework: str | None) -> tuple[str, str]:
    """``("torch", "kaiming_uniform")`` from ``"torch.kaiming_uniform"`` or a framework flag.

    Examples:
      >>> split_name("torch.kaiming_uniform", None)
      ('torch', 'kaiming_uniform')
      >>> split_name("xavier", "mxnet")
      ('mxnet', 'xavier')
    """
    if "." in name:
        prefix, _, rest = name.partition(".")
        if prefix not in FRAMEWORKS:
            raise InitializerArgumentError(
                f"compare: unknown framework {prefix!r} in {name!r}; use one of {FRAMEWORKS}.")
        if framework not in (None, prefix):
            raise InitializerArgumentError(
                f"compare: {name!r} names framework {prefix!r} but --framework is "
                f"{framework!r}; give one of them.")
        return prefix, rest
    return framework or "torch", name


def jinit_initializer(framework: str, name: str, kwargs: dict) -> Callable:
    """The jinit side: ``jinit.compat.<framework>.<name>(**kwargs)`` (``jinit.<name>`` for jax)."""
    module = importlib.import_module("jinit" if framework == "jax" else
                                     f"jinit.compat.{framework}")
    factory = getattr(module, name, None)
    if factory is None or name.startswith("_"):
        public = sorted(n for n in dir(module) if not n.startswith("_") and n[0].islower())
        raise InitializerArgumentError(
            f"compare: {module.__name__} has no initializer {name!r}; available: "
            f"{', '.join(public)}.")
    if framework == "jax" and name in ("zeros", "ones"):
        return factory
    return factory(**kwargs)


def _torch_sample(name: str, kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
    import torch

    fn = getattr(torch.nn.init, name + "_", None)
    if fn is None:
        raise InitializerArgumentError(f"compare: torch.nn.init has no {name}_.")
    torch.manual_seed(seed)
    w = torch.empty(shape)
    with torch.no_grad():
        fn(w, **kwargs)
    return w.numpy().copy()


def _keras_sample(name: str, kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
    import keras

    cls = type(keras.initializers.get(name))
    if "seed" in inspect.signature(cls).parameters:
        kwargs = {"seed": seed, **kwargs}
    return np.asarray(cls(**kwargs)(shape, dtype="float32"))


def _mxnet_sample(name: str, kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
    from jinit.interop._mxnet import import_mxnet

    mx = import_mxnet()
    wanted = name.replace("_", "").lower()
    classes = {n.lower(): getattr(mx.init, n) for n in dir(mx.init) if n[:1].isupper()}
    cls = classes.get(wanted)
    if cls is None:
        raise InitializerArgumentError(f"compare: mxnet.init has no initializer {name!r}.")
    mx.random.seed(seed)
    arr = mx.nd.zeros(shape)
    cls(**kwargs)(mx.init.InitDesc("weight"), arr)
    return arr.asnumpy()


def _jax_sample(name: str, kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
    import jax

    init = getattr(jax.nn.initializers, name)
    init = init if name in ("zeros", "ones") else init(**kwargs)
    return np.asarray(init(jax.random.key(seed + 1), shape))


_SAMPLERS = {"torch": _torch_sample, "keras": _keras_sample, "mxnet": _mxnet_sample,
             "jax": _jax_sample}


def samples(name: str, framework: str | None = None, shape: Sequence[int] = (256, 512),
            seed: int = 0, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """Draws ``(jinit values, framework values, framework name)`` for one initializer.

    Raises:
      InitializerArgumentError: an unknown framework or initializer name.
      BackendUnavailableError: the framework cannot be imported.

    Examples:
      >>> ours, theirs, fw = samples("jax.lecun_normal", shape=(64, 32))
      >>> ours.shape == theirs.shape == (64, 32), fw
      (True, 'jax')
    """
    import jax

    framework, name = split_name(name, framework)
    shape = tuple(int(d) for d in shape)
    ours = np.asarray(jinit_initializer(framework, name, kwargs)(jax.random.key(seed), shape))
    try:
        theirs = _SAMPLERS[framework](name, dict(kwargs), shape, seed)
    except ImportError as e:
        raise BackendUnavailableError(
            f"compare: {framework} cannot be imported ({e}); install it to compare.") from e
    return ours, theirs, framework


def plot(name: str, framework: str | None = None, shape: Sequence[int] = (256, 512),
         out: str = "compare.png", seed: int = 0, **kwargs: Any) -> str:
    """Writes the comparison PNG and returns its path (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours, theirs, framework = samples(name, framework, shape, seed, **kwargs)
    _, short = split_name(name, framework)
    a, b = ours.ravel().astype(np.float64), theirs.ravel().astype(np.float64)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 81)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
    for x, label, color in ((a, f"jinit {short}", "C0"), (b, f"{framework} {short}", "C1")):
        left.hist(x, bins=bins, histtype="step", density=True, lw=1.6, color=color,
                  label=f"{label}: mean {x.mean():+.4f}, std {x.std():.4f}")
    left.set_xlabel("value")
    left.set_ylabel("density")
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    q = np.linspace(0.001, 0.999, 300)
    qa, qb = np.quantile(a, q), np.quantile(b, q)
    right.plot(qb, qa, ".", ms=3, color="C2")
    right.plot([qb[0], qb[-1]], [qb[0], qb[-1]], "k--", lw=0.8)
    right.set_xlabel(f"{framework} quantiles")
    right.set_ylabel("jinit quantiles")
    ks = _ks(a, b)
    fig.suptitle(f"{framework}.{short} vs jinit, shape {tuple(shape)} "
                 f"({a.size:,} values each); KS statistic {ks:.4f}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic (max CDF distance)."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def _kwarg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare string such as mode=fan_out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="e.g. torch.kaiming_uniform, keras.glorot_uniform, "
                        "mxnet.xavier, jax.lecun_normal")
    parser.add_argument("--framework", choices=FRAMEWORKS, default=None,
                        help="the framework when NAME has no prefix (default torch)")
    parser.add_argument("--shape", type=int, nargs="+", default=[256, 512],
                        help="weight shape in the framework's layout (default 256 512)")
    parser.add_argument("--arg", type=_kwarg, action="append", default=[], metavar="K=V",
                        help="keyword argument for both initializers (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="compare.png", help="PNG path (default compare.png)")


def main(args: argparse.Namespace) -> int:
    path = plot(args.name, args.framework, args.shape, args.out, args.seed, **dict(args.arg))
    print(f"wrote {path}")
    return 0
