"""Logical partitioning and strict partition rules.

Boxed params (``nn.with_logical_partitioning``, ``nn.with_partitioning``, nnx variables with
``out_sharding``) are sharded by their axis names when a mesh is given: on 8 simulated CPU
devices (a subprocess, tests/_logical_worker.py), every leaf's sharding is what the logical
axis rules say, its values are bit-identical to the unsharded init, and its box is kept.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import jinit

WORKER = pathlib.Path(__file__).with_name("_logical_worker.py")
CASES = ["argument", "jit", "flax.init", "context", "nnx", "layers-sharded"]


@pytest.fixture(scope="module")
def report():
    root = str(WORKER.parents[1])  # this source tree's jinit, not another installed one
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, str(WORKER)], env=env, capture_output=True,
                          text=True, timeout=900, cwd=root)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_boxed_leaves_are_sharded_by_their_logical_names(report, case):
    r = next(r for r in report["results"] if r["case"] == case)
    assert r["leaves"] == (1 if case == "nnx" else 5)
    assert r["wrong_box"] == []  # the boxes are kept
    assert r["wrong_sharding"] == []  # as nn.logical_to_mesh_axes(names, rules) says
    assert r["mismatched"] == []  # bit-identical to the unsharded init
    assert r["some_sharded"]  # devices hold shards, not copies


@pytest.mark.slow
def test_logical_names_without_rules_raise_with_the_fix(report):
    assert "has logical axis names ('vocab', 'embed'), but no logical axis rules" in (
        report["no_rules"])
    assert "logical_axis_rules=" in report["no_rules"]


# --- strict partition rules (one device is enough) -------------------------------------------

SPEC = {"Dense_0": {"kernel": jax.ShapeDtypeStruct((4, 8), jnp.float32),
                    "bias": jax.ShapeDtypeStruct((8,), jnp.float32)}}


def test_partition_rule_typo_raises_like_an_init_rule():
    mesh = jax.make_mesh((1,), ("model",))
    init = jinit.rules((".*", jinit.zeros), mesh=mesh,
                       partition=[(".*/kernal", jax.P(None, "model"))])
    with pytest.raises(jinit.RuleError,
                       match=r"(?s)partition rule 0 \('\.\*/kernal', P\(None, "
                             r"'model'\)\) matches no leaf \(strict=True\)\..*Did you mean "
                             r"'Dense_0/kernel'\?.*strict=False"):
        init(jax.random.key(0), SPEC)
    lax = jinit.rules((".*", jinit.zeros), mesh=mesh, strict=False,
                      partition=[(".*/kernal", jax.P(None, "model"))])
    out = lax(jax.random.key(0), SPEC)
    assert out["Dense_0"]["kernel"].sharding.spec == jax.P()  # replicated, as asked


def test_partition_rule_shadowed_by_an_earlier_one():
    mesh = jax.make_mesh((1,), ("model",))
    init = jinit.rules((".*", jinit.zeros), mesh=mesh,
                       partition=[(".*", jax.P()), (".*/kernel", jax.P(None, "model"))])
    with pytest.raises(jinit.RuleError, match=r"partition rule 1 .* matches 1 leaf\(s\), but "
                                              r"earlier rules take all of them"):
        init(jax.random.key(0), SPEC)
