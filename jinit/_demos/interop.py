"""The textbook MLP initialized in JAX, ported to PyTorch, Keras and MXNet Gluon.

``Dense(8) -> relu -> Dense(1)`` on a ``(2, 4)`` input: the Flax variables are loaded into an
equivalent model of each framework with ``jinit.interop.load_*`` (layouts converted by the
Dense rule, each parameter reported), and the four outputs on the same input are printed side
by side with their max difference from JAX's.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator

import jax
import numpy as np

IN, HIDDEN, OUT = 4, 8, 1


def _flax_mlp():
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(HIDDEN)(x))
            return nn.Dense(OUT)(h)

    return MLP()


#: How each framework is installed, for the line printed when it is missing.
INSTALL = {"PyTorch": "pip install 'jinit[torch]'",
           "Keras (TF)": "pip install 'jinit[tensorflow]'",
           "MXNet Gluon": "pip install --no-deps mxnet==1.9.1"}


@contextlib.contextmanager
def quiet_framework() -> Iterator[None]:
    """Silences a framework's log noise while it is imported and used, so the tour reads cleanly.

    TensorFlow's C++ logging (absl, oneDNN notices) ignores ``TF_CPP_MIN_LOG_LEVEL`` in recent
    releases and writes straight to file descriptor 2, so stderr is pointed at /dev/null at
    the descriptor level for the duration. Python warnings (MXNet's deprecations) and absl's
    Python logger are silenced too. Exceptions still propagate with their messages.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
            _quiet_absl()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_absl() -> None:
    """Keeps absl's Python logger (used by TensorFlow and Keras) at errors only, if loaded."""
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.set_verbosity(absl_logging.ERROR)


def _torch(variables, x):
    import torch

    from jinit.interop import load_torch

    m = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT))
    report = load_torch(m, variables, mode="share")
    with torch.no_grad():
        return m(torch.from_numpy(np.array(x))).numpy(), report


def _keras(variables, x):
    import keras

    from jinit.interop import load_keras

    layers = keras.layers
    m = keras.Sequential([keras.Input((IN,)), layers.Dense(HIDDEN, activation="relu"), layers.Dense(OUT)])
    report = load_keras(m, variables, mode="share")
    return np.asarray(m(np.array(x))), report


def _gluon(variables, x):
    from jinit.interop import load_gluon
    from jinit.interop._mxnet import import_mxnet

    mx = import_mxnet()
    nn = mx.gluon.nn
    m = nn.HybridSequential()
    m.add(nn.Dense(HIDDEN, activation="relu", in_units=IN), nn.Dense(OUT, in_units=HIDDEN))
    m.initialize()
    report = load_gluon(m, variables, mode="share")
    return m(mx.nd.array(np.array(x))).asnumpy(), report


FRAMEWORKS: dict[str, Callable] = {"PyTorch": _torch, "Keras (TF)": _keras, "MXNet Gluon": _gluon}


def run() -> None:
    model = _flax_mlp()
    x = jax.random.normal(jax.random.key(1), (2, IN))
    variables = model.init(jax.random.key(0), x)
    ref = np.asarray(model.apply(variables, x))
    outputs = {"JAX / Flax": ref}
    for name, port in FRAMEWORKS.items():
        try:
            with quiet_framework():
                out, report = port(variables, x)
        except ImportError as e:  # a framework that is not installed is skipped, not fatal
            print(f"{name}: skipped, not installed ({e}); `make demo` or {INSTALL[name]} "
                  "installs it")
            continue
        outputs[name] = out
        print(f"{name}: {len(report.params)} parameters loaded, {report.zero_copy} zero-copy")
        for p in report.params:
            print(f"    {'+'.join(p.source):<22} -> {p.target:<16} {p.transform:<34} "
                  f"{'zero-copy' if p.zero_copy else 'copied'}")
    print()
    print("output on the same (2, 4) input:")
    print("  " + "".join(f"{n:>16}" for n in outputs))
    for i in range(ref.shape[0]):
        print("  " + "".join(f"{float(o[i, 0]):>16.8f}" for o in outputs.values()))
    print("  " + "".join(f"{'max |diff|':>16}" if n == "JAX / Flax" else f"{np.abs(o - ref).max():>16.2e}"
                         for n, o in outputs.items()))
