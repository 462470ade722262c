"""jinit.set_kernel_cache: compiled chunk kernels kept on disk, size-capped, never changing values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit
from jinit import _engine, _kernel_cache
from jinit._engine import LeafTask, init_leaves

CHILD = textwrap.dedent("""
    import hashlib, json, jax, numpy as np, jinit
    from jinit import _kernel_cache
    spec = {"w": jax.ShapeDtypeStruct((300, 70), np.float32),
            "e": jax.ShapeDtypeStruct((500, 64), np.float32),
            "b": jax.ShapeDtypeStruct((70,), np.float32)}
    init = jinit.rules(("w", jinit.lecun_normal()), ("e", jinit.normal(0.02)), ("b", jinit.zeros))
    out = init(jax.random.key(0), spec)
    digest = hashlib.sha1(b"".join(np.asarray(v).tobytes() for v in jax.tree.leaves(out)))
    print(json.dumps({**_kernel_cache.info(), "values": digest.hexdigest()}))
""")


def run_child(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINIT_KERNEL_CACHE")}
    env.update(env_extra, JINIT_PROGRESS="0")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def _restore():
    yield
    _kernel_cache.reset_kernel_cache()
    _engine.clear_cache()  # forgets the tiers too: every draw below goes through chunks


def test_env_var_switches_cache_on_and_second_process_loads(tmp_path):
    first = run_child({"JINIT_KERNEL_CACHE_DIR": str(tmp_path)})
    assert first["misses"] >= 2 and first["hits"] == 0 and first["entries"] == first["misses"]
    second = run_child({"JINIT_KERNEL_CACHE_DIR": str(tmp_path)})
    assert second["misses"] == 0 and second["hits"] == first["misses"]
    off = run_child({})
    assert off["path"] is None and off["entries"] == 0
    assert first["values"] == second["values"] == off["values"]


def tasks(family_inits) -> list[LeafTask]:
    return [LeafTask(f"l{i}", init, (1000, 3), jnp.float32) for i, init in enumerate(family_inits)]


def test_size_cap_evicts_least_recently_used(tmp_path):
    sizes = []
    for i, init in enumerate((jinit.uniform(), jinit.normal())):  # each kernel's file size
        jinit.set_kernel_cache(tmp_path / f"probe{i}")
        _engine.clear_cache()  # forgets the tiers too: every draw below goes through chunks
        init_leaves(jax.random.key(0), tasks([init]))
        sizes.append(_kernel_cache.info()["bytes"])
    jinit.set_kernel_cache(tmp_path / "capped", max_bytes=max(sizes) + min(sizes) // 2)
    _engine.clear_cache()
    init_leaves(jax.random.key(0), tasks([jinit.uniform()]))
    assert _kernel_cache.info()["entries"] == 1
    init_leaves(jax.random.key(0), tasks([jinit.normal()]))
    info = _kernel_cache.info()
    assert info["entries"] == 1 and info["bytes"] == sizes[1] <= info["max_bytes"]
    assert info["evicted"] >= 1


def test_damaged_entry_is_recompiled_with_the_same_values(tmp_path):
    jinit.set_kernel_cache(tmp_path)
    _engine.clear_cache()  # forgets the tiers too: every draw below goes through chunks
    t = tasks([jinit.uniform(2.0)])
    want = np.asarray(init_leaves(jax.random.key(1), t)[0])
    for f in tmp_path.iterdir():
        f.write_bytes(b"not an executable")
    _engine.clear_cache()  # forgets the tiers too: every draw below goes through chunks
    misses = _kernel_cache.info()["misses"]
    got = np.asarray(init_leaves(jax.random.key(1), t)[0])
    assert got.tobytes() == want.tobytes()
    assert _kernel_cache.info()["misses"] == misses + 1


def test_off_by_default_and_argument_checks(monkeypatch):
    monkeypatch.delenv("JINIT_KERNEL_CACHE_DIR", raising=False)
    assert _kernel_cache.current() is None
    for bad in (0, -5, 1.5, True, "1"):
        with pytest.raises(jinit.InitializerArgumentError, match="max_bytes"):
            jinit.set_kernel_cache("/tmp", max_bytes=bad)
