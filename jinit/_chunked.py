"""Leaves filled on the host or by a few shape-independent kernels: no compile per leaf shape.

Most tree leaves are zeros, ones, or an affine function of one of three standard samplers
(``uniform``, ``normal``, ``truncated_normal``). With JAX's partitionable Threefry a sample's
value depends only on the key and its flat index, so a leaf of any shape can be generated in
flat chunks by one compiled kernel per ``(sampler family, chunk size, dtype)`` that takes the
chunk's offset, the scale and the truncation at run time (:func:`jinit._random.flat_sample`):
two families, ``uniform`` and ``normal`` (which also draws truncated normals), so a tree of
Gaussian leaves of at least ``BIG`` elements compiles one kernel per dtype. The chunks are
copied into a 64-byte-aligned host buffer which becomes the leaf's ``jax.Array`` without a copy
(``jax.device_put`` aliases aligned host memory on CPU). Zeros and ones need no kernel at all.

:func:`recipe` says how an initializer call maps to such a fill, or ``None`` when it does not
(any other initializer, float64, complex, traced hyper-parameters): those leaves keep their
per-shape kernel. Values are bit-identical either way.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import math
import numbers
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jinit import _initializers as _ini
from jinit import _kernel_cache, _random, _threefry
from jinit._fans import compute_fans

#: Elements per chunk of the large and the small kernel of each family and dtype.
BIG = 2**18
SMALL = 2**14
#: Chunks in flight ahead of the copy into leaf buffers (bounds the transient memory).
WINDOW = 3
#: Byte alignment of leaf buffers; XLA's CPU client aliases host memory aligned like this.
ALIGN = 64

_F32 = np.dtype(np.float32)
_INF = _F32.type(np.inf)
_SQRT2 = _F32.type(np.sqrt(2))
_UNUSED = (_F32.type(0),) * 3


@dataclasses.dataclass(frozen=True)
class Fill:
    """A leaf that is one constant: ``value`` (a 0-d array of the leaf's dtype)."""

    value: np.ndarray


@dataclasses.dataclass(frozen=True)
class Draw:
    """A leaf equal to ``(sampler(key, shape, float32, ...) * scale).astype(dtype)``.

    ``family`` and ``params`` are as in :data:`jinit._random.FLAT_FAMILIES`.
    """

    family: str
    params: tuple[np.float32, ...]


def _f32(x: Any) -> np.float32:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError("not a concrete real number")
    return np.asarray(x, _F32)[()]


def _constant(init: _ini.Constant, shape, dtype: np.dtype) -> Fill | None:
    v = init.value
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v not in (0, 1):
        return None
    return Fill(np.asarray(v, dtype))


def _normal(init: _ini.Normal, shape, dtype) -> Draw:
    return _gaussian(_f32(init.stddev))


def _gaussian(scale: np.float32) -> Draw:
    """``normal(key, shape, float32) * scale`` as XLA compiles it: ``sqrt2 * scale`` folded."""
    lo = np.nextafter(_F32.type(-1), _F32.type(0))
    return Draw("normal", (lo, _F32.type(1), _SQRT2 * scale, -_INF, _INF, _F32.type(1)))


def _truncated_normal(init: _ini.TruncatedNormal, shape, dtype) -> Draw:
    return _truncated(_f32(init.lower), _f32(init.upper), _f32(init.stddev))


def _truncated(lower: np.float32, upper: np.float32, scale: np.float32) -> Draw:
    clip = (np.nextafter(lower, _F32.type(np.inf)), np.nextafter(upper, _F32.type(-np.inf)))
    return Draw("normal", (*_erf_bounds(float(lower), float(upper)), _SQRT2, *clip, scale))


@functools.lru_cache(maxsize=64)
def _erf_bounds(lower: float, upper: float) -> tuple[np.float32, np.float32]:
    """``erf(bound / sqrt(2))`` in float32 as XLA constant-folds it in a per-shape kernel.

    The truncated-normal bounds are compile-time constants there, so this is computed the same
    way (a tiny constant program, once per pair of bounds), not at run time.
    """
    sqrt2 = np.array(np.sqrt(2), _F32)
    a, b = _kernel_cache.compile(jax.jit(lambda: (
        lax.erf(np.array(lower, _F32) / sqrt2), lax.erf(np.array(upper, _F32) / sqrt2))).lower())()
    return np.asarray(a, _F32)[()], np.asarray(b, _F32)[()]


def _uniform(init: _ini.Uniform, shape, dtype) -> Draw:
    return Draw("uniform", (_F32.type(0), _F32.type(1), *_UNUSED, _f32(init.scale)))


def _variance_scaling(init: _ini.VarianceScaling, shape, dtype) -> Draw:
    """The scale of :meth:`jinit.VarianceScaling._sample`, computed with the same float32 ops."""
    fan_in, fan_out = compute_fans(shape, init.in_axis, init.out_axis, init.batch_axis)
    denominator = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
                   "fan_geo_avg": (fan_in * fan_out) ** 0.5}[init.mode]
    _f32(init.scale)  # concrete
    variance = np.asarray(init.scale / denominator, _F32)
    if init.distribution == "truncated_normal":
        stddev = np.sqrt(variance) / np.asarray(_ini._TRUNC_STD, _F32)
        return _truncated(_F32.type(-2), _F32.type(2), stddev[()])
    if init.distribution == "normal":
        return _gaussian(np.sqrt(variance)[()])
    return Draw("uniform", (_F32.type(-1), _F32.type(1), *_UNUSED,
                            np.sqrt(np.float32(3) * variance)[()]))


