"""Framework-neutral array transfer: ownership modes, dtype policy, tree traversal, reports.

Every export or import of one array goes through :func:`export_leaf` / :func:`import_leaf`,
parameterised by a small :class:`Adapter` that each framework module (``_torch``,
``_tensorflow``, ``_mxnet``) implements with a handful of primitives (DLPack in and out, data
pointer, clone, cast). Trees go through :func:`export_tree` / :func:`import_tree`.

Ownership modes:

* ``"copy"`` (default): the result owns a fresh buffer; the source is never aliased by a
  mutable tensor.
* ``"move"``: zero-copy through DLPack, then (after every leaf succeeded) the source JAX arrays
  are deleted, so no alias can be observed. Tied leaves (the same object twice) are exported once.
* ``"share"``: zero-copy alias. Hazard: a write on either side is visible on the other, JAX's
  "immutable" arrays included, and jitted closures keep the values they captured.

Every leaf gets an :class:`ExportRecord` saying whether it was zero-copy (checked by comparing
data pointers, not assumed) and, if not, why. Nothing falls back silently: dtypes a framework
cannot hold and 64->32-bit narrowing raise :class:`jinit.DTypeError` unless the caller opts in.

Speed (a few microseconds per leaf, independent of its size): the per-leaf path calls the C
entry points that ``x.__dlpack__()`` and ``jnp.from_dlpack`` end in, skipping their Python glue
(:func:`to_capsule`, :func:`capsule_to_jax`; each is checked once against the public call and
replaced by it if anything differs); a tree transfer keeps per-leaf outcomes as plain tuples,
and key paths become strings and records only when a report or an error needs them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import SingleDeviceSharding

from jinit._errors import DTypeError, InteropError
from jinit._paths import path_str

MODES = ("copy", "move", "share")
IMPORT_MODES = ("copy", "share")

#: 64-bit dtypes and what JAX narrows them to when x64 is disabled.
NARROWING = {"float64": "float32", "int64": "int32", "uint64": "uint32", "complex128": "complex64"}

#: Every dtype name that can appear in a jax.Array (x64 on), for error messages and tests.
ALL_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)  # fmt: skip

DTypeLike = Any
CastMap = Mapping[DTypeLike, DTypeLike]


# ----------------------------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class ExportRecord:
    """What happened to one leaf in an export (JAX -> framework) or import (framework -> JAX).

    Attributes:
      path: "/"-joined key path of the leaf ("" for a single array).
      framework: "torch", "tensorflow" or "mxnet".
      direction: "export" (JAX -> framework) or "import" (framework -> JAX).
      mode: "copy", "move" or "share".
      zero_copy: True iff the result shares the source's buffer (data pointers compared).
      reason: why the leaf was copied or how it was transferred, in words.
      shape: shape of the array.
      dtype: source dtype name.
      target_dtype: dtype name of the result.
      nbytes: size of the result in bytes.
      bytes_copied: bytes written into new buffers (0 when zero-copy).
      tied_to: path of the first occurrence when this leaf is the same object as an earlier one.
    """

    path: str
    framework: str
    direction: str
    mode: str
    zero_copy: bool
    reason: str
    shape: tuple[int, ...]
    dtype: str
    target_dtype: str
    nbytes: int
    bytes_copied: int
    tied_to: str | None = None


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """Per-leaf records of one tree transfer, in tree-flatten order.

    A report returned by ``to_*``/``from_*`` builds its records on first use; ``len``,
    ``all_zero_copy`` and ``bytes_copied`` do not need them.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import to_torch
      >>> tree, rep = to_torch({"w": jnp.ones((2, 3))}, mode="move", report=True)
      >>> rep.all_zero_copy, rep.bytes_copied, rep["w"].reason
      (True, 0, 'zero-copy DLPack alias; source JAX array deleted')
    """

    records: tuple[ExportRecord, ...]

    @classmethod
    def _lazy(cls, log: _Log) -> ExportReport:
        rep = object.__new__(cls)
        object.__setattr__(rep, "_log", log)
        return rep

    def __getattr__(self, name: str) -> Any:
        # Reached only when normal lookup fails: ``records`` of a report made by ``_lazy``.
        log = self.__dict__.get("_log")
        if name != "records" or log is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        records = log.records()
        object.__setattr__(self, "records", records)
        return records

    def __getstate__(self) -> dict[str, Any]:  # pickle/copy: the records, not the log
        return {"records": self.records}

    def _pending(self) -> _Log | None:
        """The log while the records are not built yet."""
        return None if "records" in self.__dict__ else self.__dict__.get("_log")

    def __len__(self) -> int:
        log = self._pending()
        return len(log.rows) if log is not None else len(self.records)

    def __iter__(self) -> Iterator[ExportRecord]:
        return iter(self.records)

    def __getitem__(self, path: str) -> ExportRecord:
        for r in self.records:
            if r.path == path:
                return r
        raise KeyError(f"no leaf {path!r} in this report; paths: {[r.path for r in self.records]}")

    @property
    def all_zero_copy(self) -> bool:
        """True iff every leaf was transferred without copying."""
        log = self._pending()
        if log is not None:
            return all(row[1] for row in log.rows)
        return all(r.zero_copy for r in self.records)

    @property
    def bytes_copied(self) -> int:
        """Total bytes written into new buffers."""
        log = self._pending()
        if log is not None:
            return sum(_row_bytes_copied(row) for row in log.rows)
        return sum(r.bytes_copied for r in self.records)

    @property
    def copied(self) -> tuple[ExportRecord, ...]:
        """The records of leaves that were copied."""
        return tuple(r for r in self.records if not r.zero_copy)

    def table(self) -> str:
        """A plain-text table: path, shape, dtype, zero-copy or copied, reason."""
        rows = [("path", "shape", "dtype", "zero-copy", "reason")] + [
            (r.path or "<leaf>", str(r.shape), f"{r.dtype}->{r.target_dtype}"
             if r.dtype != r.target_dtype else r.dtype, str(r.zero_copy), r.reason)
            for r in self.records
        ]  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
            for row in rows
        )

    def __str__(self) -> str:
        return self.table()


# ----------------------------------------------------------------------------------- adapters
class Adapter:
    """The primitives one framework provides. Subclassed once per framework module.

    Export primitives work on JAX arrays that are single-device and (for ``compact_only``
    frameworks) row-major; import primitives on that framework's tensors. They run once per
    leaf, so implementations keep framework lookups out of the call (``cached_property``).
    """

    name: ClassVar[str]
    #: dtype names this framework can take from / hand to JAX over DLPack.
    dtypes: ClassVar[frozenset[str]]
    #: True when the framework refuses non-row-major DLPack buffers (TF, MXNet).
    compact_only: ClassVar[bool] = False
    #: Suggested ``cast=`` targets for dtypes the framework cannot hold.
    cast_hints: ClassVar[Mapping[str, str]] = {}
    #: True when dropping a tensor made by ``from_capsule`` releases the capsule at once (not
    #: later on a framework thread): copy mode then exports ``x`` itself and clones it.
    releases_at_once: ClassVar[bool] = False

    def module(self) -> Any:
        """Imports the framework or raises BackendUnavailableError."""
        raise NotImplementedError

    # export side
    def from_capsule(self, capsule: Any) -> Any:
        """A tensor over the buffer of a JAX ``"dltensor"`` capsule (the framework's DLPack import)."""
        raise NotImplementedError

    def from_jax(self, x: jax.Array, view: bool = True) -> tuple[Any, str]:
        """A tensor over ``x``'s buffer (DLPack), and the reason if it had to copy ("" if not).
        ``view``: see :func:`to_capsule`."""
        return self.from_capsule(to_capsule(x, view)), ""

    def clone(self, t: Any) -> Any:
        """A copy of ``t`` in a new buffer, finished (not pending) when this returns."""
        raise NotImplementedError

    def wrap(self, t: Any) -> Any:
        """``t`` as the framework's parameter/variable type (zero-copy where it can)."""
        return t

    # both sides
    def data_ptr(self, t: Any) -> int:
        """Address of ``t``'s first element."""
        raise NotImplementedError

    # import side
    def is_tensor(self, obj: Any) -> bool:
        raise NotImplementedError

    def dtype_name(self, t: Any) -> str:
        """numpy-style dtype name ("float32", "bfloat16", "bool", ...)."""
        raise NotImplementedError

    def shape(self, t: Any) -> tuple[int, ...]:
        return tuple(int(d) for d in t.shape)

    def prepare(self, t: Any) -> tuple[Any, str]:
        """A tensor JAX can import zero-copy, and the reason if that needed a copy ("" if not)."""
        return t, ""

    def host_capsule(self, t: Any) -> Any | None:
        """An unversioned ``"dltensor"`` capsule of ``t`` if it is in plain host memory (kDLCPU),
        else None (then :meth:`public_to_jax` is used)."""
        return None

    def public_to_jax(self, t: Any) -> jax.Array:
        """``t`` imported through JAX's public DLPack API (any device, streams handled)."""
        return jnp.from_dlpack(t)

    def to_jax(self, t: Any) -> tuple[jax.Array, str]:
        """A JAX array over ``t``'s buffer (DLPack), and the reason if it had to copy."""
        fast = _host_importer()
        if fast is not None:
            capsule = self.host_capsule(t)
            if capsule is not None:
                return fast(capsule), ""
        return self.public_to_jax(t), ""

    def cast(self, t: Any, dtype: str) -> Any:
        """``t`` cast to ``dtype`` (a copy) inside the framework."""
        raise NotImplementedError

    def minmax(self, t: Any) -> tuple[float, float]:
        """Minimum and maximum of ``t`` as Python numbers (for range checks)."""
        raise NotImplementedError


# ----------------------------------------------------------------------------------- helpers
def check_mode(mode: str, allowed: tuple[str, ...] = MODES) -> str:
    """Validates an ownership mode, naming the allowed ones."""
    if mode not in allowed:
        hint = ""
        if mode == "move" and "move" not in allowed:
            hint = (" JAX cannot take ownership of another framework's tensor: use mode='share'"
                    " (zero-copy) and drop your references to the source, or mode='copy'.")
        raise InteropError(f"mode must be one of {allowed}, got {mode!r}.{hint}")
    return mode


def dtype_name(dtype: DTypeLike) -> str:
    """Canonical numpy-style name of a dtype-like ("bfloat16", "float32", ...)."""
    try:
        return _dtype_name(dtype)
    except TypeError as e:  # also raised for unhashable dtype-likes
        try:
            return np.dtype(jnp.dtype(dtype)).name
        except TypeError:
            raise DTypeError(f"{dtype!r} is not a dtype: {e}") from None


_DTYPE_NAMES: dict[Any, str] = {}  # dtype-like -> name; a plain dict: the hot path reads it


def _dtype_name(dtype: DTypeLike) -> str:
    name = _DTYPE_NAMES.get(dtype)  # TypeError if unhashable (dtype_name handles it)
    if name is None:
        name = _DTYPE_NAMES[dtype] = np.dtype(jnp.dtype(dtype)).name
    return name


def normalize_cast(cast: CastMap | None) -> dict[str, str]:
    """``cast={"bool": "uint8", jnp.int16: jnp.int32}`` as a {name: name} dict."""
    return {dtype_name(k): dtype_name(v) for k, v in (cast or {}).items()}


def x64_enabled() -> bool:
    return bool(jax.config.jax_enable_x64)


def py_shape(shape: Any) -> tuple[int, ...]:
    """A shape as a tuple of plain Python ints (MXNet 1.9.1 breaks on numpy scalar types)."""
    return tuple(int(d) for d in shape)


def _int_range(name: str) -> tuple[int, int] | None:
    if name == "bool":
        return 0, 1
    if np.issubdtype(np.dtype(name), np.integer):
        info = np.iinfo(name)
        return int(info.min), int(info.max)
    return None


def check_range(path: str, lo: float, hi: float, src: str, dst: str, where: str) -> None:
    """Raises unless every value in [lo, hi] is representable in integer dtype ``dst``."""
    rng = _int_range(dst)
    if rng is None:
        return
    if not (lo >= rng[0] and hi <= rng[1]):  # also False for NaN
        raise DTypeError(
            f"{where}{path!r}: casting {src} to {dst} would wrap around: values span "
            f"[{lo}, {hi}] but {dst} holds [{rng[0]}, {rng[1]}]. Choose a wider dtype in "
            "cast=, or keep 64-bit values with jax.config.update('jax_enable_x64', True)."
        )


def _needs_range_check(src: str, dst: str) -> bool:
    rs, rd = _int_range(src), _int_range(dst)
    if rd is None:
        return False
    if rs is None:  # float/complex -> int
        return True
    return rs[0] < rd[0] or rs[1] > rd[1]


def jax_ptr(x: jax.Array) -> int:
    return 0 if x.size == 0 else int(x.unsafe_buffer_pointer())


_CAPSULE_GET_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


class _DLTensor(ctypes.Structure):
    """The DLPack 0.x ``DLTensor`` (the first member of ``DLManagedTensor``)."""

    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32),
                ("device_id", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("dtype", ctypes.c_uint32), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p), ("byte_offset", ctypes.c_uint64)]  # fmt: skip


