"""Cold time-to-params: a fresh process per case (trace + compile + first run), paired rounds.

Each case runs in its own interpreter (``python -m benchmarks.cold --oneshot CASE MODEL``)
with JAX's persistent compilation cache and jinit's kernel cache off, except the case that
measures jinit's kernel cache (``jinit.set_kernel_cache``, primed by one earlier process). The child
reports the in-process time from "imports done, spec built" to "parameters ready", its RSS
before the init and its peak RSS; the parent measures the whole-process wall time. Rounds
alternate the cases (A B C, A B C) so background load hits them alike.

Run alone: ``python -m benchmarks.cold [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import _harness as h

CASES = ("jinit", "jinit_jit", "jinit_cached", "jax_nn", "linen", "nnx", "torch_default",
         "torch_meta")
LABELS = {
    "jinit": "jinit rules (eager)",
    "jinit_jit": "jinit rules under jax.jit (one program)",
    "jinit_cached": "jinit rules, jinit kernel cache on and primed",
    "jax_nn": "jax.nn.initializers, hand-written jit",
    "linen": "flax linen jit(model.init)",
    "nnx": "flax nnx eager construction",
    "torch_default": "torch default construction",
    "torch_meta": "torch meta + to_empty + normal_",
}


def oneshot(case: str, model_name: str) -> dict:
    """Runs one case in this (fresh) process and returns its measurements."""
    from benchmarks import models as m

    model = m.MODELS[model_name]
    if case.startswith("torch"):
        import torch  # noqa: F401

        fn = (lambda: m.torch_construct(model)) if case == "torch_default" else (
            lambda: m.torch_meta_init(model))
    else:
        import jax

        spec = m.spec(model)
        key = jax.random.key(0)
        if case in ("jinit", "jinit_cached"):
            tree_init = m.jinit_init()
            fn = lambda: tree_init(key, spec)  # noqa: E731
        elif case == "jinit_jit":
            tree_init = m.jinit_init()
            fn = lambda: jax.jit(lambda k: tree_init(k, spec))(key)  # noqa: E731
        elif case == "jax_nn":
            fn = lambda: jax.jit(m.jax_nn_init(spec))(key)  # noqa: E731
        elif case == "linen":
            net, x = m.linen_module(model)
            fn = lambda: jax.jit(net.init)(key, x)  # noqa: E731
        else:
            build = m.nnx_construct(model)
            fn = lambda: build(key)  # noqa: E731
    rss0 = h.current_rss_mib()
    t0 = time.perf_counter()
    h.block(fn())
    return {"ttp": time.perf_counter() - t0, "rss0": rss0, "peak": h.peak_rss_mib()}


def _env(cache_dir: str | None) -> dict:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE", "JINIT_KERNEL_CACHE")):
            del env[k]
    if cache_dir:
        env["JINIT_KERNEL_CACHE_DIR"] = cache_dir
    env["JINIT_PROGRESS"] = "0"
    return env


def _spawn(case: str, model: str, cache_dir: str | None) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "benchmarks.cold", "--oneshot", case, model],
                         capture_output=True, text=True, env=_env(cache_dir), timeout=900,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"cold case {case} on {model} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall"] = wall
    return res


def run(model: str, rounds: int, cases: tuple[str, ...] = CASES) -> tuple[str, dict]:
    """Returns a markdown table and ``{case: median time-to-params}``."""
    from benchmarks import models as m

    results: dict[str, list[dict]] = {c: [] for c in cases}
    with tempfile.TemporaryDirectory(prefix="jinit-jax-cache-") as cache:
        if "jinit_cached" in cases:
            _spawn("jinit", model, cache)  # primes the persistent cache
        for _ in range(rounds):
            for c in cases:
                time.sleep(h.GAP_S)
                results[c].append(_spawn(c, model, cache if c == "jinit_cached" else None))
    med = {c: statistics.median(r["ttp"] for r in rs) for c, rs in results.items()}
    ours = results["jinit"]
    rows = []
    for c, rs in results.items():
        faster = statistics.median(b["ttp"] / a["ttp"] for a, b in zip(ours, rs, strict=False))
        rows.append((LABELS[c], f"{med[c]:.2f} ({min(r['ttp'] for r in rs):.2f}-"
                     f"{max(r['ttp'] for r in rs):.2f})",
                     f"{statistics.median(r['wall'] for r in rs):.2f}",
                     f"{statistics.median(r['peak'] - r['rss0'] for r in rs):.0f}",
                     f"{statistics.median(r['peak'] for r in rs):.0f}", f"{faster:.2f}x"))
    mb = m.nbytes(m.spec(m.MODELS[model])) / 2**20
    title = (f"**Cold time-to-params, {model}** ({mb:.0f} MiB of params; fresh process per "
             f"case, median of {rounds} paired rounds; compilation caches off unless stated; "
             f"load average {h.load_average()})")
    if model.startswith("gpt") and "linen" in results:
        vs_linen = statistics.median(
            b["ttp"] / a["ttp"] for a, b in zip(ours, results["linen"], strict=False))
        h.goal_line(f"cold {model}, jinit vs Flax linen jit(model.init)", vs_linen, 4)
        growth = statistics.median(r["peak"] - r["rss0"] for r in ours) / mb
        h.goal_line(f"cold {model}, jinit peak RSS growth / param bytes", growth, 1.2,
                    unit="x", higher_is_better=False)
    table = h.md_table(("case", "time-to-params s (min-max)", "whole process s",
                        "RSS growth MiB", "peak RSS MiB", "jinit faster by"), rows)
    return f"{title}\n\n{table}", med


def main(quick: bool = False) -> list[str]:
    from benchmarks import models as m

    gpt40, gpt100, gpt400 = m.GPT40M.name, m.GPT100M.name, m.GPT400M.name
    plan = [(gpt40, 3, ("jinit", "linen"))] if quick else [
        (gpt40, 3, CASES), (gpt100, 3, CASES),
        (gpt400, 1, ("jinit", "jinit_cached", "jax_nn", "linen", "torch_default")),
        ("mlp", 3, CASES)]
    out = []
    for model, rounds, cases in plan:
        text, _ = run(model, rounds, cases)
        print(text, "\n", flush=True)
        out.append(text)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--oneshot", nargs=2, metavar=("CASE", "MODEL"))
    a = p.parse_args()
    if a.oneshot:
        print(json.dumps(oneshot(*a.oneshot)))
    else:
        main(a.quick)
