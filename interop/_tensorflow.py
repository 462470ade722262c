"""TensorFlow adapter: JAX arrays <-> tf.Tensor / tf.Variable through DLPack.

TF accepts only compact row-major, 64-byte-aligned DLPack buffers; a JAX array with a
non-row-major layout is made contiguous first, and the copy is reported. TF tensors are
immutable and ``tf.Variable`` updates copy on write, so a TF-side write never lands in a JAX
buffer; "share" mode is therefore safe with TF.

Internal API (used by ``interop/_layers.py``):
``import_tensorflow()``, ``export_array(x, mode, *, path, cast, variable)``,
``import_array(t, mode, *, path, allow_narrowing, cast)``, ``import_array_with_record(...)``.
Public API: ``to_tensorflow``, ``from_tensorflow``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax

from jinit._errors import BackendUnavailableError
from jinit.interop._dlpack import (
    ALL_DTYPES,
    Adapter,
    CastMap,
    ExportRecord,
    capsule_data_ptr,
    export_leaf,
    export_tree,
    import_leaf,
    import_tree,
)

INSTALL = "pip install tensorflow-cpu  (or tensorflow for GPU builds)"


@functools.cache
def import_tensorflow() -> Any:
    """Returns the ``tensorflow`` module, or raises BackendUnavailableError with install steps."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except Exception as e:  # noqa: BLE001 - a broken install raises more than ImportError
        raise BackendUnavailableError(
            f"jinit.interop needs TensorFlow for this call, but importing tensorflow failed "
            f"({e!r}). Install it: {INSTALL}"
        ) from e
    return tf


class TensorFlowAdapter(Adapter):
    name = "tensorflow"
    dtypes = frozenset(ALL_DTYPES)
    compact_only = True

    def module(self) -> Any:
        return import_tensorflow()

    @functools.cached_property
    def _tf(self) -> Any:
        return import_tensorflow()

    @functools.cached_property
    def _dlpack(self) -> Any:
        return self._tf.experimental.dlpack

    def from_capsule(self, capsule: Any) -> Any:
        return self._dlpack.from_dlpack(capsule)

    def clone(self, t: Any) -> Any:
        # tf.identity would alias; DeepCopy writes a new buffer.
        return self._tf.raw_ops.DeepCopy(x=t)

    def wrap(self, t: Any) -> Any:
        return self._tf.Variable(t, trainable=t.dtype.is_floating or t.dtype.is_complex)

    @functools.cached_property
    def _eager(self) -> type:
        return type(self._tf.constant(0))

    def data_ptr(self, t: Any) -> int:
        if type(t) is not self._eager and isinstance(t, self._tf.Variable):
            t = t.value()
        return capsule_data_ptr(self._dlpack.to_dlpack(t))

    def is_tensor(self, obj: Any) -> bool:
        return isinstance(obj, self._tf.Tensor | self._tf.Variable)

    def dtype_name(self, t: Any) -> str:
        return t.dtype.name

    def prepare(self, t: Any) -> tuple[Any, str]:
        if isinstance(t, self._tf.Variable):
            t = t.value()  # the variable's current buffer (zero-copy; later assigns copy on write)
        return t, ""

    def host_capsule(self, t: Any) -> Any | None:
        return self._dlpack.to_dlpack(t) if t.device.endswith("CPU:0") else None

    def cast(self, t: Any, dtype: str) -> Any:
        return self._tf.cast(t, dtype)

    def minmax(self, t: Any) -> tuple[float, float]:
        tf = self._tf
        if int(tf.size(t)) == 0:
            return 0, 0
        return tf.reduce_min(t).numpy().item(), tf.reduce_max(t).numpy().item()


ADAPTER = TensorFlowAdapter()