def capsule_data_ptr(capsule: Any) -> int:
    """Address of the first element of an unconsumed ``"dltensor"`` DLPack capsule.

    Reads ``DLManagedTensor.dl_tensor.data + byte_offset`` (DLPack 0.x layout: data pointer at
    offset 0, byte_offset at 40). Uses a private ctypes prototype, so ``ctypes.pythonapi`` (which
    MXNet configures for its own use) is left untouched.
    """
    dl = _DLTensor.from_address(_CAPSULE_GET_POINTER(capsule, b"dltensor"))
    return (dl.data or 0) + dl.byte_offset


# ----------------------------------------------------------------------------------- fast calls
# The per-leaf hot path. ``x.__dlpack__()`` spends 10-20 us in Python (device and version
# checks) before it reaches the C call below with ``x.addressable_data(0)``, and
# ``jnp.from_dlpack`` ~80 us (backend lookups, stream probing, ``jnp.asarray``). Each fast call
# is the C call those wrappers end in with the same arguments; it is checked once, on a probe
# array, against the public call, and if anything is missing or differs the public call is used.
def _public_capsule(x: jax.Array, view: bool = True) -> Any:
    return x.__dlpack__()


@functools.cache
def _capsule_maker() -> Callable[[jax.Array, bool], Any]:
    try:
        from jax._src.lib import _jax

        raw = _jax.buffer_to_dlpack_managed_tensor

        def fast(x: jax.Array, view: bool = True) -> Any:
            return raw(x.addressable_data(0) if view else x, stream=None)

        probe = jnp.arange(1, 9, dtype=jnp.float32).reshape(2, 4)
        for view in (True, False):
            if capsule_data_ptr(fast(probe, view)) != capsule_data_ptr(_public_capsule(probe)):
                return _public_capsule
        return fast
    except Exception:  # noqa: BLE001 - any mismatch in JAX internals: use the public call
        return _public_capsule


