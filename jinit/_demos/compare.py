"""``jinit compare NAME``: histograms of a jinit initializer next to the framework's own.

Draws the values of ``jinit.compat.<framework>.<name>`` and of the framework's initializer of
that name on a weight of the same shape (each in the framework's native layout), and writes a
figure (matplotlib): both histograms with their means and standard deviations, a
quantile-quantile plot against the line ``y = x``, and a two-sample Kolmogorov-Smirnov test
(statistic and p-value), so a user can see that the distributions match. The title names both
initializers with their arguments.

Names: ``torch.kaiming_uniform`` (or ``kaiming_uniform --framework torch``) compares with
``torch.nn.init.kaiming_uniform_``; ``keras.glorot_uniform`` with
``keras.initializers.GlorotUniform``; ``mxnet.xavier`` with ``mxnet.init.Xavier``;
``jax.lecun_normal`` with ``jax.nn.initializers.lecun_normal`` against ``jinit.lecun_normal``.
``jinit compare --list`` lists them all. Keyword arguments go to both sides:
``--arg mode=fan_out --arg a=0.1``.

Everything the user typed is checked before anything is drawn: the name, the arguments (by
building the jinit initializer and matching the framework's signature) and the output path.
Mistakes raise :class:`~jinit._cli.UsageError`, which the command prints as one line.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import math
import os
import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jinit._cli import UsageError, did_you_mean, install_hint
from jinit._errors import BackendUnavailableError, JinitError
from jinit._initializers import Initializer

#: framework -> the jinit module with its initializers (``jax``: jinit itself).
JINIT_MODULES: dict[str, str] = {
    "torch": "jinit.compat.torch",
    "keras": "jinit.compat.keras",
    "mxnet": "jinit.compat.mxnet",
    "jax": "jinit",
}
FRAMEWORKS = tuple(JINIT_MODULES)


# --- names -----------------------------------------------------------------------------------

def is_initializer(obj: Any) -> bool:
    """Whether ``obj`` is a leaf initializer or a factory of one (not a helper, class or module).

    Examples:
      >>> import jinit
      >>> is_initializer(jinit.zeros), is_initializer(jinit.he_normal)
      (True, True)
      >>> is_initializer(jinit.calculate_gain), is_initializer(jinit.rules), is_initializer(jinit)
      (False, False, False)
    """
    if isinstance(obj, Initializer):
        return True
    return inspect.isfunction(obj) and inspect.signature(obj).return_annotation in (
        "Initializer", Initializer)


def _jinit_names(framework: str) -> list[str]:
    module = importlib.import_module(JINIT_MODULES[framework])
    names = [n for n in module.__all__ if is_initializer(getattr(module, n))]
    if framework == "jax":  # only the names jax.nn.initializers has too
        import jax.nn.initializers as jax_inits

        names = [n for n in names if hasattr(jax_inits, n)]
    return names


def names() -> list[str]:
    """Every ``framework.name`` that ``compare`` accepts, sorted.

    Examples:
      >>> all_names = names()
      >>> "torch.kaiming_uniform" in all_names, "jax.lecun_normal" in all_names
      (True, True)
      >>> "torch.defaults" in all_names, "jax.chrono" in all_names  # tree init; jinit only
      (False, False)
    """
    return sorted(f"{fw}.{n}" for fw in FRAMEWORKS for n in _jinit_names(fw))


def split_name(name: str, framework: str | None) -> tuple[str, str]:
    """``("torch", "kaiming_uniform")`` from ``"torch.kaiming_uniform"`` or a framework flag.

    Examples:
      >>> split_name("torch.kaiming_uniform", None)
      ('torch', 'kaiming_uniform')
      >>> split_name("xavier", "mxnet")
      ('mxnet', 'xavier')
    """
    prefix, dot, rest = name.partition(".")
    if not dot:
        return framework or "torch", name
    if prefix not in FRAMEWORKS:
        raise UsageError(f"unknown framework {prefix!r} in {name!r}; use one of "
                         f"{', '.join(FRAMEWORKS)}.{did_you_mean(prefix, FRAMEWORKS)}")
    if framework not in (None, prefix):
        raise UsageError(f"{name!r} names framework {prefix!r} but --framework is "
                         f"{framework!r}; give one of them.")
    return prefix, rest


def _format_args(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _keywords(fn: Callable, skip: Iterable[str] = ()) -> frozenset[str] | None:
    """The keyword arguments ``fn`` takes (``None`` when it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) - set(skip)


def _check_keywords(kwargs: Mapping[str, Any], accepted: frozenset[str] | None,
                    owner: str) -> None:
    if accepted is None:  # it takes **kwargs: the call itself will tell
        return
    for key in kwargs:
        if key not in accepted:
            takes = ", ".join(sorted(accepted)) or "none"
            raise UsageError(f"--arg {key}: {owner} has no argument {key!r} (its arguments: "
                             f"{takes}).{did_you_mean(key, accepted)}")


