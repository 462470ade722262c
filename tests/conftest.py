"""Shared test configuration: strict JAX modes, a persistent compile cache, framework guards."""

from __future__ import annotations

import importlib
import os
import pathlib

import jax
import pytest

_CACHE = pathlib.Path(__file__).resolve().parent.parent / ".jax_cache"
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
jax.config.update("jax_numpy_rank_promotion", "raise")


def require(module: str):
    """Imports a framework for a test, or skips the test with the import error printed.

    CI installs every framework, so nothing skips there; a broken install raises more than
    ImportError, hence the broad except.
    """
    try:
        if module == "mxnet":
            from jinit.interop._mxnet import import_mxnet

            return import_mxnet()
        return importlib.import_module(module)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"{module} unavailable: {e!r}")


@pytest.fixture(params=["eager", "jit"])
def variant(request):
    """Runs an initializer eagerly or under ``jax.jit`` (shape and dtype static)."""
    if request.param == "eager":
        return lambda f: f
    return lambda f: jax.jit(f, static_argnums=(1, 2))


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
