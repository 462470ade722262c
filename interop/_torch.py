"""PyTorch adapter: JAX arrays <-> torch tensors through DLPack.

Internal API (used by ``interop/_layers.py``):
``import_torch()``, ``export_array(x, mode, *, path, cast, parameter)``,
``import_array(t, mode, *, path, allow_narrowing, cast)``, ``import_array_with_record(...)``.
Public API: ``to_torch``, ``from_torch`` (re-exported by ``jinit.interop``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax

from jinit._errors import BackendUnavailableError
from jinit.interop._dlpack import (
    ALL_DTYPES,
    Adapter,
    CastMap,
    ExportRecord,
    export_leaf,
    export_tree,
    import_leaf,
    import_tree,
)

INSTALL = "pip install torch  (CPU wheel: pip install torch --index-url https://download.pytorch.org/whl/cpu)"


@functools.cache
def import_torch() -> Any:
    """Returns the ``torch`` module, or raises BackendUnavailableError saying how to install it."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - a broken install raises more than ImportError
        raise BackendUnavailableError(
            f"jinit.interop needs PyTorch for this call, but importing torch failed ({e!r}). "
            f"Install it: {INSTALL}"
        ) from e
    return torch


class TorchAdapter(Adapter):
    name = "torch"
    dtypes = frozenset(ALL_DTYPES) | {"float8_e4m3fn", "float8_e5m2"}
    releases_at_once = True  # a tensor's DLPack deleter runs when its storage is freed

    def module(self) -> Any:
        return import_torch()

    @functools.cached_property
    def _torch(self) -> Any:
        return import_torch()

    @functools.cached_property
    def _pinnable(self) -> bool:
        """Whether host tensors can be pinned (CUDA builds): pinned ones take JAX's public path."""
        return bool(self._torch.cuda.is_available())

    @functools.cached_property
    def from_capsule(self) -> Any:  # torch.utils.dlpack.from_dlpack, looked up once
        return self._torch.utils.dlpack.from_dlpack

    def clone(self, t: Any) -> Any:
        return t.clone()

    def wrap(self, t: Any) -> Any:
        return self._torch.nn.Parameter(t, requires_grad=t.is_floating_point() or t.is_complex())

    def data_ptr(self, t: Any) -> int:
        return t.data_ptr()

    def is_tensor(self, obj: Any) -> bool:
        return isinstance(obj, self._torch.Tensor)

    def dtype_name(self, t: Any) -> str:
        return _dtype_name(t.dtype)

    def shape(self, t: Any) -> tuple[int, ...]:
        return tuple(t.shape)

    def prepare(self, t: Any) -> tuple[Any, str]:
        t = t.detach()  # a view: DLPack refuses tensors that require grad
        if not (t.is_conj() or t.is_neg() or t.layout != self._torch.strided) and (
            t.is_contiguous() or _dense_strides(tuple(t.shape), t.stride())
        ):
            return t, ""  # the common case: nothing to resolve
        reasons = []
        if t.is_conj():
            t = t.resolve_conj()
            reasons.append("conjugate bit resolved (copy)")
        if t.is_neg():
            t = t.resolve_neg()
            reasons.append("negative bit resolved (copy)")
        if t.layout != self._torch.strided:
            t = t.to_dense()
            reasons.append(f"{t.layout} tensor made dense (copy)")
        if not _dense_strides(tuple(t.shape), tuple(t.stride())):
            t = t.contiguous()
            reasons.append(f"strides {tuple(t.stride())} are not a permutation of a dense "
                           "layout (JAX refuses gaps/broadcasts): made contiguous (copy)")
        return t, "; ".join(reasons)

    def host_capsule(self, t: Any) -> Any | None:
        if not t.is_cpu or (self._pinnable and t.is_pinned()):
            return None
        return self._torch.utils.dlpack.to_dlpack(t)

    def cast(self, t: Any, dtype: str) -> Any:
        return t.to(getattr(self._torch, dtype))

    def minmax(self, t: Any) -> tuple[float, float]:
        if t.numel() == 0:
            return 0, 0
        t = t.detach()
        return t.min().item(), t.max().item()


