"""Helpers shared by the array-level interop tests (one test module per framework)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

#: dtypes every framework test tries; each module intersects with what its framework holds.
DTYPES_32 = ("bool", "int8", "int16", "int32", "uint8", "uint16", "uint32", "float16",
             "bfloat16", "float32", "complex64")  # fmt: skip
DTYPES_64 = ("float64", "int64", "uint64", "complex128")


def sample(dtype: str, shape=(3, 5)) -> jax.Array:
    """A deterministic array with distinctive values (extremes for integers, fractions, sign)."""
    n = int(np.prod(shape))
    dt = np.dtype(jnp.dtype(dtype))
    if dt == np.bool_:
        a = np.arange(n) % 3 == 0
    elif np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        lo, hi = int(info.min), int(info.max)
        vals = [lo + i * ((hi - lo) // (n - 1)) for i in range(n - 1)] + [hi]
        a = np.array(vals, dtype=dt)
    elif np.issubdtype(dt, np.complexfloating):
        a = (np.linspace(-3, 3, n) + 1j * np.linspace(2, -2, n)).astype(dt)
    else:
        a = (np.linspace(-3.3, 7.7, n) / 3).astype(dt)
    return jnp.asarray(a.reshape(shape))


def bits(x) -> np.ndarray:
    """The raw bytes of an array (bit-exact comparison, NaN and bf16 included)."""
    a = np.asarray(x)
    return np.ascontiguousarray(a).view(np.uint8)


def same_bits(a, b) -> bool:
    return np.dtype(np.asarray(a).dtype) == np.dtype(np.asarray(b).dtype) and np.array_equal(
        bits(a), bits(b)
    )


assert ml_dtypes  # bfloat16 numpy dtype used by np.asarray(bf16 jax array)


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 240) -> dict:
    """Runs ``code`` in a fresh interpreter; it must print one JSON object on its last line."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=timeout, env=full_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: measures the resident memory added by a move-mode export of a 1 GiB tree (200 leaves).
RSS_SCRIPT = """
import json, os, jax, jax.numpy as jnp
from jinit.interop import {fn}
{setup}
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
leaves = {{f"layer_{{i}}": jnp.full((1342, 1000), float(i), jnp.float32) for i in range(200)}}
jax.block_until_ready(leaves)
total = sum(x.nbytes for x in leaves.values()) / 2**20
warm = {fn}({{"w": jnp.ones((4,))}}, mode="move")  # import the framework before measuring
before = rss_mb()
out, rep = {fn}(leaves, mode="move", report=True)
after = rss_mb()
print(json.dumps(dict(total_mb=total, delta_mb=after - before, zero_copy=rep.all_zero_copy,
                      deleted=all(x.is_deleted() for x in leaves.values()))))
"""
