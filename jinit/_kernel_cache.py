"""An opt-in, size-capped on-disk cache of jinit's compiled chunk kernels.

A new process normally compiles each chunk kernel it needs (about 0.1 s each, one per sampler
family, chunk size and dtype). With the cache on, a compiled kernel is stored as a file and the
next process loads it instead. Switch it on with one call or one environment variable::

    jinit.set_kernel_cache("~/.cache/jinit")          # or JINIT_KERNEL_CACHE_DIR=~/.cache/jinit

Entries are keyed by the kernel's StableHLO text, its compile options, the jax/jaxlib versions
and the device, so an upgrade or another machine never loads a stale kernel. When the
directory grows beyond ``max_bytes`` the least recently used entries are deleted. A damaged or
unreadable entry is deleted and compiled again: the cache only ever changes speed, never
values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import tempfile
import threading
from typing import Any

import jax
import jaxlib

from jinit._errors import InitializerArgumentError

#: Environment variables read when :func:`set_kernel_cache` was not called.
ENV_DIR = "JINIT_KERNEL_CACHE_DIR"
ENV_MAX_MB = "JINIT_KERNEL_CACHE_MAX_MB"
#: Default size cap of the cache directory.
DEFAULT_MAX_BYTES = 64 * 2**20
_SUFFIX = ".jinitk"


@dataclasses.dataclass(frozen=True)
class KernelCache:
    """Where compiled kernels are kept, and the size cap of that directory."""

    path: pathlib.Path
    max_bytes: int = DEFAULT_MAX_BYTES


_explicit: list[KernelCache | None] = []  # empty: follow the environment
_stats = {"hits": 0, "misses": 0, "evicted": 0}
_lock = threading.Lock()


def set_kernel_cache(path: str | os.PathLike | None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Switches jinit's on-disk kernel cache on (a directory) or off (``None``).

    Without this call, the ``JINIT_KERNEL_CACHE_DIR`` environment variable (and
    ``JINIT_KERNEL_CACHE_MAX_MB``) decide. Values never depend on the cache, only the time
    of a process's first initialization does.

    Args:
      path: a directory (created if missing), or ``None`` to switch the cache off.
      max_bytes: the most bytes the directory may hold; older entries are deleted beyond it.

    Raises:
      InitializerArgumentError: if ``max_bytes`` is not a positive int.

    Examples:
      >>> import tempfile, jinit
      >>> jinit.set_kernel_cache(tempfile.mkdtemp(), max_bytes=16 * 2**20)
      >>> jinit.set_kernel_cache(None)
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise InitializerArgumentError(
            f"set_kernel_cache: max_bytes must be a positive int; got max_bytes={max_bytes!r}.")
    with _lock:
        _explicit[:] = [None if path is None else KernelCache(
            pathlib.Path(path).expanduser(), max_bytes)]


def reset_kernel_cache() -> None:
    """Forgets :func:`set_kernel_cache`: the environment variables decide again."""
    with _lock:
        _explicit.clear()


def current() -> KernelCache | None:
    """The cache in effect, or ``None`` when it is off."""
    if _explicit:
        return _explicit[0]
    where = os.environ.get(ENV_DIR, "").strip()
    if not where:
        return None
    try:
        cap = int(float(os.environ.get(ENV_MAX_MB, "")) * 2**20)
    except ValueError:
        cap = DEFAULT_MAX_BYTES
    return KernelCache(pathlib.Path(where).expanduser(), max(cap, 1))


def info() -> dict[str, Any]:
    """``{"path", "max_bytes", "entries", "bytes", "hits", "misses", "evicted"}``."""
    cache = current()
    files = _entries(cache.path) if cache is not None else []
    return {"path": None if cache is None else str(cache.path),
            "max_bytes": None if cache is None else cache.max_bytes,
            "entries": len(files), "bytes": sum(size for _, size, _ in files), **_stats}


def _entries(path: pathlib.Path) -> list[tuple[float, int, pathlib.Path]]:
    out = []
    try:
        for f in path.glob("*" + _SUFFIX):
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((st.st_mtime, st.st_size, f))
    except OSError:
        pass
    return sorted(out, reverse=True)


def _evict(cache: KernelCache) -> None:
    total = 0
    for _, size, f in _entries(cache.path):
        total += size
        if total > cache.max_bytes:
            try:
                f.unlink()
                _stats["evicted"] += 1
            except OSError:
                pass


def _entry_name(lowered: Any, options: dict[str, Any]) -> str:
    device = jax.devices()[0]
    ident = "\n".join([jax.__version__, jaxlib.__version__, device.platform,
                       getattr(device, "device_kind", ""), device.client.platform_version,
                       repr(sorted(options.items())), lowered.as_text()])
    return hashlib.sha256(ident.encode()).hexdigest()[:40] + _SUFFIX


def compile(lowered: Any, options: dict[str, Any] | None = None) -> Any:
    """``lowered.compile(compiler_options=options)``, through the on-disk cache when it is on."""
    from jax.experimental import serialize_executable as ser

    options = options or {}
    cache = current()
    if cache is None:
        return lowered.compile(compiler_options=options)
    entry = cache.path / _entry_name(lowered, options)
    try:
        blob = entry.read_bytes()
        compiled = ser.deserialize_and_load(blob, lowered.in_tree, lowered.out_tree)
        os.utime(entry)
        _stats["hits"] += 1
        return compiled
    except FileNotFoundError:
        pass
    except Exception:  # noqa: BLE001 - a damaged entry is replaced
        entry.unlink(missing_ok=True)
    compiled = lowered.compile(compiler_options=options)
    _stats["misses"] += 1
    try:
        blob, _, _ = ser.serialize(compiled)
        cache.path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache.path, suffix=".tmp", delete=False) as f:
            f.write(blob)
        os.replace(f.name, entry)
        _evict(cache)
    except OSError:
        pass  # a read-only or full disk only costs the next process a compile
    return compiled