def to_capsule(x: jax.Array, view: bool = True) -> Any:
    """``x.__dlpack__()``: an unversioned ``"dltensor"`` capsule over ``x``'s buffer.

    Like JAX's own call (``stream=None``), it waits until ``x`` is computed, so no separate
    ``block_until_ready`` is needed. With ``view`` (the default, as JAX does) the capsule holds
    a new single-device view of ``x`` (~5 us on its first export), because deleting an array
    that a live capsule holds directly aborts the process ("Non-zero type 1 hold on
    destruction"). ``view=False`` skips that view: only for arrays nobody can delete while the
    capsule, or a tensor made from it, lives (a private temporary, or an alias that is dropped
    synchronously before returning).
    """
    return _capsule_maker()(x, view)


@functools.cache
def _host_importer() -> Callable[[Any], jax.Array] | None:
    """``jnp.from_dlpack`` for a kDLCPU capsule, without its Python glue; None if unavailable."""
    try:
        from jax._src.lib import _jax, jaxlib_extension_version

        cpu = jax.devices("cpu")[0]  # what jnp.from_dlpack picks for (kDLCPU, 0)
        raw = _jax.dlpack_managed_tensor_to_buffer
        if jaxlib_extension_version >= 467:
            def fast(capsule: Any) -> jax.Array:
                return raw(capsule, cpu, None, None, 1)
        else:
            def fast(capsule: Any) -> jax.Array:
                return raw(capsule, cpu, None, None)
        probe = jax.device_put(np.arange(1, 9, dtype=np.float32).reshape(2, 4), cpu)
        x, ref = fast(_public_capsule(probe)), jnp.from_dlpack(probe)
        same = (x.unsafe_buffer_pointer() == ref.unsafe_buffer_pointer()
                and (x.dtype, x.shape, x.sharding, x.weak_type, x.committed)
                == (ref.dtype, ref.shape, ref.sharding, ref.weak_type, ref.committed)
                and np.array_equal(np.asarray(x), np.asarray(probe)))  # fmt: skip
        return _canonical(fast) if same else None
    except Exception:  # noqa: BLE001 - any mismatch in JAX internals: use the public call
        return None