#: Initializer type -> ``(init, shape, dtype) -> Fill | Draw | None``. Exact types only: a
#: subclass may override ``_sample``.
RECIPES: dict[type, Callable[[Any, tuple[int, ...], np.dtype], Fill | Draw | None]] = {
    _ini.Constant: _constant,
    _ini.Normal: _normal,
    _ini.TruncatedNormal: _truncated_normal,
    _ini.Uniform: _uniform,
    _ini.VarianceScaling: _variance_scaling,
}


def recipe(init: Any, shape: tuple[int, ...], dtype: Any) -> Fill | Draw | None:
    """How ``init(key, shape, dtype)`` is filled without a per-shape kernel, or ``None``.

    ``None`` also when the call would fail (the per-shape path then raises the initializer's
    own error) or needs float64 sampling.
    """
    make = RECIPES.get(type(init))
    if make is None:
        return None
    dtype = np.dtype(dtype)
    try:
        if math.prod(shape) >= _threefry.MAX_SIZE:
            return None
        if make is not _constant and not (jnp.issubdtype(dtype, jnp.floating)
                                          and dtype.itemsize <= 4):
            return None
        return make(init, tuple(shape), dtype)
    except Exception:  # noqa: BLE001 - the per-shape path reports the initializer's error
        return None


# --- kernels ------------------------------------------------------------------------------

_kernels: dict[tuple[str, int, np.dtype], Callable] = {}
_lock = threading.Lock()


def _kernel_fn(family: str, size: int, dtype: np.dtype, key_offset, params):
    return _random.flat_sample(family, key_offset, key_offset[2], params, size, dtype)


def kernel(family: str, size: int, dtype: np.dtype) -> Callable:
    """The compiled ``(uint32[3] key and offset, float32[6] params) -> dtype[size]`` kernel."""
    k = (family, size, np.dtype(dtype))
    fn = _kernels.get(k)
    if fn is None:
        with _lock:
            fn = _kernels.get(k)
            if fn is None:
                jitted = jax.jit(functools.partial(_kernel_fn, *k))
                lowered = jitted.lower(jax.ShapeDtypeStruct((3,), np.uint32),
                                       jax.ShapeDtypeStruct((6,), _F32))
                fn = _kernels[k] = _kernel_cache.compile(lowered, _random.kernel_options())
    return fn


def clear() -> None:
    """Drops the compiled chunk kernels."""
    with _lock:
        _kernels.clear()


def kernel_count() -> int:
    return len(_kernels)


# --- host buffers and chunk schedule ------------------------------------------------------