@functools.lru_cache(maxsize=64)
def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _dense_strides(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """True if the strides are some permutation of a gap-free (dense) row-major layout."""
    if 0 in shape:
        return True
    dims = sorted((st, n) for n, st in zip(shape, strides, strict=True) if n != 1)
    expected = 1
    for st, n in dims:
        if st != expected:
            return False
        expected *= n
    return True


ADAPTER = TorchAdapter()


def export_array(
    x: jax.Array,
    mode: str = "copy",
    *,
    path: str = "",
    cast: CastMap | None = None,
    parameter: bool = False,
) -> tuple[Any, ExportRecord]:
    """Exports one JAX array as a torch tensor on the same device.

    Args:
      x: a single-device jax.Array.
      mode: "copy" (fresh buffer), "move" or "share" (zero-copy alias). This function never
        deletes ``x``; in "move" mode the caller deletes it once everything succeeded.
      path: the leaf's path, for records and error messages.
      cast: opt-in dtype conversions, e.g. ``{"float64": "float32"}``; integer casts are
        range-checked.
      parameter: return a ``torch.nn.Parameter`` (zero-copy; ``requires_grad`` for floats).

    Returns:
      ``(tensor, ExportRecord)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import _torch
      >>> t, rec = _torch.export_array(jnp.arange(3.0), "share")
      >>> t.tolist(), rec.zero_copy
      ([0.0, 1.0, 2.0], True)
    """
    return export_leaf(ADAPTER, x, mode, path=path, cast=cast, wrap=parameter)


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
    """Imports one torch tensor (or Parameter) into JAX on the same device.

    Args:
      t: a torch tensor; ``requires_grad`` is fine (detached, zero-copy).
      mode: "copy" (default: the JAX array owns a new buffer) or "share" (zero-copy alias:
        later torch writes show up in the "immutable" JAX array).
      path: the leaf's path, for records and error messages.
      allow_narrowing: with x64 disabled, convert 64-bit tensors to 32 bits (integers are
        range-checked) instead of raising.
      cast: opt-in dtype conversions done in torch before the transfer.

    Examples:
      >>> import torch
      >>> from jinit.interop import _torch
      >>> _torch.import_array(torch.arange(3, dtype=torch.int32)).tolist()
      [0, 1, 2]
    """
    return import_array_with_record(t, mode, path=path, allow_narrowing=allow_narrowing,
                                    cast=cast)[0]  # fmt: skip


def to_torch(
    tree: Any,
    mode: str = "copy",
    *,
    parameters: bool = False,
    report: bool = False,
    strict: bool = False,
    cast: CastMap | None = None,
) -> Any:
    """Converts every jax.Array in a tree to a torch tensor on the same device.

    The result has the same structure and container types (a ``FrozenDict`` stays one).

    Args:
      tree: a pytree of single-device jax.Arrays (e.g. Flax variables).
      mode: "copy" (default; the JAX arrays are never aliased by a mutable tensor), "move"
        (zero-copy, then the JAX arrays are deleted, only after every leaf succeeded) or
        "share" (zero-copy alias: torch writes land in the JAX arrays; jitted closures keep
        their old values; JAX donation is silently declined while the alias lives).
      parameters: return ``torch.nn.Parameter`` leaves instead of tensors.
      report: also return an ExportReport (per leaf: zero-copy or copied, and why).
      strict: in "move"/"share" mode, raise InteropError (changing nothing) if any leaf would
        have to be copied.
      cast: opt-in dtype conversions, e.g. ``{"float8_e4m3fn": "float32"}``.

    Returns:
      The converted tree, or ``(tree, ExportReport)`` if ``report``.

    Raises:
      DTypeError: a leaf is not a jax.Array, or a cast would wrap around.
      InteropError: bad mode, a deleted or multi-device array, a DLPack failure, strict failure.
      BackendUnavailableError: torch cannot be imported.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import to_torch
      >>> params = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
      >>> t = to_torch(params)
      >>> t["dense"]["kernel"].shape, t["dense"]["bias"].dtype
      (torch.Size([3, 2]), torch.float32)
      >>> t, rep = to_torch(params, mode="move", parameters=True, report=True)
      >>> type(t["dense"]["kernel"]).__name__, rep.all_zero_copy, params["dense"]["bias"].is_deleted()
      ('Parameter', True, True)
    """
    return export_tree(ADAPTER, tree, mode, report=report, strict=strict, cast=cast,
                       wrap=parameters)  # fmt: skip


def from_torch(
    tree: Any,
    mode: str = "copy",
    *,
    report: bool = False,
    strict: bool = False,
    allow_narrowing: bool = False,
    cast: CastMap | None = None,
) -> Any:
    """Converts every torch tensor in a tree (e.g. a ``state_dict()``) to a JAX array.

    Args:
      tree: a pytree whose leaves are torch tensors (Parameters and buffers included).
      mode: "copy" (default: JAX owns new buffers) or "share" (zero-copy aliases; a later
        in-place torch write changes the JAX array).
      report: also return an ExportReport.
      strict: in "share" mode, raise InteropError if any leaf would have to be copied.
      allow_narrowing: with x64 disabled, convert float64/int64 tensors to 32 bits (integers
        range-checked) instead of raising DTypeError.
      cast: opt-in dtype conversions done in torch, e.g. ``{"float64": "bfloat16"}``.

    Examples:
      >>> import torch
      >>> from jinit.interop import from_torch
      >>> sd = torch.nn.Linear(3, 2).state_dict()
      >>> {k: v.shape for k, v in from_torch(sd, mode="share").items()}
      {'weight': (2, 3), 'bias': (2,)}
    """
    return import_tree(ADAPTER, tree, mode, report=report, strict=strict,
                       allow_narrowing=allow_narrowing, cast=cast)  # fmt: skip
