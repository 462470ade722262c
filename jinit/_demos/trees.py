"""Tree initializers in the tour: the textbook walk-through as rule sets, edits, a transformer.

1. The MLP of the core section (``Dense(8) -> relu -> Dense(1)`` on ``(2, 4)``), but with the
   layers left alone: each recipe is one ``jinit.rules(...)`` applied to the *abstract* params
   from ``jax.eval_shape(model.init, ...)``, so Flax's defaults are never computed.
2. ``jinit.set`` / ``jinit.update``: the textbook's in-place edits as one-line functions.
3. A small transformer block: regex rules, ``jinit.summary``, and sharded init on the devices present.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import jinit
from jinit.compat import torch as torch_init

IN, HIDDEN, OUT = 4, 8, 1


def _mlp():
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(HIDDEN)(x))  # Dense_0
            return nn.Dense(OUT)(h)  # Dense_1

    return MLP()


def torch_bias(ctx: jinit.LeafContext):
    """PyTorch's Linear bias: U(+-1/sqrt(fan_in)) with the fan-in of the sibling kernel."""
    fan_in, _ = jinit.compute_fans(ctx.sibling("kernel").shape)
    bound = 1 / math.sqrt(fan_in)
    return torch_init.uniform(-bound, bound)


RECIPES = [
    ("All weights N(0, 0.01), biases zero",
     'jinit.rules((".*/kernel", jinit.normal(0.01)), (".*/bias", jinit.zeros))',
     jinit.rules((".*/kernel", jinit.normal(0.01)), (".*/bias", jinit.zeros))),
    ("All weights constant 1, biases zero",
     'jinit.rules((".*/kernel", jinit.constant(1.0)), default=jinit.zeros)',
     jinit.rules((".*/kernel", jinit.constant(1.0)), default=jinit.zeros)),
    ("Xavier on layer 0, the constant 42 on layer 1",
     'jinit.rules(("params/Dense_0/kernel", jinit.xavier_uniform()),\n'
     '                ("params/Dense_1/kernel", jinit.constant(42.0)), default=jinit.zeros)',
     jinit.rules(("params/Dense_0/kernel", jinit.xavier_uniform()),
                 ("params/Dense_1/kernel", jinit.constant(42.0)), default=jinit.zeros)),
    ("PyTorch's nn.Linear default, bias bound from the sibling kernel (layer-aware rule)",
     'jinit.rules((".*/kernel", torch.kaiming_uniform(a=math.sqrt(5), layout="flax")),\n'
     '                (".*/bias", jinit.contextual(torch_bias)))',
     jinit.rules((".*/kernel", torch_init.kaiming_uniform(a=math.sqrt(5), layout="flax")),
                 (".*/bias", jinit.contextual(torch_bias)))),
]


def textbook() -> None:
    model, x = _mlp(), jnp.ones((2, IN))
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)
    print("abstract = jax.eval_shape(model.init, key, x)   # shapes only: nothing is computed")
    print(f"jinit.paths(abstract) = {jinit.paths(abstract)}")
    for n, (title, code, init) in enumerate(RECIPES, 1):
        print(f"\n{n}. {title}\n   init = {code}\n   params = init(jax.random.key(0), abstract)")
        params = init(jax.random.key(0), abstract)
        jinit.summary(params, init)
        print(f"   y = model.apply(params, x) -> {np.round(np.asarray(model.apply(params, x)), 3)}"
              .replace("\n", " "))


def edits() -> None:
    params = jinit.rules(default=jinit.zeros)(jax.random.key(0),
                                              jax.eval_shape(_mlp().init, jax.random.key(0),
                                                             jnp.ones((2, IN))))
    print('\nparams = jinit.update(params, "params/Dense_0/kernel", lambda w: w + 1)'
          "   # net[0].weight.data[:] += 1")
    params = jinit.update(params, "params/Dense_0/kernel", lambda w: w + 1)
    print('params = jinit.set(params, "params/Dense_0/kernel", 42.0, at=(0, 0))'
          "    # net[0].weight.data[0, 0] = 42")
    params = jinit.set(params, "params/Dense_0/kernel", 42.0, at=(0, 0))
    print(f"Dense_0/kernel[0] = {np.asarray(params['params']['Dense_0']['kernel'][0])}")
    try:
        jinit.set(params, "params/Dense_0/kernal", 0.0)
    except jinit.PathError as e:
        print(f"A typo is caught: PathError: {str(e).splitlines()[0]}")


