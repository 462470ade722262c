"""Recipes: published initialization schemes for residual networks as ``jinit.rules`` presets.

Each recipe is a :class:`jinit.Rules` built from the ordinary primitives (``jinit.normal``,
``jinit.scaled``, ``jinit.zeros`` ...) and selectors, so it composes like any rule set:
splice it into ``jinit.rules(...)`` after your own overrides, inspect it with
``.plan(tree)`` / ``jinit.summary``. The selectors for "residual output projection", "last
layer of a branch" and so on default to common Flax naming and are arguments: a selector
that matches nothing raises :class:`jinit.RuleError` (strict), so a scaling can never be
silently skipped because of a naming mismatch (huggingface/transformers#47458).

==========================  ===============================================================
recipe                      what it sets
==========================  ===============================================================
:func:`gpt2`                N(0, 0.02); residual output projections N(0, 0.02/√(2L));
                            biases 0; norm scales 1
:func:`zero_init`           zeros on the selected leaves, ``base`` elsewhere (the primitive
                            of the three below)
:func:`skipinit`            residual gates α = 0 (SkipInit, ReZero)
:func:`zero_gamma`          the last norm scale of each residual block = 0 (Goyal et al.)
:func:`fixup`               classifier and last layer of each branch 0; the other branch
                            layers ``L^{-1/(2m-2)}`` × He; biases 0, multipliers 1
==========================  ===============================================================
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from jinit import select
from jinit._combinators import scaled
from jinit._errors import InitializerArgumentError
from jinit._initializers import check_real, he_normal, normal, ones, zeros
from jinit._paths import flatten, is_array_like
from jinit._tree import Rule, Rules, rules

__all__ = [
    "CLASSIFIER",
    "FIXUP_BRANCH",
    "GATES",
    "NORM_SCALES",
    "RESIDUAL_OUTPUT",
    "LastPerBlock",
    "fixup",
    "gpt2",
    "last_per_block",
    "rezero",
    "skipinit",
    "zero_gamma",
    "zero_init",
]

#: Residual output projections under common Flax names: nanoGPT / HF GPT-2 ``c_proj``, Flax
#: ``MultiHeadDotProductAttention``'s ``out``, ``out_proj``, Llama ``o_proj``/``down_proj``,
#: T5 ``o``/``wo``.
RESIDUAL_OUTPUT = r"(.*/)?(c_proj|out_proj|o_proj|down_proj|out|o|wo)/kernel"
#: Scalar residual gates (SkipInit α, ReZero ``resweight``).
GATES = r"(.*/)?(alpha|gate|skip_gain|skipinit|rezero|resweight|res_weight)"
#: Normalization scales: Flax ``BatchNorm_k``/``LayerNorm_k``/``GroupNorm_k``, ``bn1``, ``norm``.
NORM_SCALES = r"(.*/)?([A-Za-z]*Norm[^/]*|bn[^/]*|norm[^/]*|ln[^/]*)/scale"
#: Layers inside residual branches: auto-named ``Conv_k``/``Dense_k`` children of a module
#: whose name contains ``Block`` (named shortcuts such as ``conv_proj`` are excluded).
FIXUP_BRANCH = r"(.*/)?[^/]*[Bb]lock[^/]*/(Conv|Dense)_\d+/kernel"
#: The classifier: a top-level ``head``/``classifier``/``fc``/``logits``/``output`` layer.
CLASSIFIER = r"(params/)?(head|classifier|fc|logits|output)/kernel"


def _natural(path: str) -> list[Any]:
    """Sort key that orders ``Conv_2`` before ``Conv_10`` (Flax numbers layers in call order)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


@dataclasses.dataclass(frozen=True)
class LastPerBlock(select.Predicate):
    """Selects, in each block, the last leaf (natural path order) that ``selector`` selects.

    See :func:`last_per_block`.
    """

    selector: select.Predicate
    level: int = 2
    min_count: int = 2

    def __call__(self, path: str, leaf: Any) -> bool:
        raise InitializerArgumentError(
            f"{self!r} compares leaves across a block; use it inside jinit.rules(...) or call "
            ".prepare(tree) first.")

    def block(self, path: str) -> str:
        """The block of a leaf: its path without the last ``level`` components."""
        return "/".join(path.split("/")[:-self.level])

    def prepare(self, tree: Any) -> Callable[[str, Any], bool]:
        flat = flatten(tree)
        match = self.selector.prepare(tree)
        groups: dict[str, list[str]] = {}
        for path, leaf in zip(flat.paths, flat.leaves, strict=True):
            if is_array_like(leaf) and match(path, leaf):
                groups.setdefault(self.block(path), []).append(path)
        chosen = {max(ps, key=_natural) for ps in groups.values() if len(ps) >= self.min_count}
        return lambda path, leaf: path in chosen