def _canonical(fast: Callable[[Any], jax.Array]) -> Callable[[Any], jax.Array]:
    def imp(capsule: Any) -> jax.Array:
        x = fast(capsule)
        if x.dtype.itemsize == 8 and not x64_enabled():  # as jnp.from_dlpack: x64 off narrows
            canonical = jax.dtypes.canonicalize_dtype(x.dtype)
            if canonical != x.dtype:
                x = jnp.asarray(x, dtype=canonical)
        return x

    return imp


@functools.cache
def _copier() -> Callable[[jax.Array], jax.Array]:
    # ``jnp.array(x, copy=True)``: the same one-op program, compiled once per (shape, dtype)
    # either way, but dispatched by jit's C++ fast path: 4-8x less per-call overhead.
    return jax.jit(lambda a: a.copy())


def _public_row_major(x: jax.Array) -> bool:
    try:
        m2m = x.format.layout.major_to_minor
    except Exception:  # noqa: BLE001 - no layout information: JAX default layout
        return True
    return m2m is None or tuple(m2m) == tuple(range(x.ndim))


@functools.cache
def _row_major_check() -> Callable[[jax.Array], bool]:
    def fast(x: jax.Array) -> bool:
        try:
            m2m = x._pjrt_layout._xla_layout().minor_to_major()
        except Exception:  # noqa: BLE001 - deleted, or no layout: ask the public property
            return _public_row_major(x)
        return tuple(m2m) == _DESCENDING[len(m2m)]

    try:
        from jax.experimental.layout import Format, Layout

        probe = jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3)
        cols = jax.device_put(probe, Format(Layout(major_to_minor=(1, 0)), probe.sharding))
        if (fast(probe), fast(cols)) == (_public_row_major(probe), _public_row_major(cols)) == (
            True, False
        ):
            return fast
    except Exception:  # noqa: BLE001 - any mismatch in JAX internals: use the public property
        pass
    return _public_row_major


