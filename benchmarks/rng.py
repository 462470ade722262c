"""Single-leaf samplers: throughput of normal/uniform/truncated normal, and orthogonal vs torch.

jinit's samplers are bit-identical to ``jax.random``; on CPU they use the fused Threefry
generator. Each jax case is a jitted function of the key (compile excluded).

Run alone: ``python -m benchmarks.rng [--quick]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import jax

import jinit
from benchmarks import _harness as h


def _torch() -> Any:
    try:
        import torch

        return torch
    except ImportError:
        return None


def sampler_cases(n: int) -> dict[str, Callable[[], Any]]:
    key, shape = jax.random.key(0), (n, n)
    ini = jax.nn.initializers
    cases: dict[str, Callable[[], Any]] = {}
    for name, ours, ref in [
        ("normal(1)", jinit.normal(1.0), ini.normal(1.0)),
        ("uniform(1)", jinit.uniform(1.0), ini.uniform(1.0)),
        ("truncated_normal(1)", jinit.truncated_normal(1.0), ini.truncated_normal(1.0)),
    ]:
        f, g = jax.jit(lambda k, i=ours: i(k, shape)), jax.jit(lambda k, i=ref: i(k, shape))
        cases[f"jinit {name}"] = lambda f=f: f(key)
        cases[f"jax.nn.initializers {name}"] = lambda g=g: g(key)
    torch = _torch()
    if torch is not None:
        cases["torch empty + normal_"] = lambda: torch.nn.init.normal_(torch.empty(n, n))
        cases["torch empty + uniform_"] = lambda: torch.nn.init.uniform_(torch.empty(n, n))
        cases["torch empty + trunc_normal_"] = lambda: torch.nn.init.trunc_normal_(
            torch.empty(n, n))
    return cases


def orthogonal_cases(n: int) -> dict[str, Callable[[], Any]]:
    key = jax.random.key(0)
    ours = jax.jit(lambda k: jinit.orthogonal()(k, (n, n)))
    ref = jax.jit(lambda k: jax.nn.initializers.orthogonal()(k, (n, n)))
    cases: dict[str, Callable[[], Any]] = {
        "jinit orthogonal": lambda: ours(key),
        "jax.nn.initializers orthogonal": lambda: ref(key),
    }
    torch = _torch()
    if torch is not None:
        cases["torch orthogonal_"] = lambda: torch.nn.init.orthogonal_(torch.empty(n, n))
    return cases


def _table(title: str, timings: dict, nbytes: int, ref: str, extra: str = "") -> str:
    base = timings[ref]
    rows = [(name, h.fmt_s(t), f"{nbytes / t.median / 1e9:.2f}", f"{h.ratio(base, t):.2f}x")
            for name, t in timings.items()]
    return (f"**{title}** (median of {len(base.times)} round-robin rounds; bg "
            f"{h.bg_of(timings):.2f} cores){extra}\n\n"
            + h.md_table(("case", "seconds (min-max)", "GB/s", f"time vs {ref}"), rows))


def main(quick: bool = False) -> list[str]:
    out = []
    n = 1024 if quick else 4096
    t = h.round_robin(sampler_cases(n), 3 if quick else 5)
    out.append(_table(f"Samplers, one {n}x{n} float32 leaf", t, n * n * 4, "jinit normal(1)"))
    for size in ((256,) if quick else (1024, 4096)):
        t = h.round_robin(orthogonal_cases(size), 3)
        out.append(_table(f"Orthogonal {size}x{size} float32", t, size * size * 4,
                          "jinit orthogonal",
                          ". QR runs in float32 (LAPACK via jaxlib vs torch's MKL)"))
    for text in out:
        print(text, "\n", flush=True)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    main(p.parse_args().quick)