def aligned(shape: tuple[int, ...], dtype: np.dtype, zero: bool = False) -> np.ndarray:
    """An ``ALIGN``-byte-aligned host array (zeroed lazily by the OS when ``zero``)."""
    nbytes = math.prod(shape) * dtype.itemsize
    raw = (np.zeros if zero else np.empty)(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def chunks(n: int) -> Iterator[tuple[int, int, int, int]]:
    """``(kernel size, offset, start, stop)`` covering ``range(n)``: the kernel computes the
    elements ``offset, ..., offset + size - 1`` and ``[start:stop]`` of its output is new.

    A leaf of more than ``BIG // 2`` elements uses only the large kernel: whole chunks, then
    one chunk ending at ``n`` that overlaps the previous one (so no small kernel is compiled
    for the remainder). Smaller leaves use the small kernel the same way, and a leaf of fewer
    than ``SMALL`` elements one small chunk.
    """
    size = BIG if n > BIG // 2 else SMALL
    offset = 0
    while offset < n:
        start = max(0, min(offset, n - size))
        yield size, start, offset - start, min(n, start + size) - start
        offset = start + size


class Prefault:
    """Maps fresh leaf buffers page by page on a helper thread, ahead of the copies into them.

    The first write to a fresh page costs a page fault (and, on some virtual machines, a fault
    in the host too); done here, on the otherwise idle core while the caller traces and
    compiles, the faults leave the copy pipeline. The helper writes one byte per page, in
    blocks of ``BLOCK`` bytes, and never again below what it has published: a writer calls
    :meth:`wait` for the bytes it is about to write, so the two threads never write the same
    byte. Buffers under ``MIN_BYTES`` are left to the copies.
    """

    BLOCK = 8 * 2**20
    MIN_BYTES = 2**20
    PAGE = 4096

    def __init__(self, bufs: list[np.ndarray]):
        self._bufs = [b.reshape(-1).view(np.uint8) for b in bufs]
        self._ready = [0 if b.size >= self.MIN_BYTES else b.size for b in self._bufs]
        self._cond = threading.Condition()
        self._stopped = False
        self._finished = all(r == b.size for r, b in zip(self._ready, self._bufs, strict=True))
        self._thread = None
        if not self._finished:  # no thread when every buffer is small
            self._thread = threading.Thread(target=self._run, name="jinit-prefault", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            for i, raw in enumerate(self._bufs):
                for lo in range(self._ready[i], raw.size, self.BLOCK):
                    if self._stopped:
                        return
                    raw[lo:lo + self.BLOCK:self.PAGE] = 0
                    with self._cond:
                        self._ready[i] = min(raw.size, lo + self.BLOCK)
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def wait(self, i: int, nbytes: int) -> None:
        """Returns once the helper is done with the first ``nbytes`` bytes of buffer ``i``."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready[i] >= nbytes or self._finished)

    def close(self) -> None:
        """Stops the helper (at the end of its current block) and waits for it."""
        self._stopped = True
        if self._thread is not None:
            self._thread.join()


def fill(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A constant leaf's host buffer (no kernel; zeros are the OS's zero pages).

    ``jax.device_put`` makes it the leaf without a copy; put many at once, in one call.
    """
    zero = value.tobytes() == bytes(value.itemsize)  # +0 in every dtype
    buf = aligned(shape, value.dtype, zero=zero)
    if not zero:
        buf.fill(value)
    return buf


def draw_leaves(jobs: list[tuple[np.ndarray, Draw, tuple[int, ...], np.dtype]],
                done: Callable[[int, jax.Array], None],
                guard: Callable[[int], contextlib.AbstractContextManager]) -> None:
    """Fills every ``(leaf key data, draw, shape, dtype)`` job, calling ``done(i, leaf)``.

    ``guard(i)`` wraps the work of job ``i`` that can fail (allocation, kernel runs, copies),
    so the caller can name the leaf in the error.

    The chunk kernels run asynchronously (XLA spreads each over the cores) while this thread
    copies the oldest chunk into its leaf buffer as soon as ``WINDOW`` newer ones are queued:
    the copies overlap with the sampling, and the kernels always have work queued. The leaf
    buffers are allocated up front and their pages mapped by :class:`Prefault`, which starts
    while the first call compiles the chunk kernel.
    """
    if not jobs:
        return
    bufs = []
    for i, (_, _, shape, dtype) in enumerate(jobs):
        with guard(i):
            bufs.append(aligned((math.prod(shape),), dtype))
    prefault = Prefault(bufs)
    pending: collections.deque[tuple[int, int, int, int, jax.Array, bool]] = collections.deque()

    def retire() -> None:
        i, offset, start, stop, out, last = pending.popleft()
        buf = bufs[i]
        prefault.wait(i, (offset + stop) * buf.itemsize)
        with guard(i):
            buf[offset + start:offset + stop] = np.asarray(out)[start:stop]
        if last:
            done(i, jax.device_put(buf.reshape(jobs[i][2])))

    try:
        for i, (key_data, draw, shape, dtype) in enumerate(jobs):
            plan = list(chunks(math.prod(shape)))
            if not plan:
                done(i, jax.device_put(bufs[i].reshape(shape)))
                continue
            params = np.array(draw.params, _F32)
            for j, (size, offset, start, stop) in enumerate(plan):
                with guard(i):
                    out = kernel(draw.family, size, dtype)(
                        np.array([key_data[0], key_data[1], offset], np.uint32), params)
                pending.append((i, offset, start, stop, out, j == len(plan) - 1))
                if len(pending) > WINDOW:
                    retire()
        while pending:
            retire()
    finally:
        prefault.close()
