"""Framework-neutral array transfer: ownership modes, dtype policy, tree traversal, reports.

Every export or import of one array goes through :func:`export_leaf` / :func:`import_leaf`,
parameterised by a small :class:`Adapter` that each framework module (``_torch``,
``_tensorflow``, ``_mxnet``) implements with a handful of primitives (DLPack in and out, data
pointer, clone, cast). Trees go through :func:`export_tree` / :func:`import_tree`.

Ownership modes (DESIGN decision 8):

* ``"copy"`` (default): the result owns a fresh buffer; the source is never aliased by a
  mutable tensor.
* ``"move"``: zero-copy through DLPack, then (after every leaf succeeded) the source JAX arrays
  are deleted, so no alias can be observed. Tied leaves (the same object twice) are exported once.
* ``"share"``: zero-copy alias. Hazard: a write on either side is visible on the other, JAX's
  "immutable" arrays included, and jitted closures keep the values they captured.

Every leaf gets an :class:`ExportRecord` saying whether it was zero-copy (checked by comparing
data pointers, not assumed) and, if not, why. Nothing falls back silently: dtypes a framework
cannot hold and 64->32-bit narrowing raise :class:`jinit.DTypeError` unless the caller opts in.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

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

    Examples:
      >>> import jax.numpy as jnp
      >>> from jinit.interop import to_torch
      >>> tree, rep = to_torch({"w": jnp.ones((2, 3))}, mode="move", report=True)
      >>> rep.all_zero_copy, rep.bytes_copied, rep["w"].reason
      (True, 0, 'zero-copy DLPack alias; source JAX array deleted')
    """

    records: tuple[ExportRecord, ...]

    def __len__(self) -> int:
        return len(self.records)

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
        return all(r.zero_copy for r in self.records)

    @property
    def bytes_copied(self) -> int:
        """Total bytes written into new buffers."""
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
    frameworks) row-major; import primitives on that framework's tensors.
    """

    name: ClassVar[str]
    #: dtype names this framework can take from / hand to JAX over DLPack.
    dtypes: ClassVar[frozenset[str]]
    #: True when the framework refuses non-row-major DLPack buffers (TF, MXNet).
    compact_only: ClassVar[bool] = False
    #: Suggested ``cast=`` targets for dtypes the framework cannot hold.
    cast_hints: ClassVar[Mapping[str, str]] = {}

    def module(self) -> Any:
        """Imports the framework or raises BackendUnavailableError."""
        raise NotImplementedError

    # export side
    def from_jax(self, x: jax.Array) -> tuple[Any, str]:
        """A tensor over ``x``'s buffer (DLPack), and the reason if it had to copy ("" if not)."""
        raise NotImplementedError

    def clone(self, t: Any) -> Any:
        """A copy of ``t`` in a new buffer, finished (not pending) when this returns."""
        raise NotImplementedError

    def wrap(self, t: Any, path: str) -> Any:
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

    def to_jax(self, t: Any) -> tuple[jax.Array, str]:
        """A JAX array over ``t``'s buffer (DLPack), and the reason if it had to copy."""
        return jnp.from_dlpack(t), ""

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


@functools.lru_cache(maxsize=256)
def _dtype_name(dtype: DTypeLike) -> str:
    return np.dtype(jnp.dtype(dtype)).name


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


def is_row_major(x: jax.Array) -> bool:
    """True if ``x``'s buffer is row-major (it may not be after a zero-copy import of a view)."""
    if x.ndim < 2:
        return True
    try:
        m2m = x.format.layout.major_to_minor
    except Exception:  # noqa: BLE001 - no layout information: JAX default layout
        return True
    return m2m is None or tuple(m2m) == tuple(range(x.ndim))


def jax_ptr(x: jax.Array) -> int:
    return 0 if x.size == 0 else int(x.unsafe_buffer_pointer())


