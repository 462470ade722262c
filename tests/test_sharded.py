"""Sharded tree init on 8 simulated CPU devices, in a subprocess.

The worker (tests/_sharded_worker.py) initializes a small transformer-like tree (embeddings,
fused qkv, attention out, MLP, layer norms, head; with and without orthogonal leaves) on a
1-D (8,) and a 2-D (2, 4) mesh, both through ``rules(..., mesh=, partition=)`` and through
spec leaves that carry a ``NamedSharding``, and reports what it found.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

import jinit

WORKER = pathlib.Path(__file__).with_name("_sharded_worker.py")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    dump = tmp_path_factory.mktemp("hlo")
    env = dict(os.environ, XLA_FLAGS=(
        f"--xla_force_host_platform_device_count=8 --xla_dump_to={dump} --xla_dump_hlo_as_text"),
        JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(WORKER), str(dump)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


CASES = [f"{how}-{kind}-{mesh}" for how in ("rules", "spec") for kind in ("plain", "ortho")
         for mesh in ("8", "2x4")]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_sharded_values_are_bit_identical_and_placed_as_requested(report, case):
    r = next(r for r in report["results"] if r["case"] == case)
    assert r["leaves"] == 29
    assert r["mismatched"] == []  # bit-identical to the unsharded init
    assert r["wrong_sharding"] == []
    assert r["wrong_shard_shape"] == []  # each device holds only its shard


@pytest.mark.slow
@pytest.mark.parametrize("case", ["rules-plain-8", "rules-plain-2x4"])
def test_partitionable_generation_has_no_collectives(report, case):
    assert report["partitionable"]
    r = next(r for r in report["results"] if r["case"] == case)
    assert r["hlo_modules"] > 0  # the check saw the compiled init program
    assert r["collectives"] == {c: 0 for c in r["collectives"]}


@pytest.mark.slow
def test_indivisible_partition_is_a_rule_error(report):
    assert "splits a dimension of size 12 of leaf 'w' (shape=(12,), dtype=float32) into 8 " \
           "shards, which does not divide it" in report["indivisible"]


def test_one_device_mesh_in_process():
    """The mesh API on the devices this process has (one CPU device in the test run)."""
    mesh = jax.make_mesh((1,), ("model",))
    spec = {"w": jax.ShapeDtypeStruct((4, 8), jax.numpy.float32)}
    init = jinit.rules(("w", jinit.normal(1.0)), mesh=mesh, partition=[("w", jax.P(None, "model"))])
    out = init(jax.random.key(0), spec)
    assert out["w"].sharding.spec == jax.P(None, "model")
    ref = jinit.rules(("w", jinit.normal(1.0)))(jax.random.key(0), spec)
    assert bool((out["w"] == ref["w"]).all())