_DESCENDING = [tuple(range(n - 1, -1, -1)) for n in range(65)]


def is_row_major(x: jax.Array) -> bool:
    """True if ``x``'s buffer is row-major (it may not be after a zero-copy import of a view)."""
    return x.ndim < 2 or _row_major_check()(x)


def _check_exportable(x: Any, path: str, fw: str) -> jax.Array:
    if not isinstance(x, jax.Array):
        raise DTypeError(
            f"to_{fw}: leaf {path!r} is a {type(x).__name__}, not a jax.Array; convert it with "
            "jnp.asarray first (or remove it from the tree)."
        )
    if x.is_deleted():
        raise InteropError(
            f"to_{fw}: leaf {path!r} is a deleted jax.Array (was it already exported with "
            "mode='move', or donated?)."
        )
    if len(x.devices()) != 1:
        raise InteropError(
            f"to_{fw}: leaf {path!r} is sharded over {len(x.devices())} devices; DLPack exports "
            "single-device arrays only. Gather it first, e.g. jax.device_put(x, jax.devices()[0])."
        )
    return x


# ----------------------------------------------------------------------------------- logs
# One leaf's outcome as a plain tuple; an ExportRecord is built from it only when asked for.
# (index, zero_copy, reason, shape, dtype, target_dtype, nbytes, tied_to index or None)
Row = tuple[int, bool, Any, tuple[int, ...], str, str, int, Any]

def _record(row: Row, paths: Any, framework: str, direction: str, mode: str) -> ExportRecord:
    """The ExportRecord of ``row``. Filled without the frozen-dataclass ``__init__`` (12
    ``object.__setattr__`` calls, 3-4x slower); a test checks it equals ``ExportRecord(...)``."""
    i, zero_copy, reason, shape, src, dst, nbytes, tied = row
    tied_to = None
    if tied is not None:
        tied_to = paths[tied]
        reason = _TIE_REASON[direction].format(tied_to)
    rec = object.__new__(ExportRecord)
    d = rec.__dict__
    (d["path"], d["framework"], d["direction"], d["mode"], d["zero_copy"], d["reason"], d["shape"],
     d["dtype"], d["target_dtype"], d["nbytes"], d["bytes_copied"], d["tied_to"]) = (
        paths[i], framework, direction, mode, zero_copy, reason, shape, src, dst, nbytes,
        0 if zero_copy or tied is not None else nbytes, tied_to)  # fmt: skip
    return rec


