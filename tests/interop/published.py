"""Helpers for tests on published models (HF transformers twins, torchvision).

``require_torchvision`` / ``require_transformers`` import them next to a CPU-only torch; the
tree helpers keep creation order (``jax.tree.map`` would sort dict keys) or sort on purpose.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from conftest import require

# Keeps the operator schemas declared below alive (a torch.library.Library drops its
# registrations when collected).
_TORCHVISION_SCHEMAS: list[Any] = []


def require_torchvision():
    """Imports torchvision, also where its wheel is a CUDA build next to a CPU-only torch.

    Then the wheel's C++ ops (``torchvision._C``) cannot load. torchvision tolerates that,
    except for two fake-kernel registrations (``nms``, ``qnms``) that fail with "operator
    torchvision::nms does not exist". Declaring those two schemas first lets the pure-Python
    parts (models, transforms) import; the C++ ops stay unavailable and raise if called.
    transformers imports torchvision when it is installed, so this comes first there too.
    """
    torch = require("torch")
    try:
        import torchvision

        return torchvision
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_SCHEMAS.append(lib)
    return require("torchvision")


def require_transformers():
    """Imports transformers (after torchvision, see :func:`require_torchvision`)."""
    require_torchvision()
    return require("transformers")


def map_ordered(f: Callable[[tuple[str, ...], Any], Any], tree: Mapping, path=()) -> dict:
    """``f(path, leaf)`` over a nested dict, keeping each dict's key order."""
    return {k: map_ordered(f, v, (*path, k)) if isinstance(v, Mapping) else f((*path, k), v)
            for k, v in tree.items()}  # fmt: skip


def resorted(tree: Mapping) -> dict:
    """The tree with every dict's keys sorted, as ``jax.tree.map`` or a checkpoint returns it."""
    return {k: resorted(v) if isinstance(v, Mapping) else v for k, v in sorted(tree.items())}


def jitter(tree: Mapping, seed: int, scale: float = 0.1) -> dict:
    """Adds N(0, scale) noise to every float leaf (creation order kept).

    Freshly initialised models have all-ones norm scales and zero biases, so a load that
    swapped two of them would go unseen; after this every leaf is distinct.
    """
    rng = np.random.default_rng(seed)

    def one(path, a):
        if not jnp.issubdtype(a.dtype, jnp.floating):
            return a
        if path[-1] == "var":  # BatchNorm running variance: keep it positive
            return jnp.asarray(a * rng.uniform(0.5, 2.0, a.shape), a.dtype)
        return jnp.asarray(a + scale * rng.standard_normal(a.shape), a.dtype)

    return map_ordered(one, tree)


def jitter_torch(module, seed: int, scale: float = 0.1) -> None:
    """:func:`jitter` for a torch module's state, in place.

    Only what is state: trainable parameters and persistent buffers (BatchNorm statistics),
    not constants such as sinusoidal position tables or rotary frequencies.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            frozen = isinstance(t, torch.nn.Parameter) and not t.requires_grad
            if frozen or not t.is_floating_point() or t.ndim == 0:
                continue
            if name.endswith("running_var"):
                t.mul_(0.5 + 1.5 * torch.rand(t.shape, generator=g))
            else:
                t.add_(scale * torch.randn(t.shape, generator=g))


def jitter_keras(model, seed: int, scale: float = 0.1) -> None:
    """:func:`jitter` for a Keras model's trainable weights, in place."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        a = np.asarray(w.numpy())
        w.assign((a + scale * rng.standard_normal(a.shape)).astype(a.dtype))


def rel_diff(out: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]) -> float:
    """max |out - ref| / max |ref|, the worst over the named outputs."""
    return max(float(np.abs(np.asarray(out[k]) - ref[k]).max() / np.abs(ref[k]).max()) for k in ref)
