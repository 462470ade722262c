"""Layouts as data: small invertible operations on a layer's named parameter slots.

A conversion rule (``interop/_layers.py``) is a tuple of the operations below. Each one reads
and writes named *slots* of an environment (``{"kernel": array, "bias": array}``), so one rule
describes a whole layer, including gate concatenations and bias splits that span several
leaves. The same tuple is

* applied to arrays of any library (NumPy, JAX, torch; a torch view stays a view),
* applied to :class:`Spec` (shape and dtype only) to check a conversion before any data moves,
* inverted generically: :func:`invert` replays the rule on shapes, then undoes each operation
  in reverse order with the shapes it recorded.

Nothing here reshapes "to fit": an operation that does not fit the shapes it is given raises
:class:`~jinit.ShapeError`, and the result is compared with the target's shapes exactly.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from jinit._errors import RuleError, ShapeError

Env = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Spec:
    """Shape and dtype of a slot, used to check and describe a rule without any data.

    Examples:
      >>> from jinit.interop._layouts import Spec
      >>> Spec((3, 4), "float32")
      Spec(shape=(3, 4), dtype='float32')
    """

    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def ndim(self) -> int:
        return len(self.shape)


# --- array namespaces -------------------------------------------------------------------------


class _Ops(abc.ABC):
    """The handful of array functions the operations need, for one array library."""

    @abc.abstractmethod
    def permute(self, x, axes): ...

    @abc.abstractmethod
    def flip(self, x, axes): ...

    @abc.abstractmethod
    def reshape(self, x, shape): ...

    @abc.abstractmethod
    def concat(self, xs, axis): ...

    @abc.abstractmethod
    def stack(self, xs, axis): ...

    @abc.abstractmethod
    def zeros_like(self, x): ...

    @abc.abstractmethod
    def add(self, a, b): ...

    def take(self, x, axis, start, stop):
        idx = [slice(None)] * len(self.shape(x))
        idx[axis] = slice(start, stop)
        return x[tuple(idx)]

    def shape(self, x) -> tuple[int, ...]:
        return tuple(int(d) for d in x.shape)


class _SpecOps(_Ops):
    """Shape arithmetic on :class:`Spec`; raises ShapeError where the real op would fail."""

    def permute(self, x, axes):
        return Spec(tuple(x.shape[a] for a in axes), x.dtype)

    def flip(self, x, axes):
        return x

    def reshape(self, x, shape):
        if math.prod(shape) != math.prod(x.shape):
            raise ShapeError(f"cannot reshape {x.shape} to {tuple(shape)}")
        return Spec(tuple(shape), x.dtype)

    def concat(self, xs, axis):
        first = xs[0]
        for x in xs[1:]:
            rest = [d for i, d in enumerate(x.shape) if i != axis]
            want = [d for i, d in enumerate(first.shape) if i != axis]
            if x.ndim != first.ndim or rest != want or x.dtype != first.dtype:
                raise ShapeError(
                    f"cannot concatenate {[s.shape for s in xs]} along axis {axis}: the other "
                    "axes (and dtypes) must agree"
                )
        size = sum(x.shape[axis] for x in xs)
        return Spec(first.shape[:axis] + (size,) + first.shape[axis + 1 :], first.dtype)

    def stack(self, xs, axis):
        if any(x.shape != xs[0].shape or x.dtype != xs[0].dtype for x in xs):
            raise ShapeError(f"cannot stack {[s.shape for s in xs]}: shapes must be equal")
        return Spec(xs[0].shape[:axis] + (len(xs),) + xs[0].shape[axis:], xs[0].dtype)

    def zeros_like(self, x):
        return x

    def add(self, a, b):
        if a.shape != b.shape:
            raise ShapeError(f"cannot add {a.shape} and {b.shape}")
        return a

    def take(self, x, axis, start, stop):
        return Spec(x.shape[:axis] + (stop - start,) + x.shape[axis + 1 :], x.dtype)


class _ArrayApiOps(_Ops):
    """NumPy, JAX and any other array-API namespace."""

    def __init__(self, xp):
        self.xp = xp

    def permute(self, x, axes):
        return self.xp.permute_dims(x, tuple(axes))

    def flip(self, x, axes):
        return self.xp.flip(x, axis=tuple(axes))

    def reshape(self, x, shape):
        return self.xp.reshape(x, tuple(shape))

    def concat(self, xs, axis):
        return self.xp.concat(list(xs), axis=axis)

    def stack(self, xs, axis):
        return self.xp.stack(list(xs), axis=axis)

    def zeros_like(self, x):
        return self.xp.zeros_like(x)

    def add(self, a, b):
        return a + b


class _TorchOps(_Ops):
    """torch: permute and reshape return views where torch can (zero-copy)."""

    def __init__(self):
        import torch

        self.torch = torch

    def permute(self, x, axes):
        return x.permute(*axes)

    def flip(self, x, axes):
        return self.torch.flip(x, dims=tuple(axes))

    def reshape(self, x, shape):
        return x.reshape(tuple(shape))

    def concat(self, xs, axis):
        return self.torch.cat(list(xs), dim=axis)

    def stack(self, xs, axis):
        return self.torch.stack(list(xs), dim=axis)

    def zeros_like(self, x):
        return self.torch.zeros_like(x)

    def add(self, a, b):
        return a + b


_SPEC_OPS = _SpecOps()


def ops_for(x: Any) -> _Ops:
    """The operation namespace for an array: Spec, torch tensor, or any array-API array."""
    if isinstance(x, Spec):
        return _SPEC_OPS
    if type(x).__module__.split(".")[0] == "torch":
        return _TorchOps()
    ns = getattr(x, "__array_namespace__", None)
    if ns is None:
        raise RuleError(f"no array namespace for {type(x).__name__}: pass NumPy, JAX or torch arrays")
    return _ArrayApiOps(ns())


# --- operations -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Op(abc.ABC):
    """One invertible step of a conversion rule.

    ``apply`` transforms the environment in place. ``invert`` undoes it, given the specs the
    op's input slots had before it ran (recorded by :func:`trace`). ``copies`` says whether
    the op always materialises a new buffer (flip, concat) rather than a view (permute).
    """

    copies: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def reads(self) -> tuple[str, ...]:
        """The slots the op consumes."""

    @abc.abstractmethod
    def apply(self, env: Env, ops: _Ops) -> None: ...

    @abc.abstractmethod
    def invert(self, env: Env, ops: _Ops, before: Mapping[str, Spec]) -> None: ...

    @abc.abstractmethod
    def describe(self) -> str: ...

    def present(self, env: Env) -> bool:
        """Whether the op runs: all its inputs are present, or none is (then it is skipped)."""
        have = [r in env for r in self.reads]
        if all(have):
            return True
        if any(have):
            missing = [r for r, h in zip(self.reads, have, strict=False) if not h]
            raise ShapeError(f"{self.describe()} needs slots {missing}, which are absent")
        return False


def _check_axes(op: Op, axes: Sequence[int], ndim: int, slot: str) -> None:
    if any(not -ndim <= a < ndim for a in axes):
        raise ShapeError(f"{op.describe()}: axes {tuple(axes)} out of range for {slot!r} of rank {ndim}")


@dataclasses.dataclass(frozen=True)
class Rename(Op):
    """Moves slot ``src`` to ``dst`` (``kernel`` -> ``weight``)."""

    src: str
    dst: str

    @property
    def reads(self):
        return (self.src,)

    def apply(self, env, ops):
        env[self.dst] = env.pop(self.src)

    def invert(self, env, ops, before):
        env[self.src] = env.pop(self.dst)

    def describe(self):
        return f"rename {self.src}->{self.dst}"


@dataclasses.dataclass(frozen=True)
class Permute(Op):
    """Permutes the axes of one slot (a view in torch; a copy for compact-only targets)."""

    slot: str
    axes: tuple[int, ...]

    @property
    def reads(self):
        return (self.slot,)

    def apply(self, env, ops):
        x = env[self.slot]
        nd = len(ops.shape(x))
        if len(self.axes) != nd:
            raise ShapeError(f"{self.describe()}: {self.slot!r} has rank {nd}, expected {len(self.axes)}")
        _check_axes(self, self.axes, nd, self.slot)
        env[self.slot] = ops.permute(x, self.axes)

    def invert(self, env, ops, before):
        inv = tuple(sorted(range(len(self.axes)), key=lambda i: self.axes[i]))
        env[self.slot] = ops.permute(env[self.slot], inv)

    def describe(self):
        return f"permute{self.axes}" if self.axes != (1, 0) else "transpose"


@dataclasses.dataclass(frozen=True)
class Flip(Op):
    """Reverses the given axes of one slot (spatial flip of a transposed-conv kernel): a copy."""

    slot: str
    axes: tuple[int, ...]
    copies: ClassVar[bool] = True

    @property
    def reads(self):
        return (self.slot,)

    def apply(self, env, ops):
        _check_axes(self, self.axes, len(ops.shape(env[self.slot])), self.slot)
        env[self.slot] = ops.flip(env[self.slot], self.axes)

    def invert(self, env, ops, before):
        env[self.slot] = ops.flip(env[self.slot], self.axes)

    def describe(self):
        return f"flip{self.axes}"


@dataclasses.dataclass(frozen=True)
class Merge(Op):
    """Merges the contiguous axes ``[start, stop)`` of one slot into one (``(E,H,D)->(E,H*D)``)."""

    slot: str
    start: int
    stop: int

    @property
    def reads(self):
        return (self.slot,)

    def apply(self, env, ops):
        s = ops.shape(env[self.slot])
        if not 0 <= self.start < self.stop <= len(s):
            raise ShapeError(f"{self.describe()}: {self.slot!r} has rank {len(s)}")
        new = s[: self.start] + (math.prod(s[self.start : self.stop]),) + s[self.stop :]
        env[self.slot] = ops.reshape(env[self.slot], new)

    def invert(self, env, ops, before):
        env[self.slot] = ops.reshape(env[self.slot], before[self.slot].shape)

    def describe(self):
        return f"merge axes {self.start}..{self.stop - 1}"


@dataclasses.dataclass(frozen=True)
class Reshape(Op):
    """Reshapes one slot to ``shape`` (one entry may be -1): a bias ``(n,)`` stored as ``(1, n)``.

    The inverse restores the shape the slot had before.
    """

    slot: str
    shape: tuple[int, ...]

    @property
    def reads(self):
        return (self.slot,)

    def apply(self, env, ops):
        s = ops.shape(env[self.slot])
        known = math.prod(d for d in self.shape if d != -1)
        shape = tuple(math.prod(s) // known if d == -1 and known else d for d in self.shape)
        if self.shape.count(-1) > 1 or math.prod(shape) != math.prod(s):
            raise ShapeError(f"{self.describe()}: {self.slot!r} has shape {s}")
        env[self.slot] = ops.reshape(env[self.slot], shape)

    def invert(self, env, ops, before):
        env[self.slot] = ops.reshape(env[self.slot], before[self.slot].shape)

    def describe(self):
        return f"reshape{self.shape}"


@dataclasses.dataclass(frozen=True)
class Concat(Op):
    """Concatenates slots ``srcs`` (in order) along ``axis`` into ``dst``: a copy.

    Gate order conversions are written as the order of ``srcs``; the inverse splits ``dst``
    back into the sizes recorded for each source.
    """

    dst: str
    srcs: tuple[str, ...]
    axis: int = 0
    copies: ClassVar[bool] = True

    @property
    def reads(self):
        return self.srcs

    def apply(self, env, ops):
        env[self.dst] = ops.concat([env.pop(s) for s in self.srcs], self.axis)

    def invert(self, env, ops, before):
        x = env.pop(self.dst)
        start = 0
        for s in self.srcs:
            size = before[s].shape[self.axis]
            env[s] = ops.take(x, self.axis, start, start + size)
            start += size
        if start != ops.shape(x)[self.axis]:
            raise ShapeError(f"{self.describe()}: {self.dst!r} has {ops.shape(x)[self.axis]} rows, expected {start}")

    def describe(self):
        return f"concat[{','.join(self.srcs)}](axis={self.axis})"


@dataclasses.dataclass(frozen=True)
class Stack(Op):
    """Stacks equally shaped slots along a new ``axis`` into ``dst`` (Keras GRU bias ``(2, 3u)``)."""

    dst: str
    srcs: tuple[str, ...]
    axis: int = 0
    copies: ClassVar[bool] = True

    @property
    def reads(self):
        return self.srcs

    def apply(self, env, ops):
        env[self.dst] = ops.stack([env.pop(s) for s in self.srcs], self.axis)

    def invert(self, env, ops, before):
        x = env.pop(self.dst)
        for i, s in enumerate(self.srcs):
            part = ops.take(x, self.axis, i, i + 1)
            env[s] = ops.reshape(part, before[s].shape)

    def describe(self):
        return f"stack[{','.join(self.srcs)}](axis={self.axis})"


@dataclasses.dataclass(frozen=True)
class ZeroPartner(Op):
    """Adds slot ``dst`` = zeros like ``src``: one bias split into two (torch ``b_ih + b_hh``).

    The inverse folds the partner back: ``src = src + dst``, which is exact when ``dst`` is
    zero (a round trip) and the right sum when the other framework trained both biases.
    """

    src: str
    dst: str
    copies: ClassVar[bool] = True

    @property
    def reads(self):
        return (self.src,)

    def apply(self, env, ops):
        env[self.dst] = ops.zeros_like(env[self.src])

    def invert(self, env, ops, before):
        env[self.src] = ops.add(env[self.src], env.pop(self.dst))

    def describe(self):
        return f"zeros {self.dst} (sum into {self.src})"


Rule = tuple[Op, ...]


# --- running rules ----------------------------------------------------------------------------


def _run(rule: Rule, env: Mapping[str, Any], on_step: Callable[[Op, Env], None] | None = None) -> Env:
    env = dict(env)
    if not env:
        return env
    ops = ops_for(next(iter(env.values())))
    for op in rule:
        if not op.present(env):
            continue
        if on_step is not None:
            on_step(op, env)
        op.apply(env, ops)
    return env


def apply(rule: Rule, env: Mapping[str, Any]) -> Env:
    """Applies a rule to a slot environment; returns a new environment.

    Args:
      rule: a tuple of operations.
      env: slot name -> array (NumPy, JAX, torch) or :class:`Spec`; all of one library.

    Returns:
      The converted slots. Slots an op does not touch pass through unchanged (same object).

    Raises:
      ShapeError: an operation does not fit its input (rank, axes, concatenation sizes).

    Examples:
      >>> import numpy as np
      >>> from jinit.interop import _layouts as L
      >>> rule = (L.Rename("kernel", "weight"), L.Permute("weight", (1, 0)))
      >>> L.apply(rule, {"kernel": np.zeros((4, 8))})["weight"].shape
      (8, 4)
    """
    return _run(rule, env)


def trace(rule: Rule, specs: Mapping[str, Spec]) -> list[dict[str, Spec]]:
    """The input specs of every op that runs, in order (``{}`` for skipped ops)."""
    seen: dict[int, dict[str, Spec]] = {}

    def record(op, env):
        seen[id(op)] = {r: env[r] for r in op.reads}

    _run(rule, specs, record)
    return [seen.get(id(op), {}) for op in rule]


def invert(rule: Rule, env: Mapping[str, Any], source_specs: Mapping[str, Spec]) -> Env:
    """Undoes a rule: from converted slots back to the source slots.

    Args:
      rule: the rule that converts source slots to ``env``'s slots.
      env: converted slot arrays (e.g. read from a torch module).
      source_specs: shapes/dtypes of the source slots (e.g. from a ``like=`` Flax tree); used
        to replay the rule and recover split sizes.

    Raises:
      ShapeError: ``env`` does not have the shapes the rule produces from ``source_specs``.

    Examples:
      >>> import numpy as np
      >>> from jinit.interop import _layouts as L
      >>> rule = (L.Rename("kernel", "weight"), L.Permute("weight", (1, 0)))
      >>> w = np.arange(6, dtype=np.float32).reshape(3, 2)
      >>> L.invert(rule, {"weight": w}, {"kernel": L.Spec((2, 3))})["kernel"].shape
      (2, 3)
    """
    expected = apply(rule, source_specs)
    check_fits(expected, {k: spec_of(v) for k, v in env.items()}, what="model")
    befores = trace(rule, source_specs)
    out = dict(env)
    if not out:
        return out
    ops = ops_for(next(iter(out.values())))
    for op, before in zip(reversed(rule), reversed(befores), strict=False):
        if before:
            op.invert(out, ops, before)
    return out


def spec_of(x: Any) -> Spec:
    """The :class:`Spec` of an array of any library (dtype as its short string name)."""
    if isinstance(x, Spec):
        return x
    dtype = getattr(x, "dtype", None)
    name = getattr(dtype, "name", None) or str(dtype).replace("torch.", "")
    return Spec(tuple(int(d) for d in x.shape), name)


def check_fits(
    got: Mapping[str, Spec], want: Mapping[str, Spec], *, what: str = "target", check_dtype: bool = True
) -> list[str]:
    """Compares converted specs with a target's specs exactly; raises ShapeError listing all.

    Returns the sorted slot names on success. Shapes must be equal (no reshape to fit); a
    wrong layout with the same number of elements fails here.
    """
    problems = []
    for name in sorted(set(got) | set(want)):
        if name not in want:
            problems.append(f"{name!r}: produced by the rule but absent from the {what}")
        elif name not in got:
            problems.append(f"{name!r}: expected by the {what} but the rule does not produce it")
        elif got[name].shape != want[name].shape:
            problems.append(f"{name!r}: shape {got[name].shape} after conversion, {what} has {want[name].shape}")
        elif check_dtype and got[name].dtype != want[name].dtype:
            problems.append(f"{name!r}: dtype {got[name].dtype}, {what} has {want[name].dtype}")
    if problems:
        raise ShapeError("; ".join(problems))
    return sorted(want)


def lineage(rule: Rule, specs: Mapping[str, Spec]) -> dict[str, tuple[tuple[str, ...], str, bool]]:
    """For each output slot: (source slots, transform text, whether it needs a copy).

    Examples:
      >>> from jinit.interop import _layouts as L
      >>> rule = (L.Rename("kernel", "weight"), L.Permute("weight", (1, 0)))
      >>> L.lineage(rule, {"kernel": L.Spec((2, 3)), "bias": L.Spec((3,))})["weight"]
      (('kernel',), 'rename kernel->weight; transpose', False)
    """
    info: dict[str, tuple[tuple[str, ...], list[str], bool]] = {k: ((k,), [], False) for k in specs}

    def record(op, env):
        srcs = tuple(s for r in op.reads for s in info[r][0])
        steps = [t for r in op.reads for t in info[r][1]] + [op.describe()]
        copies = op.copies or any(info[r][2] for r in op.reads)
        if isinstance(op, Rename):
            info[op.dst] = info.pop(op.src)
            info[op.dst][1].append(op.describe())
        elif isinstance(op, (Concat, Stack)):
            for r in op.reads:
                info.pop(r)
            info[op.dst] = (srcs, [op.describe()], True)
        elif isinstance(op, ZeroPartner):
            info[op.dst] = (srcs, [op.describe()], True)
        else:
            info[op.reads[0]] = (srcs, steps, copies)

    _run(rule, specs, record)
    return {k: (v[0], "; ".join(v[1]) or "identity", v[2]) for k, v in info.items()}


def slots(rule: Rule) -> set[str]:
    """Every slot name a rule mentions (reads or writes)."""
    out: set[str] = set()
    for op in rule:
        out.update(op.reads)
        for f in ("dst", "slot"):
            if hasattr(op, f):
                out.add(getattr(op, f))
    return out


def conv_to_channels_first(n: int) -> tuple[int, ...]:
    """Permutation ``(*k, I, O) -> (O, I, *k)`` for an ``n``-D Flax/Keras conv kernel.

    Examples:
      >>> from jinit.interop._layouts import conv_to_channels_first
      >>> conv_to_channels_first(2), conv_to_channels_first(3)
      ((3, 2, 0, 1), (4, 3, 0, 1, 2))
    """
    return (n + 1, n) + tuple(range(n))


def swap_last_two(n: int) -> tuple[int, ...]:
    """Permutation ``(*k, A, B) -> (*k, B, A)`` for an ``n``-D kernel."""
    return tuple(range(n)) + (n + 1, n)


def spatial(n: int, offset: int = 0) -> tuple[int, ...]:
    """The ``n`` spatial axes, starting at ``offset``."""
    return tuple(range(offset, offset + n))