_TIE_REASON = {"export": "same array as {!r}: same tensor", "import": "same tensor as {!r}: same array"}


def _row_bytes_copied(row: Row) -> int:
    return 0 if row[1] or row[7] is not None else row[6]


class _KeyPaths:
    """Leaf path strings of a flattened tree, made from its key paths on demand."""

    __slots__ = ("keys",)

    def __init__(self, keys: Sequence[Any]) -> None:
        self.keys = keys

    def __getitem__(self, i: int) -> str:
        return path_str(self.keys[i])


class _Log:
    """The rows of one transfer and what turns them into ExportRecords."""

    __slots__ = ("framework", "direction", "mode", "paths", "rows")

    def __init__(self, framework: str, direction: str, mode: str, paths: Any) -> None:
        self.framework, self.direction, self.mode, self.paths = framework, direction, mode, paths
        self.rows: list[Row] = []

    def records(self) -> tuple[ExportRecord, ...]:
        return tuple(_record(row, self.paths, self.framework, self.direction, self.mode)
                     for row in self.rows)  # fmt: skip

    def add_tie(self, i: int, first: int) -> None:
        _, zero_copy, _, shape, src, dst, nbytes, _ = self.rows[first]
        self.rows.append((i, zero_copy, None, shape, src, dst, nbytes, first))

    def check_strict(self) -> None:
        """Raises (before anything was changed) if a leaf was copied in move/share mode."""
        copied = [r for r in self.rows if not r[1] and r[7] is None]
        if copied and self.mode != "copy":
            fn = f"{'to' if self.direction == 'export' else 'from'}_{self.framework}"
            lines = "\n".join(f"  {self.paths[r[0]]!r}: {r[2]}" for r in copied)
            raise InteropError(
                f"{fn} with mode={self.mode!r}, strict=True: {len(copied)} leaves could not be "
                f"transferred zero-copy ({self.framework}); nothing was changed:\n{lines}"
            )


def _flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None):
    keyed, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return [leaf for _, leaf in keyed], _KeyPaths([k for k, _ in keyed]), treedef


def _transfer_tree(one: Callable[[Any, int], tuple[Any, Row]], log: _Log, leaves: list[Any],
                   treedef: Any, strict: bool) -> tuple[Any, list[Any]]:  # fmt: skip
    """Runs ``one`` per leaf (the same object twice: once), checks strict; (tree, uniques)."""
    first: dict[int, int] = {}
    out = []
    for i, leaf in enumerate(leaves):
        j = first.get(id(leaf))
        if j is None:
            first[id(leaf)] = i
            t, row = one(leaf, i)
            log.rows.append(row)
        else:
            t = out[j]
            log.add_tie(i, j)
        out.append(t)
    if strict:
        log.check_strict()
    return jax.tree_util.tree_unflatten(treedef, out), [leaves[i] for i in first.values()]


# ----------------------------------------------------------------------------------- export
_ZERO_COPY = "zero-copy DLPack alias"
_ZERO_COPY_MOVED = "zero-copy DLPack alias; source JAX array deleted"
_NO_CAST: dict[str, str] = {}  # the cast map when cast=None (never written to)


