"""The benchmark models, each built the same way in jinit, Flax linen/nnx, plain JAX and torch.

Init recipe everywhere (the Flax defaults for a GPT-2-like model): ``normal(0.02)``
embeddings, ``lecun_normal`` kernels (a truncated normal), zero biases, LayerNorm scale 1 and
bias 0. torch's "default" case uses torch's own defaults; its "meta + init" case applies
``normal_(0.02)``/``zeros_``/``ones_`` after ``to_empty`` (torch's ``trunc_normal_`` is 12x
slower than ``normal_``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import jinit
from jinit._paths import path_str


@dataclasses.dataclass(frozen=True)
class Gpt:
    """A GPT-2-like decoder: tied embedding, learned positions, pre-LN blocks with biases."""

    vocab: int = 32000
    d: int = 768
    layers: int = 12
    ctx: int = 1024

    @property
    def name(self) -> str:
        return f"gpt{round(self.params / 1e6)}m"

    @property
    def params(self) -> int:
        d = self.d
        block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (
            4 * d * d + d)
        return self.vocab * d + self.ctx * d + self.layers * block + 2 * d


@dataclasses.dataclass(frozen=True)
class Mlp:
    """An MLP (dense layers with biases)."""

    widths: tuple[int, ...] = (784, 512, 512, 10)
    name: str = "mlp"

    @property
    def params(self) -> int:
        return sum(a * b + b for a, b in zip(self.widths, self.widths[1:], strict=False))


@dataclasses.dataclass(frozen=True)
class Cnn:
    """A small VGG-like CNN: 3x3 convs with biases, then a dense head."""

    channels: tuple[int, ...] = (3, 32, 64, 128, 256)
    classes: int = 10
    name: str = "cnn"

    @property
    def params(self) -> int:
        c = self.channels
        return sum(9 * a * b + b for a, b in zip(c, c[1:], strict=False)) + c[-1] * self.classes + self.classes


GPT40M = Gpt(d=576, layers=6)
GPT100M = Gpt()
GPT400M = Gpt(d=1024, layers=30)
GPT_QUICK = Gpt(vocab=4096, d=128, layers=2, ctx=128)
MODELS: dict[str, Any] = {m.name: m for m in (GPT40M, GPT100M, GPT400M, GPT_QUICK, Mlp(), Cnn())}


# --- Flax linen: the reference definition; its eval_shape is the jinit spec -------------------


def linen_module(model: Any):
    import flax.linen as nn

    normal02 = nn.initializers.normal(0.02)
    if isinstance(model, Gpt):

        class Block(nn.Module):
            @nn.compact
            def __call__(self, x):
                h = nn.LayerNorm(name="ln1")(x)
                qkv = nn.Dense(3 * model.d, name="qkv")(h)
                x = x + nn.Dense(model.d, name="proj")(qkv[..., :model.d])
                h = nn.LayerNorm(name="ln2")(x)
                return x + nn.Dense(model.d, name="fc2")(nn.gelu(nn.Dense(4 * model.d,
                                                                          name="fc1")(h)))

        class Net(nn.Module):
            @nn.compact
            def __call__(self, tokens):
                x = nn.Embed(model.vocab, model.d, embedding_init=normal02, name="wte")(tokens)
                pos = self.param("wpe", normal02, (model.ctx, model.d))
                x = x + pos[: tokens.shape[-1]]
                for i in range(model.layers):
                    x = Block(name=f"h_{i}")(x)
                return nn.LayerNorm(name="ln_f")(x)

        return Net(), jnp.zeros((1, 8), jnp.int32)
    if isinstance(model, Mlp):

        class Net(nn.Module):
            @nn.compact
            def __call__(self, x):
                for i, w in enumerate(model.widths[1:]):
                    x = nn.Dense(w, name=f"fc{i}")(x)
                return x

        return Net(), jnp.zeros((1, model.widths[0]), jnp.float32)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i, c in enumerate(model.channels[1:]):
                x = nn.Conv(c, (3, 3), name=f"conv{i}")(x)
            return nn.Dense(model.classes, name="head")(x.mean((1, 2)))

    return Net(), jnp.zeros((1, 32, 32, model.channels[0]), jnp.float32)


def spec(model: Any) -> Any:
    """The param tree of ``model`` as ``jax.ShapeDtypeStruct`` leaves (nothing computed)."""
    net, x = linen_module(model)
    return jax.eval_shape(net.init, jax.random.key(0), x)["params"]


def jinit_init() -> Callable:
    """The jinit tree initializer with the recipe (linen's defaults, written as rules)."""
    return jinit.rules(
        (r"wte/embedding|wpe", jinit.normal(0.02)),
        (r".*kernel", jinit.lecun_normal()),
        (r".*bias", jinit.zeros),
        (r".*scale", jinit.ones),
        strict=False,
    )


def jax_nn_init(spec_tree: Any) -> Callable:
    """A hand-written init calling ``jax.nn.initializers`` per leaf (split keys), to be jitted."""
    ini = jax.nn.initializers
    flat, treedef = jax.tree_util.tree_flatten_with_path(spec_tree)

    def choose(path: str):
        if path.endswith("embedding") or path == "wpe":
            return ini.normal(0.02)
        if path.endswith("kernel"):
            return ini.lecun_normal()
        return ini.ones if path.endswith("scale") else ini.zeros

    plan = [(choose(path_str(p)), s) for p, s in flat]

    def init(key):
        keys = jax.random.split(key, len(plan))
        return treedef.unflatten([f(k, s.shape, s.dtype) for (f, s), k in zip(plan, keys, strict=False)])

    return init


def zeros_init(spec_tree: Any) -> Callable:
    """The memset floor: zeros for every leaf of the tree, to be jitted."""
    return lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), spec_tree)


