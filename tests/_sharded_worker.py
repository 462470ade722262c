"""Sharded tree init on 8 simulated CPU devices; run by tests/test_sharded.py in a subprocess.

Needs ``XLA_FLAGS=--xla_force_host_platform_device_count=8 --xla_dump_to=DIR
--xla_dump_hlo_as_text`` (set by the test). Prints one JSON object with the findings.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

import jinit

S = jax.ShapeDtypeStruct
V, D, H, T, LAYERS = 64, 32, 128, 16, 2  # vocab, width, mlp width, positions, blocks


def transformer_spec() -> dict:
    f32 = jnp.float32
    block = {
        "ln1": {"scale": S((D,), f32), "bias": S((D,), f32)},
        "attn": {"qkv": {"kernel": S((D, 3 * D), f32), "bias": S((3 * D,), f32)},
                 "out": {"kernel": S((D, D), f32), "bias": S((D,), f32)}},
        "ln2": {"scale": S((D,), f32), "bias": S((D,), f32)},
        "mlp": {"fc1": {"kernel": S((D, H), f32), "bias": S((H,), f32)},
                "fc2": {"kernel": S((H, D), f32), "bias": S((D,), f32)}},
    }
    return {"embed": {"embedding": S((V, D), f32)}, "pos": {"embedding": S((T, D), f32)},
            **{f"block_{i}": block for i in range(LAYERS)},
            "ln_f": {"scale": S((D,), f32), "bias": S((D,), f32)},
            "head": {"kernel": S((D, V), f32)}}


def rule_set(orthogonal: bool) -> tuple:
    return ((r".*/ln.*/scale|ln_f/scale", jinit.ones),
            (r".*bias", jinit.zeros),
            (r".*embedding", jinit.normal(0.02)),
            (r".*/mlp/fc1/kernel", jinit.orthogonal() if orthogonal else jinit.he_normal()),
            (r"head/kernel", jinit.orthogonal() if orthogonal else jinit.lecun_normal()),
            (r".*kernel", jinit.glorot_uniform()))


def partition_1d() -> list:
    return [(r".*embedding", P("model", None)), (r".*/qkv/kernel", P(None, "model")),
            (r".*/out/kernel", P("model", None)), (r".*/fc1/kernel", P(None, "model")),
            (r".*/fc2/kernel", P("model", None)), (r"head/kernel", P(None, "model"))]


def partition_2d() -> list:
    return [(r".*embedding", P("model", "data")), (r".*/qkv/kernel", P("data", "model")),
            (r".*/out/kernel", P("model", "data")), (r".*/fc1/kernel", P("data", "model")),
            (r".*/fc2/kernel", P("model", "data")), (r"head/kernel", P("data", "model")),
            (r".*/qkv/bias", P("model"))]


def new_hlo(dump: pathlib.Path, seen: set) -> str:
    files = {f for f in dump.glob("*after_optimizations.txt")}
    text = "".join(f.read_text() for f in sorted(files - seen))
    seen |= files
    return text


COLLECTIVES = ("all-gather", "all-reduce", "collective-permute", "all-to-all", "reduce-scatter")


def check(name: str, init, spec, reference, want_specs, dump, seen) -> dict:
    new_hlo(dump, seen)  # forget modules compiled before this case
    out = init(jax.random.key(0), spec)
    jax.block_until_ready(out)
    hlo = new_hlo(dump, seen)
    flat_out = dict(zip(jinit.paths(out), jax.tree.leaves(out), strict=True))
    flat_ref = dict(zip(jinit.paths(reference), jax.tree.leaves(reference), strict=True))
    mismatched = [p for p in flat_ref if not np.array_equal(np.asarray(flat_out[p]),
                                                            np.asarray(flat_ref[p]))]
    wrong_sharding, wrong_shard_shape = [], []
    for path, x in flat_out.items():
        want = want_specs(path, x)
        if not x.sharding.is_equivalent_to(want, x.ndim):
            wrong_sharding.append(f"{path}: {x.sharding} != {want}")
        shard = x.addressable_shards[0].data.shape
        if shard != want.shard_shape(x.shape):
            wrong_shard_shape.append(f"{path}: {shard}")
    return {"case": name, "leaves": len(flat_out), "mismatched": mismatched,
            "wrong_sharding": wrong_sharding, "wrong_shard_shape": wrong_shard_shape,
            "collectives": {c: len(re.findall(rf"\b{c}(-start)?\(", hlo)) for c in COLLECTIVES},
            "hlo_modules": hlo.count("HloModule ")}


def main(dump_dir: str) -> None:
    dump, seen = pathlib.Path(dump_dir), set()
    assert jax.device_count() == 8, jax.devices()
    results = []
    for orthogonal in (False, True):
        spec = transformer_spec()
        reference = jinit.rules(*rule_set(orthogonal))(jax.random.key(0), spec)
        for mesh_shape, axes, parts in (((8,), ("model",), partition_1d()),
                                        ((2, 4), ("data", "model"), partition_2d())):
            mesh = jax.make_mesh(mesh_shape, axes)
            init = jinit.rules(*rule_set(orthogonal), mesh=mesh, partition=parts)
            plan = init.plan(spec)

            def want(path, x, plan=plan):
                return plan[path].sharding

            tag = f"{'ortho' if orthogonal else 'plain'}-{'x'.join(map(str, mesh_shape))}"
            results.append(check(f"rules-{tag}", init, spec, reference, want, dump, seen))
            # the same shardings carried by the spec leaves themselves
            carried = jax.tree.map(lambda s: s, spec)
            flat = jinit._paths.flatten(carried)
            leaves = [S(x.shape, x.dtype, sharding=plan[p].sharding)
                      for p, x in zip(flat.paths, flat.leaves, strict=True)]
            carried = flat.unflatten(leaves)
            results.append(check(f"spec-{tag}", jinit.rules(*rule_set(orthogonal)), carried,
                                 reference, want, dump, seen))
    # a spec that does not divide the mesh is a clear error
    mesh = jax.make_mesh((8,), ("model",))
    try:
        jinit.rules((".*", jinit.zeros), mesh=mesh, partition=[(".*", P("model"))])(
            jax.random.key(0), {"w": S((12,), jnp.float32)})
        bad = "no error"
    except jinit.RuleError as e:
        bad = str(e)
    print(json.dumps({"results": results, "indivisible": bad,
                      "partitionable": bool(jax.config.jax_threefry_partitionable)}))


if __name__ == "__main__":
    main(sys.argv[1])
