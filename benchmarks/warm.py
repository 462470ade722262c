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

JINIT = "jinit rules (eager)"
LINEN = "flax linen jit(model.init)"
TORCH = "torch default construction"
MEMSET = "memset: jit zeros tree [floor]"


def cases(model: Any, quick: bool = False) -> dict[str, Callable[[], Any]]:
    """Every case as a zero-argument callable returning the initialized parameters.

    ``quick`` keeps the cases of the goals: memset, jinit, Flax linen, torch default.
    """
    spec = m.spec(model)
    key = jax.random.key(0)
    tree_init = m.jinit_init()
    jinit_jit = jax.jit(lambda k: tree_init(k, spec))
    zeros = jax.jit(m.zeros_init(spec))
    plain = jax.jit(m.jax_nn_init(spec))
    net, x = m.linen_module(model)
    linen = jax.jit(net.init)
    out: dict[str, Callable[[], Any]] = {MEMSET: zeros, JINIT: lambda: tree_init(key, spec)}
    if not quick:
        out["jinit rules under jax.jit (one program)"] = lambda: jinit_jit(key)
        out["jax.nn.initializers, hand-written jit"] = lambda: plain(key)
    out[LINEN] = lambda: linen(key, x)
    if not quick:
        try:
            build = m.nnx_construct(model)
            out["flax nnx eager construction"] = lambda: build(key)
        except ImportError:
            pass
    try:
        import torch  # noqa: F401

        out[TORCH] = lambda: m.torch_construct(model)
        if not quick:
            out["torch meta + to_empty + normal_"] = lambda: m.torch_meta_init(model)
    except ImportError:
        pass
    return out


def run(model: Any, rounds: int, quick: bool = False) -> tuple[str, dict[str, float]]:
    """Returns a markdown table and ``{case: how many times faster jinit is}``."""
    timings = h.round_robin(cases(model, quick), rounds)
    gb = m.nbytes(m.spec(model)) / 1e9
    ref, ours = timings[MEMSET], timings[JINIT]
    rows, speedups = [], {}
    for name, t in timings.items():
        speedups[name] = h.ratio(ours, t)
        rows.append((name, h.fmt_s(t), f"{gb / t.median:.2f}", f"{h.ratio(t, ref):.3f}",
                     f"{speedups[name]:.2f}x"))
    title = (f"**Warm init, {model.name}** ({model.params / 1e6:.1f}M params, "
             f"{len(jax.tree.leaves(m.spec(model)))} leaves, {gb * 1e3:.0f} MB f32; median of "
             f"{rounds} round-robin rounds; bg {h.bg_of(timings):.2f} cores; load average "
             f"{h.load_average()})")
    if isinstance(model, m.Gpt) and model.layers <= 12:
        h.goal_line(f"warm {model.name}, jinit vs Flax linen jit(model.init)", speedups[LINEN], 3)
        if TORCH in speedups:
            h.goal_line(f"warm {model.name}, jinit vs torch default construction",
                        speedups[TORCH], 1.5)
    table = h.md_table(("case", "seconds (min-max)", "GB/s", "vs memset", "jinit faster by"),
                       rows)
    return f"{title}\n\n{table}", speedups


def main(quick: bool = False) -> list[str]:
    models = [m.GPT40M] if quick else [
        m.GPT40M, m.GPT100M, m.GPT400M, m.MODELS["mlp"], m.MODELS["cnn"]]
    out = []
    for model in models:
        rounds = 3 if quick else (3 if model is m.GPT400M else 5)
        text, _ = run(model, rounds, quick)
        print(text, "\n", flush=True)
        out.append(text)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    main(p.parse_args().quick)