def last_per_block(selector: Any, *, level: int = 2, min_count: int = 2) -> LastPerBlock:
    """Selects the last matching leaf of each block: "the last layer of each residual branch".

    Leaves selected by ``selector`` are grouped by block (their path minus the last ``level``
    components: ``"block_3/Conv_2/kernel"`` is in block ``"block_3"``); in each group with at
    least ``min_count`` leaves, the last one in natural order (``Conv_10`` after ``Conv_9``,
    which is call order for Flax's auto-names) is selected. ``min_count=2`` skips a stem or
    shortcut that is alone in its module.

    Args:
      selector: which leaves are candidates (a regex string or a :mod:`jinit.select` helper).
      level: how many trailing path components name the leaf inside its block (>= 1).
      min_count: the smallest group that has a "last" member (>= 1).

    Examples:
      >>> import jax.numpy as jnp, jinit
      >>> from jinit import recipes
      >>> tree = {"stem": {"BatchNorm_0": {"scale": jnp.ones(4)}},
      ...         "block_0": {"BatchNorm_0": {"scale": jnp.ones(4)},
      ...                     "BatchNorm_1": {"scale": jnp.ones(4)}}}
      >>> jinit.paths(tree, recipes.last_per_block(r".*/scale"))
      ['block_0/BatchNorm_1/scale']
    """
    for name, value in (("level", level), ("min_count", min_count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InitializerArgumentError(
                f"last_per_block: {name} must be an int >= 1; got {name}={value!r}.")
    return LastPerBlock(select.to_selector(selector), level, min_count)


def _optional(selector: Any, init: Any) -> Rule:
    """A rule that may match nothing (a model without biases is fine)."""
    return Rule(select.to_selector(selector), init, required=False)


def gpt2(n_layer: int, *, std: float = 0.02, residual: Any = RESIDUAL_OUTPUT,
         norm: Any = NORM_SCALES) -> Rules:
    r"""GPT-2 / nanoGPT initialization with scaled residual projections.

    * residual output projections (``residual``): ``N(0, (std/√(2·n_layer))²)``: each of the
      ``2·n_layer`` residual branches (attention and MLP per block) adds to the stream;
    * biases: 0; norm scales (``norm``): 1;
    * every other leaf (Dense kernels, token and position embeddings): ``N(0, std²)``,
      untruncated, as nanoGPT and Hugging Face.

    Args:
      n_layer: the number of transformer blocks (>= 1).
      std: the base std (``initializer_range``).
      residual: selector of the residual output projections; must match something.
      norm: selector of normalization scales.

    Returns:
      A :class:`jinit.Rules` (use ``.plan(tree)`` to check which leaves are scaled).

    References:
      Radford et al., Language Models are Unsupervised Multitask Learners (GPT-2), 2019;
      karpathy/nanoGPT ``model.py``; Megatron-LM ``scaled_init_method_normal``.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> S = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
      >>> block = {"attn": {"c_attn": {"kernel": S(256, 768), "bias": S(768)},
      ...                   "c_proj": {"kernel": S(256, 256), "bias": S(256)}},
      ...          "ln_1": {"scale": S(256), "bias": S(256)}}
      >>> p = jinit.recipes.gpt2(n_layer=8)(jax.random.key(0), {"h_0": block})["h_0"]
      >>> round(float(p["attn"]["c_proj"]["kernel"].std()), 4), round(0.02 / 16 ** 0.5, 4)
      (0.005, 0.005)
      >>> float(p["ln_1"]["scale"].min()), float(p["attn"]["c_attn"]["bias"].max())
      (1.0, 0.0)
    """
    if isinstance(n_layer, bool) or not isinstance(n_layer, int) or n_layer < 1:
        raise InitializerArgumentError(f"gpt2: n_layer must be an int >= 1; got {n_layer!r}.")
    check_real("std", std, owner="gpt2", nonnegative=True)
    return rules((residual, scaled(normal(std), (2 * n_layer) ** -0.5)),
                 _optional(select.name("bias"), zeros),
                 _optional(norm, ones),
                 default=normal(std))


def zero_init(selector: Any, base: Any = None) -> Rules:
    """Zeros on the leaves ``selector`` selects; ``base`` (a rule set or an initializer) elsewhere.

    The primitive of :func:`skipinit`, :func:`zero_gamma` and adaLN-Zero (zero the
    modulation layers). Without ``base``, other concrete leaves are kept as they are.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> params = {"adaLN": {"kernel": jnp.ones((4, 8))}, "mlp": {"kernel": jnp.ones((4, 4))}}
      >>> out = jinit.recipes.zero_init(r".*adaLN/kernel")(jax.random.key(0), params)
      >>> float(out["adaLN"]["kernel"].sum()), float(out["mlp"]["kernel"].sum())
      (0.0, 16.0)
    """
    if isinstance(base, Rules):
        return rules((selector, zeros), base)
    return rules((selector, zeros), default=base)


def skipinit(gate: Any = GATES, base: Any = None) -> Rules:
    """SkipInit / ReZero: every residual gate ``α`` in ``x + α·F(x)`` starts at 0.

    References:
      De & Smith, `Batch Normalization Biases Residual Blocks Towards the Identity Function
      in Deep Networks <https://arxiv.org/abs/2002.10444>`_, 2020; Bachlechner et al.,
      `ReZero is All You Need <https://arxiv.org/abs/2003.04887>`_, 2020.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> params = {"block_0": {"alpha": jnp.ones(()), "Dense_0": {"kernel": jnp.ones((2, 2))}}}
      >>> float(jinit.recipes.skipinit()(jax.random.key(0), params)["block_0"]["alpha"])
      0.0
    """
    return zero_init(gate, base)


#: ReZero initializes its residual weight exactly as SkipInit does.
rezero = skipinit


def zero_gamma(norm: Any = None, base: Any = None) -> Rules:
    """Zero-γ: the last normalization scale of every residual block starts at 0.

    torchvision's ``zero_init_residual``. The default selector is
    ``last_per_block(NORM_SCALES)``: in each block (grouped by the path above the norm layer)
    with two or more norm layers, the last one (``bn3`` / ``BatchNorm_2``).

    References:
      Goyal et al., `Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour
      <https://arxiv.org/abs/1706.02677>`_, 2017.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> bn = {"scale": jnp.ones(4), "bias": jnp.zeros(4)}
      >>> params = {"bn_init": bn, "block_0": {"BatchNorm_0": bn, "BatchNorm_1": bn}}
      >>> out = jinit.recipes.zero_gamma()(jax.random.key(0), params)
      >>> [float(out[k]["scale"].sum()) for k in ("bn_init",)] + [
      ...     float(out["block_0"][k]["scale"].sum()) for k in ("BatchNorm_0", "BatchNorm_1")]
      [4.0, 4.0, 0.0]
    """
    return zero_init(norm if norm is not None else last_per_block(NORM_SCALES), base)


def fixup(num_branches: int, *, m: int = 2, branch: Any = FIXUP_BRANCH, last: Any = None,
          classifier: Any = CLASSIFIER, init: Any = None) -> Rules:
    r"""Fixup: train deep residual networks without normalization.

    * the classifier (``classifier``) and the last layer of each residual branch (``last``,
      default ``last_per_block(branch)``) are 0;
    * the other layers inside branches (``branch``) get ``init`` (He normal) times
      ``L^{-1/(2m-2)}`` with ``L = num_branches`` and ``m`` layers per branch;
    * every other leaf of rank >= 2 gets ``init``; biases 0; scalar multipliers
      (``scale``/``multiplier``) 1.

    Args:
      num_branches: ``L``, the number of residual branches (>= 1).
      m: layers per branch (>= 2: with one layer the branch is the zeroed last layer).
      branch: selector of the weights inside residual branches.
      last: selector of the last weight of each branch.
      classifier: selector of the classifier weight.
      init: the initializer of the other weights (default ``jinit.he_normal()``).

    References:
      Zhang, Dauphin & Ma, `Fixup Initialization: Residual Learning Without Normalization
      <https://arxiv.org/abs/1901.09321>`_, ICLR 2019.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> S = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
      >>> block = {"Conv_0": {"kernel": S(3, 3, 64, 64)}, "Conv_1": {"kernel": S(3, 3, 64, 64)}}
      >>> tree = {f"Block_{i}": block for i in range(16)} | {"head": {"kernel": S(64, 10)}}
      >>> p = jinit.recipes.fixup(num_branches=16)(jax.random.key(0), tree)
      >>> he = (2 / (9 * 64)) ** 0.5
      >>> round(float(p["Block_0"]["Conv_0"]["kernel"].std() / he), 2)  # 16 ** -0.5
      0.25
      >>> float(abs(p["Block_0"]["Conv_1"]["kernel"]).max()), float(abs(p["head"]["kernel"]).max())
      (0.0, 0.0)
    """
    for name, value, low in (("num_branches", num_branches, 1), ("m", m, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InitializerArgumentError(
                f"fixup: {name} must be an int >= {low}; got {name}={value!r}.")
    init = init if init is not None else he_normal()
    factor = float(num_branches) ** (-1.0 / (2 * m - 2))
    return rules((last if last is not None else last_per_block(branch), zeros),
                 (classifier, zeros),
                 (branch, scaled(init, factor)),
                 _optional(select.name("bias"), zeros),
                 _optional(select.name("scale", "multiplier"), ones),
                 _optional(select.ndim(0, 1), zeros),
                 default=init)
