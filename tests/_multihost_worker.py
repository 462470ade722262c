"""Sharded tree init across processes; run by tests/test_multihost.py, one process per role.

``python _multihost_worker.py OUT PROCESS_ID NUM_PROCESSES PORT`` joins a ``jax.distributed``
job (each process with ``--xla_force_host_platform_device_count`` CPU devices) and
``python _multihost_worker.py OUT single`` runs the same init in one process with all devices.
Each process writes the shards it holds to ``OUT/<role>/`` (one ``.npy`` per leaf and shard,
named by the shard's global index) and a ``shards.json`` describing them.
"""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import numpy as np
from _sharded_worker import LAYERS
from _sharded_worker import transformer_spec as gpt_spec  # this folder is on sys.path
from jax.sharding import PartitionSpec as P

import jinit

RULES = ((r".*/ln.*/scale|ln_f/scale", jinit.ones),
         (r".*bias", jinit.zeros),
         (r".*embedding", jinit.normal(0.02)),
         (r".*/mlp/fc1/kernel", jinit.orthogonal()),
         (r".*/fc2/kernel|.*/out/kernel", jinit.scaled(jinit.normal(0.02), (2 * LAYERS) ** -0.5)),
         (r".*kernel", jinit.glorot_uniform()))


def init_fn() -> jinit.TreeInitializer:
    """GPT-2-style rules on a ``(data=2, model=4)`` mesh over every device of the job."""
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    return jinit.rules(
        *RULES,
        mesh=mesh,
        partition=[(r".*embedding", P("model", "data")), (r".*/qkv/kernel", P("data", "model")),
                   (r".*/out/kernel", P("model", "data")), (r".*/fc1/kernel", P(None, "model")),
                   (r".*/fc2/kernel", P("model", None)), (r"head/kernel", P("data", "model")),
                   (r".*/qkv/bias", P("model"))])


def _index(index: tuple, shape: tuple) -> list:
    return [[s.start or 0, shape[d] if s.stop is None else s.stop]
            for d, s in enumerate(index)]


def _matches_unsharded(params: dict, role: str) -> bool | None:
    """In the single process: the sharded values equal the same rules without a mesh."""
    if role != "single":
        return None
    plain = jinit.rules(*RULES)(jax.random.key(0), gpt_spec())
    return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(params), jax.tree.leaves(plain), strict=True))


def main(out: str, role: str, num_processes: int = 0, port: str = "") -> None:
    if role != "single":
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                                   num_processes=num_processes, process_id=int(role),
                                   initialization_timeout=120)
    params = init_fn()(jax.random.key(0), gpt_spec())
    jax.block_until_ready(params)
    folder = pathlib.Path(out) / role
    folder.mkdir(parents=True, exist_ok=True)
    me = jax.process_index()
    leaves = {}
    for path, x in zip(jinit.paths(params), jax.tree.leaves(params), strict=True):
        shards = []
        for shard in x.addressable_shards:
            index = _index(shard.index, x.shape)
            name = f"{path.replace('/', '.')}@{'_'.join(f'{a}-{b}' for a, b in index)}.npy"
            np.save(folder / name, np.asarray(shard.data))
            shards.append({"file": name, "index": index, "device": shard.device.id,
                           "device_process": shard.device.process_index})
        leaves[path] = {"shape": list(x.shape), "spec": str(x.sharding.spec),
                        "fully_addressable": x.is_fully_addressable, "shards": shards}
    summary = {"process_index": me, "matches_unsharded": _matches_unsharded(params, role),
               "process_count": jax.process_count(),
               "devices": jax.device_count(), "local_devices": jax.local_device_count(),
               "leaves": leaves}
    (folder / "shards.json").write_text(json.dumps(summary))
    if role != "single":
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(sys.argv[3]), sys.argv[4]) if len(sys.argv) > 3 else ())