def nbytes(spec_tree: Any) -> int:
    return sum(math.prod(s.shape) * s.dtype.itemsize for s in jax.tree.leaves(spec_tree))


# --- Flax nnx ---------------------------------------------------------------------------------


def nnx_construct(model: Any) -> Callable:
    """``key -> nnx module`` with the same layers and init recipe."""
    from flax import nnx

    normal02 = nnx.initializers.normal(0.02)

    def build(key):
        rngs = nnx.Rngs(key)
        if isinstance(model, Gpt):
            d = model.d
            mods = [nnx.Embed(model.vocab, d, embedding_init=normal02, rngs=rngs),
                    nnx.Param(normal02(rngs.params(), (model.ctx, d)))]
            for _ in range(model.layers):
                mods += [nnx.LayerNorm(d, rngs=rngs), nnx.Linear(d, 3 * d, rngs=rngs),
                         nnx.Linear(d, d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs),
                         nnx.Linear(d, 4 * d, rngs=rngs), nnx.Linear(4 * d, d, rngs=rngs)]
            mods.append(nnx.LayerNorm(d, rngs=rngs))
        elif isinstance(model, Mlp):
            mods = [nnx.Linear(a, b, rngs=rngs) for a, b in zip(model.widths, model.widths[1:], strict=False)]
        else:
            c = model.channels
            mods = [nnx.Conv(a, b, (3, 3), rngs=rngs) for a, b in zip(c, c[1:], strict=False)]
            mods.append(nnx.Linear(c[-1], model.classes, rngs=rngs))
        return nnx.List(mods)

    return build


# --- torch ------------------------------------------------------------------------------------


def torch_construct(model: Any, device: str = "cpu"):
    """The same architecture as a torch ``nn.Module`` (torch's default init)."""
    import torch
    from torch import nn

    with torch.device(device):
        if isinstance(model, Gpt):
            d = model.d
            layers: list[nn.Module] = [nn.Embedding(model.vocab, d)]
            for _ in range(model.layers):
                layers += [nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d),
                           nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)]
            layers.append(nn.LayerNorm(d))
            net = nn.Sequential(*layers)
            net.wpe = nn.Parameter(torch.empty(model.ctx, d))
            nn.init.normal_(net.wpe, std=0.02)
            return net
        if isinstance(model, Mlp):
            return nn.Sequential(*[nn.Linear(a, b) for a, b in zip(model.widths,
                                                                    model.widths[1:], strict=False)])
        c = model.channels
        return nn.Sequential(*[nn.Conv2d(a, b, 3) for a, b in zip(c, c[1:], strict=False)],
                             nn.Linear(c[-1], model.classes))


def torch_meta_init(model: Any):
    """torch meta-device construction, ``to_empty``, then the recipe with in-place inits."""
    import torch
    from torch import nn

    net = torch_construct(model, "meta").to_empty(device="cpu")
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim == 1:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, std=0.02)
    return net
