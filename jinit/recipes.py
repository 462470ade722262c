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
:func:`t_fixup`             Xavier; embeddings ``N(0, 1/d)·(9N)^{-1/4}``; value, output and
                            MLP weights ``× (9N)^{-1/4}`` (decoder) / ``0.67·N^{-1/4}``
                            (encoder), for transformers without LayerNorm or warmup
:func:`deepnet`             Xavier normal; value, output and MLP weights ``× β`` (DeepNorm;
                            :func:`deepnet_scales` gives β and the residual α by depth)
:func:`zer_o`               ZerO: every weight :func:`hadamard_identity` (identity, partial
                            identity or scaled Hadamard: no randomness), the last layer of
                            each residual branch 0
==========================  ===============================================================
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jinit import select
from jinit._combinators import scaled
from jinit._errors import DTypeError, InitializerArgumentError, ShapeError
from jinit._fans import layout_axes
from jinit._initializers import (
    Initializer,
    check_real,
    glorot_uniform,
    he_normal,
    normal,
    ones,
    place,
    variance_scaling,
    zeros,
)
from jinit._paths import flatten, is_array_like
from jinit._tree import Rule, Rules, rules

__all__ = [
    "CLASSIFIER",
    "EMBEDDINGS",
    "ENCODER",
    "FIXUP_BRANCH",
    "GATES",
    "MLP",
    "NORM_SCALES",
    "RESIDUAL_OUTPUT",
    "TRANSFORMER_BRANCH",
    "VALUE",
    "DeepNetScales",
    "HadamardIdentity",
    "LastPerBlock",
    "deepnet",
    "deepnet_scales",
    "fixup",
    "gpt2",
    "hadamard_identity",
    "last_per_block",
    "rezero",
    "skipinit",
    "t_fixup",
    "zer_o",
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
#: Attention value projections: Flax ``MultiHeadDotProductAttention``'s ``value``, ``v_proj``,
#: T5 ``v``/``wv``.
VALUE = r"(.*/)?(value|v_proj|v|wv)/kernel"
#: Feed-forward weights: ``fc1``/``fc2``, nanoGPT ``c_fc``, Llama ``up_proj``/``gate_proj``/
#: ``down_proj``, T5 ``wi``/``wi_0``/``wi_1``, ``w1``-``w3``, and every layer inside a module
#: whose name contains ``mlp``, ``ffn`` or ``feed_forward`` (Flax's ``MlpBlock_0/Dense_1``).
MLP = (r"(.*/)?((c_fc|fc1|fc2|up_proj|gate_proj|down_proj|wi|wi_0|wi_1|w1|w2|w3)"
       r"|[^/]*(?i:mlp|ffn|feed_?forward)[^/]*/[^/]+)/kernel")
#: What T-Fixup and DeepNet scale in each block: value and output projections and MLP weights.
TRANSFORMER_BRANCH = f"(?:{VALUE})|(?:{RESIDUAL_OUTPUT})|(?:{MLP})"
#: Token embeddings: Flax ``Embed``'s ``embedding`` (``wte``, ``embed_tokens``, ...).
EMBEDDINGS = r"(.*/)?[^/]*/embedding"
#: Everything inside a module whose name contains ``encoder`` (encoder-decoder models).
ENCODER = r"(.*/)?[^/]*(?i:encoder)[^/]*/.*"


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


def _check_layers(owner: str, encoder_layers: Any, decoder_layers: Any) -> None:
    for name, value in (("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InitializerArgumentError(
                f"{owner}: {name} must be an int >= 0; got {name}={value!r}.")
    if encoder_layers == decoder_layers == 0:
        raise InitializerArgumentError(
            f"{owner}: give the depth: encoder_layers=N (encoder-only), decoder_layers=M "
            "(decoder-only) or both (encoder-decoder).")


#: ``N(0, 1/d)`` with ``d`` the embedding width (the last axis): T-Fixup's and fairseq's.
_EMBEDDING = variance_scaling(1.0, "fan_in", "normal", in_axis=-1, out_axis=-2)


def _transformer_rules(encoder_layers: int, decoder_layers: int,
                       encoder_scale: float, decoder_scale: float, *, scaled_: Any,
                       encoder: Any, embedding: Any, embed: tuple[Any, Any] | None,
                       init: Any) -> Rules:
    """Scaled branch weights (and embeddings) of an encoder, a decoder or both."""
    branch = select.to_selector(scaled_)
    emb = select.to_selector(embedding)
    pairs: list[Any] = []
    if encoder_layers and decoder_layers:  # encoder-decoder: the encoder's leaves first
        enc = select.to_selector(encoder)
        if embed is not None:
            pairs.append(_optional(enc & emb, embed[0]))
        pairs.append((enc & branch, scaled(init, encoder_scale)))
    stack_scale = decoder_scale if decoder_layers else encoder_scale
    if embed is not None:
        pairs.append(_optional(emb, embed[1] if decoder_layers else embed[0]))
    pairs.append((branch, scaled(init, stack_scale)))
    return rules(*pairs, _optional(select.name("bias"), zeros),
                 _optional(NORM_SCALES, ones), _optional(select.ndim(0, 1), zeros),
                 default=init)


def t_fixup(encoder_layers: int = 0, decoder_layers: int = 0, *,
            scaled: Any = TRANSFORMER_BRANCH, embedding: Any = EMBEDDINGS,
            encoder: Any = ENCODER, init: Any = None) -> Rules:
    r"""T-Fixup: train transformers without LayerNorm and without learning-rate warmup.

    With ``N`` encoder and ``M`` decoder layers (the paper's Algorithm 2):

    * every weight: Xavier (``init``, default ``jinit.glorot_uniform()``);
    * token embeddings (``embedding``): ``N(0, 1/d)`` (``d`` the width) times
      ``(9N)^{-1/4}`` in the encoder and ``(9M)^{-1/4}`` in the decoder;
    * value projections, attention output projections and MLP weights (``scaled``):
      times ``(9M)^{-1/4}`` in decoder blocks and ``0.67·N^{-1/4}`` in encoder blocks;
    * biases 0; norm scales (if any are left) 1.

    Give ``encoder_layers`` for an encoder-only model (BERT-like), ``decoder_layers`` for a
    decoder-only one (GPT-like), both for an encoder-decoder (then ``encoder`` selects the
    encoder's leaves). The model must drop its LayerNorms (the point of T-Fixup). A packed
    QKV kernel (GPT-2's ``c_attn``) is not split: its value part keeps the Xavier scale.

    Args:
      encoder_layers: ``N`` (>= 0).
      decoder_layers: ``M`` (>= 0); at least one of the two is > 0.
      scaled: selector of the value / output / MLP weights; must match something.
      embedding: selector of token embeddings.
      encoder: selector of the encoder's leaves (encoder-decoder only; must match scaled
        weights).
      init: the base initializer of weights (default Xavier uniform).

    References:
      Huang, Perez, Ba & Volkovs, `Improving Transformer Optimization Through Better
      Initialization <https://proceedings.mlr.press/v119/huang20f.html>`_, ICML 2020;
      `layer6ai-labs/T-Fixup <https://github.com/layer6ai-labs/T-Fixup>`_.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> S = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
      >>> block = {"attn": {n: {"kernel": S(256, 256)} for n in ("query", "key", "value", "out")},
      ...          "mlp": {"Dense_0": {"kernel": S(256, 1024)}, "Dense_1": {"kernel": S(1024, 256)}}}
      >>> tree = {"wte": {"embedding": S(1000, 256)}} | {f"block_{i}": block for i in range(6)}
      >>> p = jinit.recipes.t_fixup(decoder_layers=6)(jax.random.key(0), tree)
      >>> scale = (9 * 6) ** -0.25
      >>> xavier = (2 / 512) ** 0.5
      >>> round(float(p["block_0"]["attn"]["value"]["kernel"].std() / xavier / scale), 1)
      1.0
      >>> round(float(p["block_0"]["attn"]["query"]["kernel"].std() / xavier), 1)
      1.0
      >>> round(float(p["wte"]["embedding"].std() * 256 ** 0.5 / scale), 1)
      1.0
    """
    _check_layers("t_fixup", encoder_layers, decoder_layers)
    init = init if init is not None else glorot_uniform()
    enc_scale = 0.67 * encoder_layers ** -0.25 if encoder_layers else 1.0
    dec_scale = (9 * decoder_layers) ** -0.25 if decoder_layers else 1.0
    embed = (_scaled_embedding(encoder_layers), _scaled_embedding(decoder_layers))
    return _transformer_rules(encoder_layers, decoder_layers, enc_scale, dec_scale,
                              scaled_=scaled, encoder=encoder, embedding=embedding,
                              embed=embed, init=init)


def _scaled_embedding(layers: int) -> Any:
    """T-Fixup's embedding of a stack of ``layers`` blocks: ``N(0, 1/d)·(9·layers)^{-1/4}``."""
    return scaled(_EMBEDDING, (9 * layers) ** -0.25) if layers else _EMBEDDING


@dataclasses.dataclass(frozen=True)
class DeepNetScales:
    """DeepNorm's constants for a model: see :func:`deepnet_scales`.

    Attributes:
      encoder_alpha, encoder_beta: the encoder's residual multiplier and init gain (``None``
        without an encoder).
      decoder_alpha, decoder_beta: the same for the decoder.
    """

    encoder_alpha: float | None
    encoder_beta: float | None
    decoder_alpha: float | None
    decoder_beta: float | None


def deepnet_scales(encoder_layers: int = 0, decoder_layers: int = 0) -> DeepNetScales:
    r"""DeepNorm's residual multiplier ``α`` and init gain ``β`` by depth (DeepNet, Table 1).

    ==================  ================================  ================================
    architecture        α                                 β
    ==================  ================================  ================================
    encoder-only (N)    ``(2N)^{1/4}``                    ``(8N)^{-1/4}``
    decoder-only (M)    ``(2M)^{1/4}``                    ``(8M)^{-1/4}``
    encoder-decoder     encoder ``0.81 (N^4 M)^{1/16}``   encoder ``0.87 (N^4 M)^{-1/16}``
                        decoder ``(3M)^{1/4}``            decoder ``(12M)^{-1/4}``
    ==================  ================================  ================================

    ``β`` is what :func:`deepnet` multiplies the value, output and MLP weights by. ``α`` is
    **not an initialization**: DeepNorm changes each residual connection to
    ``x ← LayerNorm(α·x + f(x))`` (post-LN), which your model's forward pass must do.

    Examples:
      >>> import jinit
      >>> s = jinit.recipes.deepnet_scales(decoder_layers=200)
      >>> round(s.decoder_alpha, 4), round(s.decoder_beta, 4), s.encoder_alpha
      (4.4721, 0.1581, None)
    """
    _check_layers("deepnet_scales", encoder_layers, decoder_layers)
    n, m = encoder_layers, decoder_layers
    if n and m:
        return DeepNetScales(0.81 * (n**4 * m) ** (1 / 16), 0.87 * (n**4 * m) ** (-1 / 16),
                             (3 * m) ** 0.25, (12 * m) ** -0.25)
    if n:
        return DeepNetScales((2 * n) ** 0.25, (8 * n) ** -0.25, None, None)
    return DeepNetScales(None, None, (2 * m) ** 0.25, (8 * m) ** -0.25)


def deepnet(encoder_layers: int = 0, decoder_layers: int = 0, *,
            scaled: Any = TRANSFORMER_BRANCH, embedding: Any = EMBEDDINGS,
            encoder: Any = ENCODER, init: Any = None) -> Rules:
    r"""DeepNet's initialization for DeepNorm transformers (up to 1000 layers).

    * value projections, attention output projections and MLP weights (``scaled``): Xavier
      normal with gain ``β`` (:func:`deepnet_scales`; encoder and decoder each their own in
      an encoder-decoder, the encoder's leaves selected by ``encoder``);
    * query and key projections and every other weight: Xavier normal with gain 1
      (``init``, default ``jinit.variance_scaling(1, "fan_avg", "normal")``, untruncated as
      in the paper's ``nn.init.xavier_normal_``);
    * token embeddings: ``N(0, 1/d)`` (fairseq/torchscale); biases 0; norm scales 1.

    The residual multiplier ``α`` of DeepNorm (``x ← LN(α·x + f(x))``) is a change to the
    model, not to its parameters: read it from :func:`deepnet_scales`.

    Args:
      encoder_layers: ``N`` (>= 0).
      decoder_layers: ``M`` (>= 0); at least one of the two is > 0.
      scaled: selector of the value / output / MLP weights; must match something.
      embedding: selector of token embeddings.
      encoder: selector of the encoder's leaves (encoder-decoder only).
      init: the gain-1 initializer (default Xavier normal).

    References:
      Wang et al., `DeepNet: Scaling Transformers to 1,000 Layers
      <https://arxiv.org/abs/2203.00555>`_, 2022; `microsoft/torchscale
      <https://github.com/microsoft/torchscale>`_.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> S = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
      >>> block = {"attn": {n: {"kernel": S(256, 256)} for n in ("query", "key", "value", "out")},
      ...          "mlp": {"Dense_0": {"kernel": S(256, 1024)}, "Dense_1": {"kernel": S(1024, 256)}}}
      >>> tree = {f"block_{i}": block for i in range(18)}
      >>> p = jinit.recipes.deepnet(encoder_layers=18)(jax.random.key(0), tree)["block_0"]
      >>> beta = jinit.recipes.deepnet_scales(encoder_layers=18).encoder_beta  # (8*18)^-1/4
      >>> round(float(p["attn"]["out"]["kernel"].std() / (2 / 512) ** 0.5 / beta), 1)
      1.0
      >>> round(float(p["attn"]["key"]["kernel"].std() / (2 / 512) ** 0.5), 1)
      1.0
    """
    s = deepnet_scales(encoder_layers, decoder_layers)
    init = init if init is not None else variance_scaling(1.0, "fan_avg", "normal")
    return _transformer_rules(encoder_layers, decoder_layers, s.encoder_beta or 1.0,
                              s.decoder_beta or 1.0, scaled_=scaled, encoder=encoder,
                              embedding=embedding, embed=(_EMBEDDING, _EMBEDDING), init=init)


# --- ZerO ---------------------------------------------------------------------------------------


def _zero_matrix(rows: int, cols: int, dtype: Any) -> jax.Array:
    """ZerO's ``(out, in)`` matrix (Zhao et al., Algorithm 1), traced (no large constants).

    ``I`` for ``rows == cols``; the partial identity ``I*`` for ``rows < cols``; for
    ``rows > cols`` the top-left ``rows × cols`` block of the Sylvester Hadamard matrix
    ``H_m`` (``m = ⌈log2 rows⌉``, entries ``(-1)^{popcount(i & j)}``) times ``2^{-(m-1)/2}``.
    """
    i = jnp.arange(rows, dtype=jnp.uint32)[:, None]
    j = jnp.arange(cols, dtype=jnp.uint32)[None, :]
    if rows <= cols:
        return (i == j).astype(dtype)
    m = math.ceil(math.log2(rows))
    sign = 1 - 2 * (jax.lax.population_count(i & j) & 1).astype(dtype)
    return sign * jnp.asarray(2.0 ** (-(m - 1) / 2), dtype)


@dataclasses.dataclass(frozen=True)
class HadamardIdentity(Initializer):
    """ZerO's deterministic weight: see :func:`hadamard_identity`."""

    layout: str = "flax"
    dtype: Any = None

    random = False

    def __post_init__(self) -> None:
        layout_axes(self.layout, 2)  # validates the layout name

    def _sample(self, key, shape, dtype, out_sharding):
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise DTypeError(f"{self!r} has entries ±2^(-(m-1)/2): it needs a floating dtype; "
                             f"got {dtype}.")
        if len(shape) < 2:
            raise ShapeError(
                f"{self!r} needs a weight of at least 2 dimensions (a Dense or Conv kernel); "
                f"got shape {shape}. Use jinit.zeros / jinit.ones for biases and scales.")
        in_axis, out_axis = (a % len(shape) for a in layout_axes(self.layout, len(shape)))
        w = _zero_matrix(shape[out_axis], shape[in_axis], dtype)  # (out, in)
        spatial = [a for a in range(len(shape)) if a not in (in_axis, out_axis)]
        out = jnp.zeros(shape, dtype)
        center = tuple(shape[a] // 2 if a in spatial else slice(None) for a in range(len(shape)))
        block = w if out_axis < in_axis else w.T  # the order of the two axes in `shape`
        return place(out.at[center].set(block), out_sharding)


def hadamard_identity(*, layout: str = "flax", dtype: Any = None) -> HadamardIdentity:
    r"""ZerO's deterministic initializer: identity, partial identity or a scaled Hadamard block.

    For a ``(in, out)`` kernel (the weight ``W`` is ``out × in``):

    * ``out == in``: ``W = I``;
    * ``out < in``: ``W = I*``, the first ``out`` inputs passed through;
    * ``out > in``: ``W = c·H_m[:out, :in]``, the Sylvester Hadamard matrix of size ``2^m``
      (``m = ⌈log2 out⌉``) cut to shape, ``c = 2^{-(m-1)/2}``: the rank is ``in``, unlike
      a partial identity that would leave ``out - in`` outputs dead.

    Convolution kernels get the matrix at the spatial center and zeros elsewhere. There is
    no randomness: the key is ignored and every call gives the same array. Weights are read
    as ``(*k, in, out)`` (``layout="flax"``) or ``(out, in, *k)`` (``"torch"``).

    References:
      Zhao et al., `ZerO Initialization: Initializing Neural Networks with only Zeros and Ones
      <https://arxiv.org/abs/2110.12661>`_, TMLR 2022.

    Examples:
      >>> import jax, jinit
      >>> init = jinit.recipes.hadamard_identity()
      >>> w = init(jax.random.key(0), (2, 4)).T  # out 4 > in 2: m = 2, c = 2^{-1/2}
      >>> (w * 2 ** 0.5).round(6).tolist()
      [[1.0, 1.0], [1.0, -1.0], [1.0, 1.0], [1.0, -1.0]]
      >>> init(jax.random.key(0), (3, 2)).T.tolist()  # out 2 < in 3: partial identity
      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    return HadamardIdentity(layout, dtype)


def zer_o(*, residual: bool = True, branch: Any = FIXUP_BRANCH, last: Any = None,
          layout: str = "flax") -> Rules:
    """ZerO initialization of a whole network: only zeros, ones and Hadamard entries.

    * every weight of rank >= 2: :func:`hadamard_identity` (identity-like, deterministic);
    * with ``residual``, the last layer of each residual branch (``last``, default
      ``last_per_block(branch)``) is 0, so each block starts as the identity;
    * biases and other vectors 0; norm scales 1.

    Args:
      residual: zero the last layer of each residual branch (ResNets); ``False`` for plain
        feed-forward networks.
      branch: selector of the weights inside residual branches.
      last: selector of the last weight of each branch.
      layout: the kernel layout (``"flax"`` ``(*k, in, out)`` or ``"torch"``).

    References:
      Zhao et al., `ZerO Initialization: Initializing Neural Networks with only Zeros and Ones
      <https://arxiv.org/abs/2110.12661>`_, TMLR 2022.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> S = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
      >>> mlp = {"Dense_0": {"kernel": S(4, 4), "bias": S(4)}, "Dense_1": {"kernel": S(4, 2)}}
      >>> p = jinit.recipes.zer_o(residual=False)(jax.random.key(0), mlp)
      >>> p["Dense_0"]["kernel"].tolist() == jnp.eye(4).tolist(), p["Dense_1"]["kernel"].T.tolist()
      (True, [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    """
    init = hadamard_identity(layout=layout)
    pairs: list[Any] = []
    if residual:
        pairs.append((last if last is not None else last_per_block(branch), zeros))
    elif last is not None:
        raise InitializerArgumentError("zer_o: last= zeroes residual branches; it needs "
                                       "residual=True.")
    return rules(*pairs, _optional(select.name("bias"), zeros), _optional(NORM_SCALES, ones),
                 _optional(select.ndim(0, 1), zeros), default=init)