def jinit_initializer(framework: str, name: str, kwargs: Mapping[str, Any]) -> Initializer:
    """The jinit side, built with ``kwargs``: ``jinit.compat.<framework>.<name>(**kwargs)``.

    Raises:
      UsageError: an unknown name (with the closest known names) or a bad argument (named).
    """
    module = JINIT_MODULES[framework]
    if name not in _jinit_names(framework):
        raise UsageError(_unknown(framework, name) + " (jinit compare --list shows all)")
    obj = getattr(importlib.import_module(module), name)
    if isinstance(obj, Initializer):  # zeros, ones: an initializer, not a factory
        _check_keywords(kwargs, frozenset(), f"{module}.{name}")
        return obj
    _check_keywords(kwargs, _keywords(obj), f"{module}.{name}")
    try:
        return obj(**kwargs)
    except (JinitError, TypeError, ValueError) as e:
        raise UsageError(f"--arg {_format_args(kwargs)}: {e}") from e


def _unknown(framework: str, name: str) -> str:
    """Why ``framework.name`` cannot be compared."""
    module = importlib.import_module(JINIT_MODULES[framework])
    if name not in module.__all__:
        qualified = f"{framework}.{name}"
        return f"no initializer {qualified!r}.{did_you_mean(qualified, names())}"
    if not is_initializer(getattr(module, name)):
        return (f"{module.__name__}.{name} is not a leaf initializer; compare draws one weight "
                "from a (key, shape, dtype) initializer.")
    return f"jinit.{name} has no counterpart in jax.nn.initializers to compare with."


# --- the framework side ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Reference:
    """The framework's own initializer: its name, the keywords it takes and how to draw it."""

    label: str  # e.g. "torch.nn.init.kaiming_uniform_"
    keywords: frozenset[str] | None  # None: it takes **kwargs
    draw: Callable[[dict, tuple[int, ...], int], np.ndarray]  # (kwargs, shape, seed) -> values


