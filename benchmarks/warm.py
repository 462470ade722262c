"""Warm whole-model init (compile excluded): jinit vs memset, jax.nn.initializers, Flax, torch.

Run alone: ``python -m benchmarks.warm [--quick]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import jax

from benchmarks import _harness as h
from benchmarks import models as m

JINIT = "jinit rules (eager: cached per-kind kernels)"
MEMSET = "memset: jit zeros tree [floor]"


def cases(model: Any) -> dict[str, Callable[[], Any]]:
    """Every case as a zero-argument callable returning the initialized parameters."""
    spec = m.spec(model)
    key = jax.random.key(0)
    tree_init = m.jinit_init()
    jinit_jit = jax.jit(lambda k: tree_init(k, spec))
    zeros = jax.jit(m.zeros_init(spec))
    plain = jax.jit(m.jax_nn_init(spec))
    net, x = m.linen_module(model)
    linen = jax.jit(net.init)
    out: dict[str, Callable[[], Any]] = {
        MEMSET: zeros,
        JINIT: lambda: tree_init(key, spec),
        "jinit rules under jax.jit (one program)": lambda: jinit_jit(key),
        "jax.nn.initializers, hand-written jit": lambda: plain(key),
        "flax linen jit(model.init)": lambda: linen(key, x),
    }
    try:
        build = m.nnx_construct(model)
        out["flax nnx eager construction"] = lambda: build(key)
    except ImportError:
        pass
    try:
        import torch  # noqa: F401

        out["torch default construction"] = lambda: m.torch_construct(model)
        out["torch meta + to_empty + normal_"] = lambda: m.torch_meta_init(model)
    except ImportError:
        pass
    return out


def run(model: Any, rounds: int) -> tuple[str, dict[str, float]]:
    """Returns a markdown table and ``{case: how many times faster jinit is}``."""
    timings = h.round_robin(cases(model), rounds)
    gb = m.nbytes(m.spec(model)) / 1e9
    ref, ours = timings[MEMSET], timings[JINIT]
    rows, speedups = [], {}
    for name, t in timings.items():
        speedups[name] = h.ratio(ours, t)
        rows.append((name, h.fmt_s(t), f"{gb / t.median:.2f}", f"{h.ratio(t, ref):.3f}",
                     f"{speedups[name]:.2f}x"))
    title = (f"**Warm init, {model.name}** ({model.params / 1e6:.1f}M params, "
             f"{len(jax.tree.leaves(m.spec(model)))} leaves, {gb * 1e3:.0f} MB f32; median of "
             f"{rounds} round-robin rounds; bg {h.bg_of(timings):.2f} cores)")
    table = h.md_table(("case", "seconds (min-max)", "GB/s", "vs memset", "jinit faster by"),
                       rows)
    return f"{title}\n\n{table}", speedups


def main(quick: bool = False) -> list[str]:
    models = [m.GPT_QUICK] if quick else [
        m.GPT100M, m.GPT400M, m.MODELS["mlp"], m.MODELS["cnn"]]
    out = []
    for model in models:
        rounds = 3 if quick else (3 if model is m.GPT400M else 5)
        text, _ = run(model, rounds)
        print(text, "\n", flush=True)
        out.append(text)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    main(p.parse_args().quick)
