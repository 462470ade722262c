"""Logical partitioning on 8 simulated CPU devices; run by tests/test_logical_partitioning.py.

Needs ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (set by the test). Initializes
boxed Flax params (``nn.with_logical_partitioning``, ``nn.with_partitioning``, nnx variables with
``out_sharding``) on a (2, 4) mesh with no partition rules written by hand, and prints one JSON
object: per case, the leaves whose sharding, box or values are not as the logical rules say.
"""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding

import jinit
import jinit.flax
from jinit.compat import flax as jf

L, D, H, V = 4, 16, 32, 24
RULES = (("layers", None), ("embed", "data"), ("mlp", "model"), ("vocab", "model"))
KEY = jax.random.key(0)


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        lecun = nn.initializers.lecun_normal()
        h = nn.Dense(H, kernel_init=nn.with_logical_partitioning(lecun, ("embed", "mlp")),
                     bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)))(x)
        return nn.Dense(D, kernel_init=nn.with_logical_partitioning(lecun, ("mlp", "embed")),
                        use_bias=False)(h), None


class Model(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(V, D, embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(1.0), ("vocab", "embed")))(tokens)
        x, _ = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True},
                       length=L, metadata_params={nn.PARTITION_NAME: "layers"})()(x, None)
        return nn.Dense(V, kernel_init=nn.with_partitioning(
            nn.initializers.lecun_normal(), (None, "model")))(x)


def boxes(tree):
    return jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: isinstance(x, (nn.Partitioned, nnx.Variable)))[0]


def expected_spec(box, rules):
    if isinstance(box, jax.Array):  # an unboxed leaf: replicated on the mesh
        return jax.P()
    if isinstance(box, nn.LogicallyPartitioned):
        return nn.logical_to_mesh_axes(box.names, rules)
    if isinstance(box, nn.Partitioned):
        return jax.P(*box.names)
    return nn.logical_to_mesh_axes(box.get_metadata()["out_sharding"], rules)


def padded(spec, ndim):
    return (*spec, *(None,) * (ndim - len(spec)))


def value(box):
    if isinstance(box, jax.Array):
        return box
    return box.value if isinstance(box, nn.Partitioned) else box[...]


def check(case, out, ref, rules=RULES):
    wrong_box, wrong_sharding, mismatched, shards = [], [], [], set()
    got, want = boxes(out), boxes(ref)
    for (path, box), (_, rbox) in zip(got, want, strict=True):
        name = jax.tree_util.keystr(path)
        if type(box) is not type(rbox):
            wrong_box.append(name)
            continue
        v = value(box)
        spec = expected_spec(rbox, rules)
        if not (isinstance(v.sharding, NamedSharding) and padded(v.sharding.spec, v.ndim)
                == padded(spec, v.ndim)):
            wrong_sharding.append(f"{name}: {v.sharding} vs {spec}")
        if not np.array_equal(np.asarray(v), np.asarray(value(rbox))):
            mismatched.append(name)
        shards |= {tuple(s.data.shape) != v.shape for s in v.addressable_shards}
    n_boxed = sum(not isinstance(b, jax.Array) for _, b in got)
    return {"case": case, "leaves": n_boxed, "wrong_box": wrong_box,
            "wrong_sharding": wrong_sharding, "mismatched": mismatched,
            "some_sharded": True in shards}


def main():
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    tokens = jnp.zeros((2, 3), jnp.int32)
    spec = jax.eval_shape(Model().init, KEY, tokens)["params"]
    ref = jf.defaults()(KEY, spec)
    results = [
        check("argument", jinit.rules(jf.defaults(), mesh=mesh, logical_axis_rules=RULES)(
            KEY, spec), ref),
        check("jit", jax.jit(lambda k: jinit.rules(
            jf.defaults(), mesh=mesh, logical_axis_rules=RULES)(k, spec))(KEY), ref),
        check("flax.init", jinit.flax.init(Model(), jinit.rules(
            jf.defaults(), mesh=mesh, logical_axis_rules=RULES), KEY, tokens)["params"], ref),
    ]
    with nn.logical_axis_rules(RULES):
        results.append(check("context", jinit.rules(jf.defaults(), mesh=mesh)(KEY, spec), ref))
    # The layer axis itself sharded; one stacked kernel orthogonal (drawn slice by slice).
    ortho = jinit.rules(("ScanBlock_0/Dense_1/kernel", jinit.orthogonal()), jf.defaults())
    by_layer = (("layers", "data"), ("embed", None), ("mlp", "model"), ("vocab", "model"))
    results.append(check("layers-sharded", jinit.rules(
        ortho, mesh=mesh, logical_axis_rules=by_layer)(KEY, spec), ortho(KEY, spec), by_layer))

    lecun = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp"))

    @nnx.split_rngs(splits=L)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def create(rngs):
        return nnx.Linear(D, H, kernel_init=lecun, use_bias=False, rngs=rngs)

    with nnx.use_eager_sharding(False):
        state = nnx.state(create(nnx.Rngs(0)), nnx.Param)
    results.append(check("nnx", jinit.rules(jf.defaults(), mesh=mesh, logical_axis_rules=RULES)(
        KEY, state), jf.defaults()(KEY, state)))

    try:
        jinit.rules(jf.defaults(), mesh=mesh)(KEY, spec)
        no_rules = "no error"
    except jinit.RuleError as e:
        no_rules = str(e)
    print(json.dumps({"results": results, "no_rules": no_rules}))


if __name__ == "__main__":
    main()