D, HEADS, V, T = 64, 4, 512, 32


def _transformer():
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x + nn.MultiHeadDotProductAttention(HEADS)(nn.LayerNorm()(x))
            h = nn.gelu(nn.Dense(4 * D, name="fc1")(nn.LayerNorm()(x)))
            return x + nn.Dense(D, name="fc2")(h)

    class Transformer(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(V, D)(tokens)
            x = x + self.param("pos", nn.initializers.zeros, (T, D))
            x = Block(name="block_0")(x)
            return nn.Dense(V, use_bias=False, name="head")(nn.LayerNorm()(x))

    return Transformer()


TRANSFORMER_RULES = (
    (r".*/LayerNorm_\d+/scale", jinit.ones),
    (r".*bias", jinit.zeros),
    (r".*/Embed_0/embedding", jinit.normal(0.02)),
    (r"params/pos", jinit.normal(0.01)),
    (r".*/(query|key|value)/kernel", jinit.xavier_uniform(in_axis=-3, out_axis=(-2, -1))),
    (r".*/out/kernel", jinit.xavier_uniform(in_axis=(-3, -2), out_axis=-1)),
    (r".*/fc1/kernel", jinit.he_normal()),
    (r".*/fc2/kernel", jinit.orthogonal(scale=0.5)),
    (r"params/head/kernel", jinit.normal(0.02)),
)


def transformer() -> None:
    model, tokens = _transformer(), jnp.zeros((1, T), jnp.int32)
    spec = jax.eval_shape(model.init, jax.random.key(0), tokens)
    init = jinit.rules(*TRANSFORMER_RULES)
    print("\ninit = jinit.rules(" + ",\n                   ".join(
        f"({p!r}, {i!r})" for p, i in TRANSFORMER_RULES) + ")")
    params = init(jax.random.key(0), spec)
    print("jinit.summary(params, init):")
    jinit.summary(params, init)

    n = jax.device_count()
    mesh = jax.make_mesh((n,), ("model",))
    P = jax.sharding.PartitionSpec
    partition = [(r".*/Embed_0/embedding", P("model", None)),
                 (r".*/(query|key|value)/kernel", P(None, None, "model")),
                 (r".*/out/kernel", P(None, "model", None)),
                 (r".*/fc1/kernel", P(None, "model")), (r".*/fc2/kernel", P("model", None)),
                 (r"params/head/kernel", P(None, "model"))]
    print(f"\nSharded init over {n} device(s): mesh = jax.make_mesh(({n},), ('model',))")
    if n == 1:
        print("(one device here; to simulate 8 CPU devices run with\n"
              " XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m jinit demo "
              "--section trees)")
    sharded_init = jinit.rules(*TRANSFORMER_RULES, mesh=mesh, partition=partition)
    sharded = sharded_init(jax.random.key(0), spec)
    same = all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(params), strict=True))
    flat = dict(zip(jinit.paths(sharded), jax.tree.leaves(sharded), strict=True))
    for path in ("params/Embed_0/embedding", "params/block_0/MultiHeadDotProductAttention_0/"
                 "query/kernel", "params/block_0/fc2/kernel", "params/head/kernel"):
        x = flat[path]
        print(f"  {path:60s} {str(x.shape):12s} spec={x.sharding.spec}  "
              f"per-device shard {x.addressable_shards[0].data.shape}")
    print(f"bit-identical to the unsharded init: {same}")


def run() -> None:
    """Prints the tree-initializer part of the tour."""
    textbook()
    edits()
    transformer()