def _torch(name: str) -> Reference | None:
    import torch

    fn = getattr(torch.nn.init, name + "_", None)
    if fn is None:
        return None

    def draw(kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        w = torch.empty(shape)
        with torch.no_grad():
            fn(w, **kwargs)
        return w.numpy().copy()

    return Reference(f"torch.nn.init.{name}_", _keywords(fn, ("tensor", "generator")), draw)


def _keras(name: str) -> Reference | None:
    import keras

    cls = getattr(keras.initializers, name, None)
    if not inspect.isclass(cls):
        return None
    seeded = "seed" in inspect.signature(cls).parameters

    def draw(kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
        init = cls(**({"seed": seed} if seeded else {}), **kwargs)
        return np.asarray(init(shape, dtype="float32"))

    return Reference(f"keras.initializers.{cls.__name__}", _keywords(cls, ("seed",)), draw)


def _mxnet(name: str) -> Reference | None:
    from jinit.interop._mxnet import import_mxnet

    mx = import_mxnet()
    classes = {n.lower(): getattr(mx.init, n) for n in dir(mx.init) if n[:1].isupper()}
    cls = classes.get(name.replace("_", "").lower())
    if cls is None:
        return None

    def draw(kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
        mx.random.seed(seed)
        arr = mx.nd.zeros(shape)
        cls(**kwargs)(mx.init.InitDesc("weight"), arr)
        return arr.asnumpy()

    return Reference(f"mxnet.init.{cls.__name__}", _keywords(cls), draw)


def _jax(name: str) -> Reference | None:
    import jax

    obj = getattr(jax.nn.initializers, name, None)
    if obj is None:
        return None
    direct = "key" in inspect.signature(obj).parameters  # zeros, ones: already initializers

    def draw(kwargs: dict, shape: tuple[int, ...], seed: int) -> np.ndarray:
        init = obj if direct else obj(**kwargs)
        return np.asarray(init(jax.random.key(seed + 1), shape))

    return Reference(f"jax.nn.initializers.{name}", frozenset() if direct else _keywords(obj),
                     draw)


_REFERENCES: dict[str, Callable[[str], Reference | None]] = {
    "torch": _torch, "keras": _keras, "mxnet": _mxnet, "jax": _jax}
_PACKAGES = {"torch": "torch", "keras": "keras", "jax": "jax"}  # mxnet reports for itself


def reference(framework: str, name: str, kwargs: Mapping[str, Any]) -> Reference:
    """The framework's initializer of that name, its keywords checked against ``kwargs``.

    Raises:
      BackendUnavailableError: the framework is not installed (the message says how to).
      UsageError: the framework has no such initializer, or not one of the ``kwargs``.
    """
    try:
        ref = _REFERENCES[framework](name)
    except ModuleNotFoundError as e:
        raise BackendUnavailableError(
            f"comparing with {framework} needs it: {install_hint(_PACKAGES[framework])}") from e
    if ref is None:
        raise UsageError(f"{framework} has no initializer matching jinit's {name!r}; "
                         "nothing to compare with.")
    _check_keywords(kwargs, ref.keywords, ref.label)
    return ref


# --- drawing, testing, plotting --------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """Values of one initializer from jinit and from its framework, on the same shape."""

    framework: str
    name: str
    kwargs: Mapping[str, Any]
    reference: str  # the framework initializer's name, e.g. "torch.nn.init.kaiming_uniform_"
    ours: np.ndarray = dataclasses.field(repr=False)
    theirs: np.ndarray = dataclasses.field(repr=False)

    @property
    def label(self) -> str:
        """The jinit initializer, e.g. ``"jinit.compat.torch.kaiming_uniform"``."""
        return f"{JINIT_MODULES[self.framework]}.{self.name}"

    @property
    def title(self) -> str:
        """Both initializers with their arguments."""
        args = _format_args(self.kwargs)
        return f"{self.label}({args}) vs {self.reference}({args})"

    def ks(self) -> tuple[float, float]:
        """The two-sample Kolmogorov-Smirnov statistic and p-value (see :func:`ks_2samp`)."""
        return ks_2samp(self.ours.ravel(), self.theirs.ravel())


def compare(name: str, framework: str | None = None, shape: Sequence[int] = (256, 512),
            seed: int = 0, kwargs: Mapping[str, Any] | None = None, *,
            out: str | None = None) -> Comparison:
    """Draws ``name`` from jinit and from its framework; with ``out``, writes the figure there.

    The name, ``kwargs`` and ``out`` are all checked before anything is drawn.

    Raises:
      UsageError: an unknown framework or initializer name, a bad argument or shape, or an
        ``out`` that cannot be written.
      BackendUnavailableError: the framework cannot be imported.

    Examples:
      >>> c = compare("jax.lecun_normal", shape=(64, 32))
      >>> c.ours.shape == c.theirs.shape == (64, 32)
      True
      >>> c.title
      'jinit.lecun_normal() vs jax.nn.initializers.lecun_normal()'
    """
    kwargs = dict(kwargs or {})
    framework, name = split_name(name, framework)
    ours = jinit_initializer(framework, name, kwargs)
    if out is not None:
        check_out(out)
    ref = reference(framework, name, kwargs)
    c = draw(framework, name, kwargs, ours, ref, shape, seed)
    if out is not None:
        figure(c).savefig(out, dpi=110)
    return c


def draw(framework: str, name: str, kwargs: Mapping[str, Any], ours: Initializer,
         ref: Reference, shape: Sequence[int], seed: int) -> Comparison:
    """Draws both sides; a shape or value either side rejects becomes a :class:`UsageError`."""
    import jax

    shape = tuple(int(d) for d in shape)
    try:
        a = np.asarray(ours(jax.random.key(seed), shape))
    except (JinitError, TypeError, ValueError) as e:
        raise UsageError(f"--shape {' '.join(map(str, shape))}: {e}") from e
    try:
        b = ref.draw(dict(kwargs), shape, seed)
    except (TypeError, ValueError, RuntimeError) as e:
        raise UsageError(f"{ref.label} rejects shape {shape} with "
                         f"({_format_args(kwargs)}): {e}") from e
    return Comparison(framework, name, dict(kwargs), ref.label, a, b)


def samples(name: str, framework: str | None = None, shape: Sequence[int] = (256, 512),
            seed: int = 0, kwargs: Mapping[str, Any] | None = None,
            ) -> tuple[np.ndarray, np.ndarray, str]:
    """``(jinit values, framework values, framework name)`` for one initializer.

    Examples:
      >>> ours, theirs, fw = samples("jax.lecun_normal", shape=(64, 32))
      >>> ours.shape == theirs.shape == (64, 32), fw
      (True, 'jax')
    """
    c = compare(name, framework, shape, seed, kwargs)
    return c.ours, c.theirs, c.framework


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: ``(D, p)``, ``p`` from the asymptotic distribution.

    ``D`` is the largest distance between the two empirical CDFs; ``p`` is the Kolmogorov
    survival function at ``(sqrt(n) + 0.12 + 0.11 / sqrt(n)) * D`` with ``n = n_a n_b /
    (n_a + n_b)`` (Stephens' correction), accurate to about 0.01 once ``n`` exceeds ~100.

    Examples:
      >>> x = np.linspace(0, 1, 1000)
      >>> d, p = ks_2samp(x, x)
      >>> d, p
      (0.0, 1.0)
      >>> d, p = ks_2samp(x, x + 0.2)
      >>> round(d, 3), p < 1e-10
      (0.2, True)
    """
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    d = float(np.abs(cdf_a - cdf_b).max())
    n = math.sqrt(a.size * b.size / (a.size + b.size))
    return d, _kolmogorov_sf((n + 0.12 + 0.11 / n) * d)


def _kolmogorov_sf(x: float) -> float:
    """``P(K > x)`` for the Kolmogorov distribution (both series, each where it converges)."""
    if x <= 0:
        return 1.0
    j = np.arange(1, 101)
    if x < 1.18:  # the theta-function form converges fast for small x
        cdf = math.sqrt(2 * math.pi) / x * np.exp(-((2 * j - 1) ** 2) * math.pi ** 2
                                                  / (8 * x * x)).sum()
        return float(min(1.0, max(0.0, 1.0 - cdf)))
    return float(min(1.0, max(0.0, 2 * (((-1.0) ** (j - 1)) * np.exp(-2 * j * j * x * x)).sum())))


def check_out(path: str) -> None:
    """Raises :class:`UsageError` unless a figure can be written to ``path`` (draws nothing).

    The folder must exist and be writable, and the extension be one matplotlib writes.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    p = pathlib.Path(path)
    if p.suffix.lower().lstrip(".") not in kinds:
        raise UsageError(f"--out {path}: unsupported file type {p.suffix or '(no extension)'!r}; "
                         f"use one of {', '.join('.' + k for k in sorted(kinds))}.")
    folder = p.parent
    if not folder.is_dir():
        raise UsageError(f"--out {path}: the folder {str(folder)!r} does not exist.")
    if p.is_dir():
        raise UsageError(f"--out {path}: is a folder; give a file name.")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"--out {path}: not writable.")


def figure(c: Comparison) -> Any:
    """The comparison as a matplotlib ``Figure``: histograms, Q-Q plot, the KS test in the title."""
    from matplotlib.figure import Figure

    a, b = c.ours.ravel().astype(np.float64), c.theirs.ravel().astype(np.float64)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 81)
    fig = Figure(figsize=(11, 5.2))
    left, right = fig.subplots(1, 2)
    for x, label, color in ((a, c.label, "C0"), (b, c.reference, "C1")):
        left.hist(x, bins=bins, histtype="step", density=True, lw=1.6, color=color,
                  label=f"{label}: mean {x.mean():+.4f}, std {x.std():.4f}")
    left.set_xlabel("value")
    left.set_ylabel("density")
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    q = np.linspace(0.001, 0.999, 300)
    qa, qb = np.quantile(a, q), np.quantile(b, q)
    right.plot(qb, qa, ".", ms=3, color="C2", label="quantiles 0.1% ... 99.9%")
    right.plot([qb[0], qb[-1]], [qb[0], qb[-1]], "k--", lw=0.8,
               label="y = x (identical distributions)")
    right.set_xlabel(f"{c.framework} quantiles")
    right.set_ylabel("jinit quantiles")
    right.legend(fontsize=8, loc="upper left")
    d, p = c.ks()
    fig.suptitle(f"{c.title}\nshape {c.ours.shape}, {a.size:,} values each; two-sample "
                 f"Kolmogorov-Smirnov statistic {d:.4f}, p-value {p:.3g}", fontsize=10)
    fig.tight_layout()
    return fig



# --- the command -----------------------------------------------------------------------------

def _kwarg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare string such as mode=fan_out


def _kwargs(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise UsageError(f"--arg {key} given twice ({out[key]!r} and {value!r}).")
        out[key] = value
    return out


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a dimension must be a positive integer, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="e.g. torch.kaiming_uniform, "
                        "keras.glorot_uniform, mxnet.xavier, jax.lecun_normal (see --list)")
    parser.add_argument("--list", action="store_true", help="list the names and exit")
    parser.add_argument("--framework", choices=FRAMEWORKS, default=None,
                        help="the framework when NAME has no prefix (default torch)")
    parser.add_argument("--shape", type=_positive, nargs="+", default=[256, 512],
                        help="weight shape in the framework's layout (default 256 512)")
    parser.add_argument("--arg", type=_kwarg, action="append", default=[], metavar="K=V",
                        help="keyword argument for both initializers (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="compare.png",
                        help="figure path; .png, .svg, .pdf, ... (default compare.png)")


def main(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(names()))
        return 0
    if args.name is None:
        raise UsageError("give an initializer NAME such as torch.kaiming_uniform "
                         "(jinit compare --list shows all).")
    c = compare(args.name, args.framework, args.shape, args.seed, _kwargs(args.arg), out=args.out)
    d, p = c.ks()
    print(f"wrote {args.out}: {c.title}; KS statistic {d:.4f}, p-value {p:.3g}")
    return 0
