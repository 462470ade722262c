"""MXNet adapter: JAX arrays <-> mx.nd.NDArray through DLPack, and the numpy-2 import shim.

MXNet 1.9.1 (the last release) declares ``numpy<2`` and reads 20 names at import time that
numpy 2 removed (``np.PZERO``, ``np.Inf``, ``np.sometrue``, ``np.mirr``, ...).
:func:`import_mxnet` aliases exactly those names on ``numpy`` for the duration of
``import mxnet`` and removes them afterwards, leaving numpy as it found it.
Names numpy already has (e.g. set by the user) are left alone.

MXNet 1.9.1 also breaks on numpy scalar types in shapes under numpy 2, so everything jinit hands
it is a plain Python int (:func:`jinit.interop._dlpack.py_shape`).

MXNet facts this adapter relies on: only compact row-major
buffers; dtypes float16/32/64, bfloat16 (shown as the structured numpy dtype
``[('bfloat16', '<u2')]``), int8/32/64, uint8 over DLPack; bool exists in MXNet but crosses
DLPack as a 1-bit uint that neither side reads, so it goes through uint8 (copied, reported);
no ``__dlpack__`` method (a small wrapper hands its capsule to JAX); asynchronous engine (we
wait before and after every transfer).

Internal API (used by ``interop/_layers.py``):
``import_mxnet()``, ``export_array(x, mode, *, path, cast)``,
``import_array(t, mode, *, path, allow_narrowing, cast)``, ``import_array_with_record(...)``.
Public API: ``to_mxnet``, ``from_mxnet``.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jinit._errors import BackendUnavailableError
from jinit.interop._dlpack import (
    Adapter,
    CastMap,
    ExportRecord,
    export_leaf,
    export_tree,
    import_leaf,
    import_tree,
    to_capsule,
)

INSTALL = "pip install --no-deps mxnet==1.9.1  (--no-deps: it declares numpy<2; jinit shims the rest)"


def _removed(name: str):
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"numpy.{name} was removed from numpy; MXNet's mxnet.numpy.{name} is unavailable."
        )

    fn.__name__ = name
    return fn


def _numpy2_aliases() -> dict[str, Any]:
    """The 20 names MXNet 1.9.1 reads at import time that numpy 2 removed, with stand-ins.

    Found by importing MXNet under numpy 2.4 and adding the name each failure reported until the
    import succeeded. The financial functions (removed in numpy 1.20) become stubs that raise.
    """
    inf, nan = float("inf"), float("nan")
    return {
        "PZERO": 0.0, "NZERO": -0.0, "PINF": inf, "NINF": -inf, "Inf": inf, "NaN": nan,
        "NAN": nan, "product": np.prod, "sometrue": np.any, "alltrue": np.all,
        "round_": np.round, "in1d": np.isin,
        "trapz": getattr(np, "trapezoid", None) or _removed("trapz"),
        "msort": lambda a: np.sort(a, axis=0),
        **{n: _removed(n) for n in ("mirr", "npv", "pmt", "ppmt", "pv", "rate")},
    }  # fmt: skip


@functools.cache
def _import_mxnet_once() -> Any:
    if sys.modules.get("mxnet") is not None:  # already imported (by the user): reuse it
        return sys.modules["mxnet"]
    added = []
    for name, value in _numpy2_aliases().items():
        if name not in np.__dict__:
            setattr(np, name, value)
            added.append(name)
    try:
        import mxnet
    except Exception as e:  # noqa: BLE001 - mxnet raises many kinds under a new numpy
        for k in [k for k in sys.modules if k == "mxnet" or k.startswith("mxnet.")]:
            del sys.modules[k]  # a half-imported mxnet must not be picked up later
        raise BackendUnavailableError(
            f"jinit.interop needs MXNet for this call, but importing mxnet failed ({e!r}). "
            f"Install it: {INSTALL}"
        ) from e
    finally:
        for name in added:
            delattr(np, name)
    return mxnet


def import_mxnet() -> Any:
    """Imports MXNet 1.9.1 under numpy 2 and returns the module.

    The removed numpy names MXNet reads at import are aliased only while ``import mxnet`` runs
    and removed afterwards (numpy's attributes are the same before and after). An MXNet that is
    already imported is returned as is.

    Raises:
      BackendUnavailableError: MXNet is missing or cannot be imported; the message says how to
        install it (``pip install --no-deps mxnet==1.9.1``).

    Examples:
      >>> from jinit.interop._mxnet import import_mxnet
      >>> import_mxnet().__version__
      '1.9.1'
    """
    return _import_mxnet_once()


_BF16 = "bfloat16"
_BOOL_REASON = "bool crosses DLPack as a 1-bit uint that MXNet/JAX cannot read: sent as uint8 (copy)"
# DLPack device type (kDLCPU=1, kDLCUDA=2, kDLCUDAHost=3) for an MXNet context.
_DL_DEVICE = {"cpu": 1, "gpu": 2, "cpu_pinned": 3}


class _Capsule:
    """``__dlpack__``/``__dlpack_device__`` around an MXNet capsule (JAX rejects bare capsules)."""

    def __init__(self, capsule: Any, device: tuple[int, int]) -> None:
        self.capsule, self.device = capsule, device

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device


class MXNetAdapter(Adapter):
    name = "mxnet"
    dtypes = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int32", "int64",
                        "uint8", "bool"})  # fmt: skip
    compact_only = True
    cast_hints = {"int16": "int32", "uint16": "int32", "uint32": "int32", "uint64": "int64",
                  "complex64": "float32"}  # fmt: skip

    def module(self) -> Any:
        return import_mxnet()

    @functools.cached_property
    def _mx(self) -> Any:
        return import_mxnet()

    @functools.cached_property
    def _get_data(self) -> Any:
        """``data_ptr``'s C call, bound once: (handle) -> address."""
        base = self._mx.base
        fn, check = base._LIB.MXNDArrayGetData, base.check_call

        def get(handle: Any) -> int:
            ptr = ctypes.c_void_p()
            check(fn(handle, ctypes.byref(ptr)))
            return ptr.value or 0

        return get

    def from_capsule(self, capsule: Any) -> Any:
        return self._mx.nd.from_dlpack(capsule)

    def from_jax(self, x: jax.Array, view: bool = True) -> tuple[Any, str]:
        if x.dtype == _BOOL:  # crosses DLPack as uint8, then MXNet makes its own bool copy
            m = self.from_capsule(to_capsule(x.astype(jnp.uint8))).astype("bool")
            m.wait_to_read()
            return m, _BOOL_REASON
        return self.from_capsule(to_capsule(x, view)), ""

    def clone(self, t: Any) -> Any:
        c = t.copy()
        c.wait_to_read()
        return c

    def data_ptr(self, t: Any) -> int:
        t.wait_to_read()
        return self._get_data(t.handle)

    def is_tensor(self, obj: Any) -> bool:
        return isinstance(obj, self._mx.nd.NDArray)

    def dtype_name(self, t: Any) -> str:
        return _dtype_name(t.dtype)

    def shape(self, t: Any) -> tuple[int, ...]:
        return tuple(int(d) for d in t.shape)

    def prepare(self, t: Any) -> tuple[Any, str]:
        if getattr(t, "stype", "default") != "default":
            return t.tostype("default"), f"{t.stype} NDArray made dense (copy)"
        return t, ""

    def host_capsule(self, t: Any) -> Any | None:
        return t.to_dlpack_for_read() if t.context.device_type == "cpu" else None

    def public_to_jax(self, t: Any) -> jax.Array:
        dev = t.context
        return jnp.from_dlpack(_Capsule(t.to_dlpack_for_read(),
                                        (_DL_DEVICE[dev.device_type], dev.device_id)))  # fmt: skip

    def to_jax(self, t: Any) -> tuple[jax.Array, str]:
        if self.dtype_name(t) == "bool":
            return super().to_jax(t.astype("uint8"))[0].astype(jnp.bool_), _BOOL_REASON
        return super().to_jax(t)

    def cast(self, t: Any, dtype: str) -> Any:
        c = t.astype(dtype)
        c.wait_to_read()
        return c

    def minmax(self, t: Any) -> tuple[float, float]:
        if t.size == 0:
            return 0, 0
        return t.min().asscalar().item(), t.max().asscalar().item()


_BOOL = np.dtype("bool")


@functools.lru_cache(maxsize=64)
def _dtype_name(dtype: Any) -> str:
    dt = np.dtype(dtype)
    return _BF16 if dt.names == (_BF16,) else dt.name


ADAPTER = MXNetAdapter()


def export_array(
    x: jax.Array,
    mode: str = "copy",
    *,
    path: str = "",
    cast: CastMap | None = None,
) -> tuple[Any, ExportRecord]:
    """Exports one JAX array as an MXNet NDArray on the same device.

    Args:
      x: a single-device jax.Array; bf16 arrives as MXNet's structured bfloat16 dtype.
      mode: "copy", "move" or "share" (see ``to_mxnet``). Never deletes ``x``.
      path: the leaf's path, for records and error messages.
      cast: opt-in dtype conversions, e.g. ``{"int16": "int32"}`` (range-checked).

    Returns:
      ``(NDArray, ExportRecord)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import _mxnet
      >>> m, rec = _mxnet.export_array(jnp.arange(3.0), "share")
      >>> m.asnumpy().tolist(), rec.zero_copy
      ([0.0, 1.0, 2.0], True)
    """
    return export_leaf(ADAPTER, x, mode, path=path, cast=cast)


def import_array_with_record(
    t: Any,
    mode: str = "copy",
    *,
    path: str = "",
    allow_narrowing: bool = False,
    cast: CastMap | None = None,
) -> tuple[jax.Array, ExportRecord]:
    """Like :func:`import_array`, also returning the leaf's ExportRecord."""
    return import_leaf(ADAPTER, t, mode, path=path, allow_narrowing=allow_narrowing, cast=cast)


def import_array(
    t: Any,
    mode: str = "copy",
    *,
    path: str = "",
    allow_narrowing: bool = False,
    cast: CastMap | None = None,
) -> jax.Array:
    """Imports one MXNet NDArray into JAX on the same device (waits for pending MXNet writes).

    Args:
      t: an ``mx.nd.NDArray`` (bf16 structured dtype and bool handled).
      mode: "copy" (default) or "share" (zero-copy: later MXNet writes change the JAX array;
        call ``mx.nd.waitall()`` before reading it in JAX).
      path: the leaf's path, for records and error messages.
      allow_narrowing: with x64 disabled, convert 64-bit arrays to 32 bits (range-checked).
      cast: opt-in dtype conversions done in MXNet.

    Examples:
      >>> from jinit.interop import _mxnet
      >>> mx = _mxnet.import_mxnet()
      >>> _mxnet.import_array(mx.nd.array([1, 2], dtype="int32")).tolist()
      [1, 2]
    """
    return import_array_with_record(t, mode, path=path, allow_narrowing=allow_narrowing,
                                    cast=cast)[0]  # fmt: skip


def to_mxnet(
    tree: Any,
    mode: str = "copy",
    *,
    report: bool = False,
    strict: bool = False,
    cast: CastMap | None = None,
) -> Any:
    """Converts every jax.Array in a tree to an MXNet NDArray on the same device.

    Args:
      tree: a pytree of single-device jax.Arrays; the structure and containers are kept.
      mode: "copy" (default), "move" (zero-copy, then the JAX arrays are deleted) or "share"
        (zero-copy alias: MXNet writes, Gluon ``Trainer.step`` included, land in the JAX arrays).
      report: also return an ExportReport.
      strict: in "move"/"share" mode, raise InteropError (changing nothing) if any leaf would
        have to be copied (non-row-major layout, bool, ``cast=``).
      cast: opt-in dtype conversions for dtypes MXNet lacks, e.g. ``{"int16": "int32"}``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import to_mxnet
      >>> m = to_mxnet({"w": jnp.ones((2, 3), jnp.bfloat16)}, mode="move")
      >>> m["w"].shape, m["w"].astype("float32").sum().asscalar().item()
      ((2, 3), 6.0)
    """
    return export_tree(ADAPTER, tree, mode, report=report, strict=strict, cast=cast)


def from_mxnet(
    tree: Any,
    mode: str = "copy",
    *,
    report: bool = False,
    strict: bool = False,
    allow_narrowing: bool = False,
    cast: CastMap | None = None,
) -> Any:
    """Converts every MXNet NDArray in a tree to a JAX array.

    Args:
      tree: a pytree of NDArrays (e.g. ``{k: p.data() for k, p in block.collect_params().items()}``).
      mode: "copy" (default) or "share" (zero-copy).
      report: also return an ExportReport.
      strict: in "share" mode, raise InteropError if any leaf would have to be copied.
      allow_narrowing: with x64 disabled, convert 64-bit arrays to 32 bits (range-checked).
      cast: opt-in dtype conversions done in MXNet.

    Examples:
      >>> from jinit.interop import from_mxnet
      >>> from jinit.interop._mxnet import import_mxnet
      >>> mx = import_mxnet()
      >>> from_mxnet({"b": mx.nd.zeros((4,))}, mode="share")["b"].shape
      (4,)
    """
    return import_tree(ADAPTER, tree, mode, report=report, strict=strict,
                       allow_narrowing=allow_narrowing, cast=cast)  # fmt: skip
