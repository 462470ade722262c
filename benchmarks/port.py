"""Whole-model port time: jinit.interop vs HF transformers' own Flax <-> PyTorch converter.

Run: ``python -m benchmarks.port [--quick] [--rounds N]``. The model is an HF BERT (BERT-base
sized by default: 12 layers, hidden 768, 110M parameters; ``--quick``: 4 layers, hidden 256),
random weights, as the HF ``FlaxBertModel`` / ``BertModel`` twins. Cases:

* Flax -> torch: ``load_torch(bert, flax_params, source=flax_model.module)`` in ``"copy"`` mode
  (values copied into the module's tensors) and ``"share"`` mode (zero-copy: parameters alias
  the Flax buffers where the layout allows), vs HF's ``load_flax_weights_in_pytorch_model``.
* torch -> Flax: ``params_from_torch(bert, flax_params, source=flax_model.module)`` in
  ``"copy"`` and ``"share"`` mode (identity-layout leaves alias torch memory) vs HF's
  ``convert_pytorch_state_dict_to_flax(bert.state_dict(), flax_model)`` (the in-memory step of
  ``from_pretrained(from_pt=True)``), each returning JAX arrays.
* torch -> Flax floor: one DLPack import and one eager XLA transpose or copy per tensor, the
  data movement any copying converter does; its ``x HF`` bounds what a converter can reach.

Both directions are checked once (untimed) to give the same tensors as HF's converter. Method
(``benchmarks/_harness.py``): one warm-up call each, then round-robin rounds with an idle gap;
medians (min-max); ``x HF`` is the median over rounds of HF's time / jinit's time in the same
round, which cancels most of a shared machine's background load (printed with the load average).
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np

from benchmarks._harness import Timing, bg_of, fmt_s, machine, ratio, round_robin

SIZES = {False: dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                     intermediate_size=3072),
         True: dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4,
                    intermediate_size=1024)}  # fmt: skip


def _imports():
    """transformers (and torchvision, which it imports) next to a CPU torch; see tests."""
    import sys

    tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
    sys.path[:0] = [tests, os.path.join(tests, "interop")]
    from published import require_transformers  # noqa: PLC0415

    jax.config.update("jax_numpy_rank_promotion", "allow")  # the tests' conftest sets "raise"
    transformers = require_transformers()
    transformers.logging.set_verbosity_error()  # the converter's "all weights were used" notes
    return transformers


def _same(a, b, what: str) -> None:
    fa, fb = jax.tree.leaves_with_path(a), dict(jax.tree.leaves_with_path(b))
    assert len(fa) == len(fb), (what, len(fa), len(fb))
    for path, x in fa:
        np.testing.assert_array_equal(np.asarray(x), np.asarray(fb[path]), err_msg=f"{what} {path}")


def _floor(bert) -> list[jax.Array]:
    """The data movement any torch -> Flax copy does, and nothing else: per tensor one DLPack
    import and one eager XLA op writing a new buffer (a transpose for Linear weights, else a copy).
    """
    import jax.numpy as jnp  # noqa: PLC0415

    linear = {f"{n}.weight" for n, m in bert.named_modules() if type(m).__name__ == "Linear"}
    return [jnp.transpose(x) if k in linear else jnp.array(x, copy=True)
            for k, t in bert.state_dict().items() for x in [jax.dlpack.from_dlpack(t.detach())]]  # fmt: skip


def main(quick: bool = False, rounds: int | None = None) -> dict[str, Timing]:
    T = _imports()
    from transformers.modeling_flax_pytorch_utils import (
        convert_pytorch_state_dict_to_flax,
        load_flax_weights_in_pytorch_model,
    )

    from jinit.interop import load_torch, params_from_torch

    rounds = rounds or (3 if quick else 5)
    cfg = T.BertConfig(**SIZES[quick])
    flax_model = T.FlaxBertModel(cfg, seed=0)
    params, source = flax_model.params, flax_model.module
    bert = T.BertModel(cfg).eval()  # the torch -> Flax source
    into = {k: T.BertModel(cfg).eval() for k in ("copy", "share", "hf")}  # Flax -> torch targets
    n = sum(p.numel() for p in bert.parameters())

    def hf_to_torch():
        return load_flax_weights_in_pytorch_model(into["hf"], params)

    cases = {
        "flax->torch jinit copy": lambda: load_torch(into["copy"], params, source=source),
        "flax->torch jinit share (zero-copy)": lambda: load_torch(into["share"], params, "share",
                                                                  source=source),
        "flax->torch HF converter": hf_to_torch,
        "torch->flax jinit copy": lambda: params_from_torch(bert, params, source=source),
        "torch->flax jinit share (zero-copy)": lambda: params_from_torch(bert, params, "share",
                                                                         source=source),
        "torch->flax HF converter": lambda: convert_pytorch_state_dict_to_flax(bert.state_dict(),
                                                                               flax_model),
        "torch->flax floor (1 XLA op a leaf)": lambda: _floor(bert),
    }
    # untimed check: jinit's tensors are HF's tensors, both directions
    as_np = lambda m: {k: v.numpy() for k, v in m.state_dict().items()}  # noqa: E731
    hf_to_torch()
    for mode in ("copy", "share"):
        load_torch(into[mode], params, mode, source=source)
        _same(as_np(into[mode]), as_np(into["hf"]), f"flax->torch {mode}")
    _same(params_from_torch(bert, params, source=source),
          convert_pytorch_state_dict_to_flax(bert.state_dict(), flax_model), "torch->flax")  # fmt: skip

    load = os.getloadavg()
    t = round_robin(cases, rounds)
    print(f"Port time, HF BERT {cfg.num_hidden_layers}x{cfg.hidden_size} ({n / 1e6:.0f}M params), "
          f"{rounds} rounds; {machine()}")  # fmt: skip
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"background busy cores during the calls (median): {bg_of(t):.2f}")  # fmt: skip
    print(f"{'case':38s} {'seconds median (min-max)':28s} x HF (same-run ratio)")
    for name, timing in t.items():
        hf = t[name.split(" ")[0] + " HF converter"]
        x = "" if timing is hf else f"{ratio(timing, hf):.2f}"
        print(f"{name:38s} {fmt_s(timing):28s} {x}")
    return t


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m benchmarks.port", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a 4-layer, hidden-256 BERT, 3 rounds")
    p.add_argument("--rounds", type=int, default=None)
    a = p.parse_args()
    main(a.quick, a.rounds)