_CAPSULE_GET_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def capsule_data_ptr(capsule: Any) -> int:
    """Address of the first element of an unconsumed ``"dltensor"`` DLPack capsule.

    Reads ``DLManagedTensor.dl_tensor.data + byte_offset`` (DLPack 0.x layout: data pointer at
    offset 0, byte_offset at 40). Uses a private ctypes prototype, so ``ctypes.pythonapi`` (which
    MXNet configures for its own use) is left untouched.
    """
    p = _CAPSULE_GET_POINTER(capsule, b"dltensor")
    data = ctypes.c_void_p.from_address(p).value or 0
    offset = ctypes.c_uint64.from_address(p + 40).value
    return data + offset


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


# ----------------------------------------------------------------------------------- export
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
    check_mode(mode)
    x = _check_exportable(x, path, fw.name)
    cast_map = cast if isinstance(cast, dict) else normalize_cast(cast)
    src = dtype_name(x.dtype)
    reasons: list[str] = []
    fresh = False  # does `y` own a buffer nobody else sees?
    y = x
    if src in cast_map and cast_map[src] != src:
        dst = cast_map[src]
        if dst not in fw.dtypes:
            raise DTypeError(f"to_{fw.name}: leaf {path!r}: cast target {dst} is not a dtype "
                             f"{fw.name} can hold; it holds {sorted(fw.dtypes)}.")
        if _needs_range_check(src, dst):
            check_range(path, jnp.min(x).item(), jnp.max(x).item(), src, dst, f"to_{fw.name}: ")
        y, fresh = x.astype(dst), True
        reasons.append(f"cast {src}->{dst} (cast=)")
    elif src not in fw.dtypes:
        hint = fw.cast_hints.get(src)
        fix = f"pass cast={{'{src}': '{hint}'}} to convert it" if hint else "cast it first"
        raise DTypeError(
            f"to_{fw.name}: leaf {path!r} has dtype {src}, which {fw.name} cannot hold over "
            f"DLPack (it holds {', '.join(sorted(fw.dtypes))}); {fix}."
        )
    if fw.compact_only and not is_row_major(y):
        y, fresh = jnp.array(y, copy=True), True
        reasons.append(
            f"non-row-major layout (major_to_minor={tuple(x.format.layout.major_to_minor)}); "
            f"{fw.name} accepts only compact row-major buffers, so it was made contiguous"
        )
    y.block_until_ready()
    try:
        t, why = fw.from_jax(y)
    except Exception as e:  # noqa: BLE001 - re-raised with the leaf's path
        raise InteropError(
            f"to_{fw.name}: DLPack export of leaf {path!r} ({src}{list(x.shape)}) failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    if why:
        reasons.append(why)
        fresh = True
    if mode == "copy" and not fresh:
        t = fw.clone(t)
        reasons.append("copy mode")
    t = fw.wrap(t, path) if wrap else t
    zero_copy = x.size == 0 or fw.data_ptr(t) == jax_ptr(x)
    if zero_copy:
        reasons.append("zero-copy DLPack alias" + ("; source JAX array deleted"
                                                   if mode == "move" else ""))
    elif not reasons:  # the framework copied on its own (e.g. misaligned buffer)
        reasons.append(f"{fw.name} copied the buffer on import (unaligned or unsupported layout)")
    nbytes = int(y.nbytes)
    rec = ExportRecord(
        path=path, framework=fw.name, direction="export", mode=mode, zero_copy=zero_copy,
        reason="; ".join(reasons), shape=tuple(x.shape), dtype=src,
        target_dtype=src if y is x else dtype_name(y.dtype), nbytes=nbytes, bytes_copied=0 if zero_copy else nbytes,
    )  # fmt: skip
    return t, rec


def _flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return [(path_str(p), leaf) for p, leaf in leaves], treedef


def _finish(treedef, out: list[Any], records: list[ExportRecord], report: bool):
    tree = jax.tree_util.tree_unflatten(treedef, out)
    return (tree, ExportReport(tuple(records))) if report else tree


def _check_strict(records: list[ExportRecord], mode: str, fw: str, direction: str) -> None:
    copied = [r for r in records if not r.zero_copy and r.tied_to is None]
    if copied and mode != "copy":
        lines = "\n".join(f"  {r.path!r}: {r.reason}" for r in copied)
        raise InteropError(
            f"{direction} with mode={mode!r}, strict=True: {len(copied)} leaves could not be "
            f"transferred zero-copy ({fw}); nothing was changed:\n{lines}"
        )


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
    items, treedef = _flatten(tree)
    seen: dict[int, tuple[Any, str]] = {}
    out, records, unique = [], [], []
    for path, leaf in items:
        if id(leaf) in seen:
            t, first = seen[id(leaf)]
            rec = dataclasses.replace(
                records[[r.path for r in records].index(first)], path=path, tied_to=first,
                bytes_copied=0, reason=f"same array as {first!r}: same tensor",
            )  # fmt: skip
        else:
            t, rec = export_leaf(fw, leaf, mode, path=path, cast=cast_map, wrap=wrap)
            seen[id(leaf)] = (t, path)
            unique.append(leaf)
        out.append(t)
        records.append(rec)
    if strict:
        _check_strict(records, mode, fw.name, f"to_{fw.name}")
    if mode == "move":
        for leaf in unique:
            leaf.delete()
    return _finish(treedef, out, records, report)


# ----------------------------------------------------------------------------------- import
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
    check_mode(mode, IMPORT_MODES)
    if not fw.is_tensor(t):
        raise DTypeError(f"from_{fw.name}: leaf {path!r} is a {type(t).__name__}, not a "
                         f"{fw.name} tensor.")
    cast_map = cast if isinstance(cast, dict) else normalize_cast(cast)
    src = fw.dtype_name(t)
    shape = fw.shape(t)
    src_ptr = fw.data_ptr(t)
    reasons: list[str] = []
    dst = cast_map.get(src, src)
    if dst in NARROWING and not x64_enabled():
        if not (allow_narrowing or dst != src):
            raise DTypeError(
                f"from_{fw.name}: leaf {path!r} has dtype {src}, which JAX holds only with x64 "
                f"enabled; JAX would silently convert it to {NARROWING[src]} (integers wrap "
                "around). Enable x64 (jax.config.update('jax_enable_x64', True)), pass "
                f"allow_narrowing=True (values are range-checked), or cast={{'{src}': "
                f"'{NARROWING[src]}'}}."
            )
        dst = NARROWING[dst]
    if dst != src:
        if _needs_range_check(src, dst):
            lo, hi = fw.minmax(t)
            check_range(path, lo, hi, src, dst, f"from_{fw.name}: ")
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
        raise InteropError(f"from_{fw.name}: DLPack import of leaf {path!r} ({src}"
                           f"{list(shape)}) failed: {type(e).__name__}: {e}") from e
    if why:
        reasons.append(why)
    if mode == "copy" and not why:
        x = jnp.array(x, copy=True)
        x.block_until_ready()  # the copy must not race with later writes to the source
        reasons.append("copy mode")
    zero_copy = x.size == 0 or jax_ptr(x) == src_ptr
    if zero_copy:
        reasons.append("zero-copy DLPack alias")
    elif not reasons:
        reasons.append("JAX copied the buffer on import (unaligned or unsupported layout)")
    nbytes = int(x.nbytes)
    rec = ExportRecord(
        path=path, framework=fw.name, direction="import", mode=mode, zero_copy=zero_copy,
        reason="; ".join(reasons), shape=shape, dtype=src, target_dtype=dtype_name(x.dtype),
        nbytes=nbytes, bytes_copied=0 if zero_copy else nbytes,
    )  # fmt: skip
    return x, rec


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
    items, treedef = _flatten(tree, is_leaf=fw.is_tensor)
    seen: dict[int, tuple[jax.Array, str]] = {}
    out, records = [], []
    for path, leaf in items:
        if id(leaf) in seen:
            x, first = seen[id(leaf)]
            rec = dataclasses.replace(
                records[[r.path for r in records].index(first)], path=path, tied_to=first,
                bytes_copied=0, reason=f"same tensor as {first!r}: same array",
            )  # fmt: skip
        else:
            x, rec = import_leaf(fw, leaf, mode, path=path, allow_narrowing=allow_narrowing,
                                 cast=cast_map)  # fmt: skip
            seen[id(leaf)] = (x, path)
        out.append(x)
        records.append(rec)
    if strict:
        _check_strict(records, mode, fw.name, f"from_{fw.name}")
    return _finish(treedef, out, records, report)
