"""Sharded tree init across two processes under ``jax.distributed`` (4 CPU devices each).

The same ``jinit.rules(..., mesh=, partition=)`` over a global 8-device mesh must leave each
process holding only the shards of its own devices, bit-identical to the same init in a single
process with 8 devices. The processes run tests/_multihost_worker.py and save their shards as
``.npy``; every child is killed if the test fails or times out.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # three Python processes with JAX: ~50 s on 2 busy cores

WORKER = pathlib.Path(__file__).with_name("_multihost_worker.py")
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=os.pathsep.join([root, env.get("PYTHONPATH", "")]))
    return env


def _run_all(commands: list[tuple[list[str], dict]]) -> None:
    """Starts every command, waits for all; kills the rest if one fails or time runs out."""
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for cmd, env in commands]
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT_S)
            assert p.returncode == 0, f"{p.args} exited with {p.returncode}:\n{out[-4000:]}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("multihost")
    for attempt in range(2):  # another program may take the free port before the coordinator
        port = str(_free_port())
        try:
            _run_all([([sys.executable, str(WORKER), str(out), str(i), "2", port], _env(4))
                      for i in range(2)]
                     + [([sys.executable, str(WORKER), str(out), "single"], _env(8))])
            break
        except AssertionError as e:
            if attempt or "ddress already in use" not in str(e):
                raise
    return {role: json.loads((out / role / "shards.json").read_text()) | {"dir": out / role}
            for role in ("0", "1", "single")}


def test_each_process_is_one_half_of_a_global_mesh(shards):
    for i in (0, 1):
        s = shards[str(i)]
        assert (s["process_index"], s["process_count"], s["devices"], s["local_devices"]) == (
            i, 2, 8, 4)
    assert (shards["single"]["process_count"], shards["single"]["local_devices"]) == (1, 8)
    assert shards["single"]["matches_unsharded"]  # the sharded reference is the plain init


def test_each_process_holds_only_its_own_shards(shards):
    single = shards["single"]["leaves"]
    for path, leaf in single.items():
        everything = {tuple(map(tuple, s["index"])) for s in leaf["shards"]}
        held = []
        for i in (0, 1):
            mine = shards[str(i)]["leaves"][path]
            assert mine["spec"] == leaf["spec"] and mine["shape"] == leaf["shape"], path
            assert len(mine["shards"]) == 4, path  # one per local device, none of the other's
            assert all(s["device_process"] == i for s in mine["shards"]), path
            held.append({tuple(map(tuple, s["index"])) for s in mine["shards"]})
            if leaf["spec"] != "PartitionSpec()" and len(everything) == 8:
                assert not mine["fully_addressable"], path
        assert held[0] | held[1] == everything, path  # together they hold the whole array
        if len(everything) == 8:  # sharded over both processes: disjoint halves
            assert not held[0] & held[1], path


def test_shards_are_bit_identical_to_a_single_process(shards):
    single = shards["single"]
    reference = {}
    for path, leaf in single["leaves"].items():
        full = np.zeros(leaf["shape"], np.float32)
        for s in leaf["shards"]:
            full[tuple(slice(a, b) for a, b in s["index"])] = np.load(single["dir"] / s["file"])
        reference[path] = full
    compared = 0
    for i in (0, 1):
        proc = shards[str(i)]
        for path, leaf in proc["leaves"].items():
            for s in leaf["shards"]:
                got = np.load(proc["dir"] / s["file"])
                want = reference[path][tuple(slice(a, b) for a, b in s["index"])]
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (path, s)
                compared += 1
    assert compared == 8 * len(single["leaves"])
    assert any(np.abs(r).max() > 0 and len(np.unique(r)) > 100 for r in reference.values())
