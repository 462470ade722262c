"""Sharded init on 8 simulated host devices: per-device memory, collectives, bit identity.

The parent starts ``python -m benchmarks.sharded --worker MODEL`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``. Mesh ``("m",) = 8``; kernels split on
their last axis, the token embedding on the vocabulary, 1-D leaves whose size divides by 8 on
their only axis, anything else is replicated. Per-device numbers come from the compiled
programs' ``memory_analysis()`` and the arrays' shards; collectives are counted in the
compiled HLO text.

Run alone: ``python -m benchmarks.sharded [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

from benchmarks import _harness as h
from benchmarks import models as m

COLLECTIVES = r"\b(all-gather|all-reduce|collective-permute|all-to-all|reduce-scatter)\b"
N_DEV = 8


def _collectives(hlo: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for name in re.findall(COLLECTIVES + r"(?:-start)?\(", hlo):
        found[name] = found.get(name, 0) + 1
    return found


def worker(model_name: str) -> dict:
    import jax
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import jinit
    from jinit import _engine

    model = m.MODELS[model_name]
    spec = m.spec(model)
    mesh = jax.make_mesh((N_DEV,), ("m",))

    def pspec(path: str, s) -> P:
        if path == "wte/embedding":
            return P("m", None)
        if len(s.shape) >= 2 and s.shape[-1] % N_DEV == 0:
            return P(*([None] * (len(s.shape) - 1)), "m")
        if len(s.shape) == 1 and s.shape[0] % N_DEV == 0:
            return P("m")
        return P()

    paths = jinit.paths(spec)
    leaves = jax.tree.leaves(spec)
    partition = [(re.escape(p), pspec(p, s)) for p, s in zip(paths, leaves, strict=False)]
    base = m.jinit_init()
    sharded_init = jinit.rules(base, mesh=mesh, partition=partition, strict=False)
    key = jax.random.key(0)
    res: dict = {"params_mb": m.nbytes(spec) / 1e6}

    _engine.clear_cache()
    rss0 = h.current_rss_mib()
    t0 = time.perf_counter()
    sharded = h.block(sharded_init(key, spec))
    res["jinit_cold_s"] = time.perf_counter() - t0
    res["jinit_rss_growth_mb"] = (h.peak_rss_mib() - rss0) * 2**20 / 1e6
    res["jinit_warm_s"] = h.timed_call(lambda: sharded_init(key, spec))[0]
    dev0 = jax.devices()[0]
    res["jinit_dev0_mb"] = sum(s.data.nbytes for x in jax.tree.leaves(sharded)
                               for s in x.addressable_shards if s.device == dev0) / 1e6
    temp, coll = 0, {}
    for _kind, fn in list(_engine._cache.items()):
        compiled = fn.lower(key, _engine._digest("")).compile()
        temp = max(temp, compiled.memory_analysis().temp_size_in_bytes)
        for k, v in _collectives(compiled.as_text()).items():
            coll[k] = coll.get(k, 0) + v
    res["jinit_max_temp_mb"] = temp / 1e6
    res["jinit_collectives"] = coll
    plain = base(key, spec)
    res["bit_identical"] = all(
        np.asarray(a).tobytes() == np.asarray(b).tobytes()
        for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(plain), strict=False))
    del plain

    # Baseline: one whole-tree jit of jax.nn.initializers with out_shardings (partitionable).
    shardings = jax.tree.unflatten(jax.tree.structure(spec), [
        NamedSharding(mesh, pspec(p, s)) for p, s in zip(paths, leaves, strict=False)])
    fn = jax.jit(m.jax_nn_init(spec), out_shardings=shardings)
    compiled = fn.lower(key).compile()
    mem = compiled.memory_analysis()
    res["jax_dev_out_mb"] = mem.output_size_in_bytes / 1e6
    res["jax_dev_temp_mb"] = mem.temp_size_in_bytes / 1e6
    res["jax_collectives"] = _collectives(compiled.as_text())
    h.block(compiled(key))
    res["jax_warm_s"] = h.timed_call(lambda: compiled(key))[0]
    return res


def main(quick: bool = False) -> list[str]:
    model = m.GPT_QUICK.name if quick else m.GPT100M.name
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                                      f" --xla_force_host_platform_device_count={N_DEV}"),
               JINIT_PROGRESS="0")
    out = subprocess.run([sys.executable, "-m", "benchmarks.sharded", "--worker", model],
                         capture_output=True, text=True, env=env, timeout=1200,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if out.returncode:
        raise RuntimeError(f"sharded worker failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    share = r["params_mb"] / N_DEV
    rows = [
        ("jinit rules, mesh + partition rules (per-kind kernels)", f"{r['jinit_warm_s']:.3f}",
         f"{r['jinit_dev0_mb']:.1f}", f"{r['jinit_max_temp_mb']:.1f} (largest kernel)",
         json.dumps(r["jinit_collectives"]) if r["jinit_collectives"] else "none",
         "yes" if r["bit_identical"] else "NO"),
        ("jax.nn.initializers, one jit with out_shardings", f"{r['jax_warm_s']:.3f}",
         f"{r['jax_dev_out_mb']:.1f}", f"{r['jax_dev_temp_mb']:.1f}",
         json.dumps(r["jax_collectives"]) if r["jax_collectives"] else "none", "-"),
    ]
    text = (f"**Sharded init, {model} on {N_DEV} simulated CPU devices** ({r['params_mb']:.0f} MB "
            f"of params, 1/{N_DEV} = {share:.1f} MB; jinit cold {r['jinit_cold_s']:.2f} s, "
            f"process RSS growth {r['jinit_rss_growth_mb']:.0f} MB for all {N_DEV} devices; "
            "replicated leaves are the ones not divisible by 8)\n\n"
            + h.md_table(("case", "warm s", "device 0 params MB", "per-device temp MB",
                          "collectives in HLO", "= unsharded bitwise"), rows))
    print(text, "\n", flush=True)
    return [text]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", metavar="MODEL")
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker)))
    else:
        main(a.quick)