def _export_one(fw: Adapter, x: Any, mode: str, paths: Any, i: int, cast_map: dict[str, str],
                wrap: bool) -> tuple[Any, Row]:  # fmt: skip
    """Exports one leaf; ``paths[i]`` is its path (read only for errors). Deletes nothing."""
    if not isinstance(x, jax.Array) or x.is_deleted() or (
        type(x.sharding) is not SingleDeviceSharding and len(x.sharding.device_set) != 1
    ):
        _check_exportable(x, paths[i], fw.name)
    dt = x.dtype
    src = _DTYPE_NAMES.get(dt) or _dtype_name(dt)
    reasons: list[str] = []
    y = x
    if cast_map and cast_map.get(src, src) != src:
        dst = cast_map[src]
        if dst not in fw.dtypes:
            raise DTypeError(f"to_{fw.name}: leaf {paths[i]!r}: cast target {dst} is not a dtype "
                             f"{fw.name} can hold; it holds {sorted(fw.dtypes)}.")
        if _needs_range_check(src, dst):
            check_range(paths[i], jnp.min(x).item(), jnp.max(x).item(), src, dst,
                        f"to_{fw.name}: ")  # fmt: skip
        y = x.astype(dst)
        reasons.append(f"cast {src}->{dst} (cast=)")
    elif src not in fw.dtypes:
        hint = fw.cast_hints.get(src)
        fix = f"pass cast={{'{src}': '{hint}'}} to convert it" if hint else "cast it first"
        raise DTypeError(
            f"to_{fw.name}: leaf {paths[i]!r} has dtype {src}, which {fw.name} cannot hold over "
            f"DLPack (it holds {', '.join(sorted(fw.dtypes))}); {fix}."
        )
    if fw.compact_only and not is_row_major(y):
        y = jnp.array(y, copy=True)
        reasons.append(
            f"non-row-major layout (major_to_minor={tuple(x.format.layout.major_to_minor)}); "
            f"{fw.name} accepts only compact row-major buffers, so it was made contiguous"
        )
    # The alias needs no view of x when y is our own temporary, or when it is cloned and dropped
    # before we return (copy mode, frameworks that release synchronously).
    view = y is x and not (mode == "copy" and fw.releases_at_once)
    try:
        t, why = fw.from_jax(y, view)  # waits until y is computed
    except Exception as e:  # noqa: BLE001 - re-raised with the leaf's path
        raise InteropError(
            f"to_{fw.name}: DLPack export of leaf {paths[i]!r} ({src}{list(x.shape)}) failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    if why:
        reasons.append(why)
    if mode == "copy" and y is x and not why:
        alias, t = t, None
        try:
            t = fw.clone(alias)
        finally:
            del alias  # released now (view=False above relies on it), even if clone raised
        reasons.append("copy mode")
    if wrap:
        t = fw.wrap(t)
    shape = x.shape
    size = math.prod(shape)
    zero_copy = size == 0 or fw.data_ptr(t) == x.unsafe_buffer_pointer()
    if zero_copy:
        reasons.append(_ZERO_COPY_MOVED if mode == "move" else _ZERO_COPY)
    elif not reasons:  # the framework copied on its own (e.g. misaligned buffer)
        reasons.append(f"{fw.name} copied the buffer on import (unaligned or unsupported layout)")
    reason = reasons[0] if len(reasons) == 1 else "; ".join(reasons)
    if y is not x:
        dst, dt = _dtype_name(y.dtype), y.dtype
    else:
        dst = src
    return t, (i, zero_copy, reason, shape, src, dst, size * dt.itemsize, None)


def export_leaf(
    fw: Adapter,
    x: jax.Array,
    mode: str = "copy",
    *,
    path: str = "",
    cast: CastMap | None = None,
    wrap: bool = False,
) -> tuple[Any, ExportRecord]:
    """Exports one JAX array to ``fw`` (the per-framework ``export_array`` calls this).

    In ``"move"`` mode the caller deletes ``x`` (``export_tree`` does, after every leaf
    succeeded); this function never deletes anything.
    """
    if mode not in MODES:
        check_mode(mode)
    cast_map = normalize_cast(cast) if cast else _NO_CAST
    t, row = _export_one(fw, x, mode, (path,), 0, cast_map, wrap)
    return t, _record(row, (path,), fw.name, "export", mode)


def export_tree(
    fw: Adapter,
    tree: Any,
    mode: str = "copy",
    *,
    report: bool = False,
    strict: bool = False,
    cast: CastMap | None = None,
    wrap: bool = False,
) -> Any:
    """Exports every leaf of ``tree`` to ``fw``; returns the same structure (and a report).

    The same jax.Array object appearing twice (tied weights) is exported once and both places
    get the same tensor, in every mode. In ``"move"`` mode the JAX arrays are deleted only after
    every leaf was exported (and the strict check passed), so a failed call deletes nothing.
    """
    check_mode(mode)
    fw.module()
    cast_map = normalize_cast(cast)
    leaves, paths, treedef = _flatten(tree)
    log = _Log(fw.name, "export", mode, paths)
    out, unique = _transfer_tree(
        lambda x, i: _export_one(fw, x, mode, paths, i, cast_map, wrap),
        log, leaves, treedef, strict,
    )  # fmt: skip
    if mode == "move":
        for x in unique:
            x.delete()
    return (out, ExportReport._lazy(log)) if report else out


# ----------------------------------------------------------------------------------- import
def _import_one(fw: Adapter, t: Any, mode: str, paths: Any, i: int, cast_map: dict[str, str],
                allow_narrowing: bool, x64: bool) -> tuple[jax.Array, Row]:  # fmt: skip
    """Imports one framework tensor; ``paths[i]`` is its path (read only for errors)."""
    if not fw.is_tensor(t):
        raise DTypeError(f"from_{fw.name}: leaf {paths[i]!r} is a {type(t).__name__}, not a "
                         f"{fw.name} tensor.")
    src = fw.dtype_name(t)
    shape = fw.shape(t)
    src_ptr = fw.data_ptr(t)
    reasons: list[str] = []
    dst = cast_map.get(src, src) if cast_map else src
    if dst in NARROWING and not x64:
        if not (allow_narrowing or dst != src):
            raise DTypeError(
                f"from_{fw.name}: leaf {paths[i]!r} has dtype {src}, which JAX holds only with "
                f"x64 enabled; JAX would silently convert it to {NARROWING[src]} (integers wrap "
                "around). Enable x64 (jax.config.update('jax_enable_x64', True)), pass "
                f"allow_narrowing=True (values are range-checked), or cast={{'{src}': "
                f"'{NARROWING[src]}'}}."
            )
        dst = NARROWING[dst]
    if dst != src:
        if _needs_range_check(src, dst):
            lo, hi = fw.minmax(t)
            check_range(paths[i], lo, hi, src, dst, f"from_{fw.name}: ")
        t = fw.cast(t, dst)
        reasons.append(f"cast {src}->{dst} in {fw.name}"
                       + (" (allow_narrowing)" if src in NARROWING and src not in cast_map
                          else " (cast=)"))  # fmt: skip
    t, why = fw.prepare(t)
    if why:
        reasons.append(why)
    try:
        x, why = fw.to_jax(t)
    except Exception as e:  # noqa: BLE001 - re-raised with the leaf's path
        raise InteropError(f"from_{fw.name}: DLPack import of leaf {paths[i]!r} ({src}"
                           f"{list(shape)}) failed: {type(e).__name__}: {e}") from e
    if why:
        reasons.append(why)
    if mode == "copy" and not why:
        x = _copier()(x)
        x.block_until_ready()  # the copy must not race with later writes to the source
        reasons.append("copy mode")
    size = math.prod(shape)
    zero_copy = size == 0 or x.unsafe_buffer_pointer() == src_ptr
    if zero_copy:
        reasons.append(_ZERO_COPY)
    elif not reasons:
        reasons.append("JAX copied the buffer on import (unaligned or unsupported layout)")
    reason = reasons[0] if len(reasons) == 1 else "; ".join(reasons)
    nbytes = size * x.dtype.itemsize
    return x, (i, zero_copy, reason, shape, src, _dtype_name(x.dtype), nbytes, None)


def import_leaf(
    fw: Adapter,
    t: Any,
    mode: str = "copy",
    *,
    path: str = "",
    allow_narrowing: bool = False,
    cast: CastMap | None = None,
) -> tuple[jax.Array, ExportRecord]:
    """Imports one framework tensor into JAX (the per-framework ``import_array`` calls this).

    64-bit dtypes with x64 disabled raise unless ``allow_narrowing=True`` or ``cast=`` names
    them; integer narrowing is range-checked (JAX itself would wrap around silently).
    """
    if mode not in IMPORT_MODES:
        check_mode(mode, IMPORT_MODES)
    cast_map = normalize_cast(cast) if cast else _NO_CAST
    x, row = _import_one(fw, t, mode, (path,), 0, cast_map, allow_narrowing, x64_enabled())
    return x, _record(row, (path,), fw.name, "import", mode)


def import_tree(
    fw: Adapter,
    tree: Any,
    mode: str = "copy",
    *,
    report: bool = False,
    strict: bool = False,
    allow_narrowing: bool = False,
    cast: CastMap | None = None,
) -> Any:
    """Imports every framework tensor in ``tree`` into JAX; same structure (and a report)."""
    check_mode(mode, IMPORT_MODES)
    fw.module()
    cast_map = normalize_cast(cast)
    x64 = x64_enabled()
    leaves, paths, treedef = _flatten(tree, is_leaf=fw.is_tensor)
    log = _Log(fw.name, "import", mode, paths)
    out, _ = _transfer_tree(
        lambda t, i: _import_one(fw, t, mode, paths, i, cast_map, allow_narrowing, x64),
        log, leaves, treedef, strict,
    )  # fmt: skip
    return (out, ExportReport._lazy(log)) if report else out