def export_array(
    x: jax.Array,
    mode: str = "copy",
    *,
    path: str = "",
    cast: CastMap | None = None,
    variable: bool = False,
) -> tuple[Any, ExportRecord]:
    """Exports one JAX array as a tf.Tensor (or tf.Variable) on the same device.

    Args:
      x: a single-device jax.Array.
      mode: "copy", "move" or "share" (see ``to_tensorflow``). Never deletes ``x``.
      path: the leaf's path, for records and error messages.
      cast: opt-in dtype conversions (integer casts range-checked).
      variable: return a ``tf.Variable`` (it aliases the buffer until its first update).

    Returns:
      ``(tensor_or_variable, ExportRecord)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import _tensorflow
      >>> t, rec = _tensorflow.export_array(jnp.arange(3.0), "share")
      >>> t.numpy().tolist(), rec.zero_copy
      ([0.0, 1.0, 2.0], True)
    """
    return export_leaf(ADAPTER, x, mode, path=path, cast=cast, wrap=variable)


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
    """Imports one tf.Tensor or tf.Variable into JAX on the same device.

    Args:
      t: a tf.Tensor or tf.Variable (its current value).
      mode: "copy" (default) or "share" (zero-copy; safe, since TF never writes in place).
      path: the leaf's path, for records and error messages.
      allow_narrowing: with x64 disabled, convert 64-bit tensors to 32 bits (range-checked).
      cast: opt-in dtype conversions done in TF before the transfer.

    Examples:
      >>> import tensorflow as tf
      >>> from jinit.interop import _tensorflow
      >>> _tensorflow.import_array(tf.constant([1, 2], tf.int32), "share").tolist()
      [1, 2]
    """
    return import_array_with_record(t, mode, path=path, allow_narrowing=allow_narrowing,
                                    cast=cast)[0]  # fmt: skip


def to_tensorflow(
    tree: Any,
    mode: str = "copy",
    *,
    variables: bool = False,
    report: bool = False,
    strict: bool = False,
    cast: CastMap | None = None,
) -> Any:
    """Converts every jax.Array in a tree to a tf.Tensor (or tf.Variable) on the same device.

    Args:
      tree: a pytree of single-device jax.Arrays; the structure and containers are kept.
      mode: "copy" (default), "move" (zero-copy, then the JAX arrays are deleted) or "share"
        (zero-copy alias; TF copies on its first write, so JAX values never change).
      variables: return ``tf.Variable`` leaves (trainable for float dtypes).
      report: also return an ExportReport.
      strict: in "move"/"share" mode, raise InteropError (changing nothing) if any leaf would
        have to be copied (e.g. a non-row-major layout).
      cast: opt-in dtype conversions.

    Returns:
      The converted tree, or ``(tree, ExportReport)`` if ``report``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import to_tensorflow
      >>> v = to_tensorflow({"kernel": jnp.ones((3, 2))}, mode="move", variables=True)
      >>> v["kernel"].shape, v["kernel"].trainable
      (TensorShape([3, 2]), True)
    """
    return export_tree(ADAPTER, tree, mode, report=report, strict=strict, cast=cast,
                       wrap=variables)  # fmt: skip


def from_tensorflow(
    tree: Any,
    mode: str = "copy",
    *,
    report: bool = False,
    strict: bool = False,
    allow_narrowing: bool = False,
    cast: CastMap | None = None,
) -> Any:
    """Converts every tf.Tensor / tf.Variable in a tree to a JAX array.

    Args:
      tree: a pytree of TF tensors or variables (e.g. ``{v.path: v for v in model.weights}``).
      mode: "copy" (default) or "share" (zero-copy).
      report: also return an ExportReport.
      strict: in "share" mode, raise InteropError if any leaf would have to be copied.
      allow_narrowing: with x64 disabled, convert 64-bit tensors to 32 bits (range-checked).
      cast: opt-in dtype conversions done in TF.

    Examples:
      >>> import tensorflow as tf
      >>> from jinit.interop import from_tensorflow
      >>> from_tensorflow({"w": tf.Variable(tf.ones((2, 2)))}, mode="share")["w"].shape
      (2, 2)
    """
    return import_tree(ADAPTER, tree, mode, report=report, strict=strict,
                       allow_narrowing=allow_narrowing, cast=cast)  # fmt: skip
