"""The ``jax.nn.initializers``-compatible core.

Every initializer is a frozen dataclass (readable repr, hashable, validated at construction)
deriving from :class:`Initializer`. The base class owns what all of them share: shape and dtype
checks with clear errors, the dtype default, and sampling 8/16-bit floats in float32 before
casting. A subclass only implements ``_sample``.

For float32/float64 every shared name returns values bit-identical to ``jax.nn.initializers``
for the same key: ``_sample`` performs the same operations in the same order.
"""

from __future__ import annotations

import abc
import contextvars
import dataclasses
import functools
import math
import numbers
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jinit import _random
from jinit._errors import DTypeError, InitializerArgumentError, ShapeError
from jinit._fans import compute_fans
from jinit._typing import Axes, DTypeLike, OutSharding, PRNGKey, Shape

_TRUNC_STD = 0.87962566103423978  # std of N(0, 1) truncated to (-2, 2)
_COMPLEX_TRUNC_STD = 0.95311164380491208  # the same for the complex normal, |z| < 2

Mode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution = Literal["truncated_normal", "normal", "uniform"]
MODES: tuple[str, ...] = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS: tuple[str, ...] = ("truncated_normal", "normal", "uniform")


def default_float_dtype() -> np.dtype:
    """float64 when ``jax_enable_x64`` is on, else float32 (as ``jax.nn.initializers``)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


#: The most elements a shape may have. XLA sizes every buffer, and the sum of the buffers a
#: program keeps live, in signed 64-bit bytes, and aborts the process (it does not raise) when
#: that overflows: ``jnp.zeros((2**61,), jnp.float32)`` or a complex128 truncated normal of
#: 2**57 elements kills Python during compilation. jinit's widest program (a complex128
#: truncated normal) keeps under 128 bytes live per element, so 2**50 elements leave a margin of
#: 64x for combinators; it is also 4 PiB of float32, far past any device.
MAX_ELEMENTS: int = 2**50


def _unsupported_dtype(dtype: np.dtype) -> str | None:
    """Why JAX cannot hold ``dtype`` (strings, objects, records, long doubles), or ``None``."""
    if dtype == np.bool_:
        return None
    if not jnp.issubdtype(dtype, jnp.number):
        return "JAX arrays hold numbers and bools only"
    if dtype.type in (np.longdouble, np.clongdouble) and dtype not in (np.float64, np.complex128):
        return "JAX has no extended-precision (long double) arrays"
    return None


def as_dtype(dtype: DTypeLike, owner: object) -> np.dtype:
    """``np.dtype(dtype)`` of a dtype JAX supports, raising :class:`DTypeError` naming ``owner``."""
    try:
        out = np.dtype(dtype)
    except (TypeError, ValueError) as e:
        raise DTypeError(f"{owner!r} got dtype={dtype!r}, which is not a dtype: {e}") from e
    why = _unsupported_dtype(out)
    if why is not None:
        raise DTypeError(f"{owner!r} got dtype={dtype!r}: {why}; pass e.g. jnp.float32.")
    return out


def _dim(d: Any) -> int:
    if isinstance(d, (bool, np.bool_)):
        raise TypeError("a bool is not a dimension or an axis")
    return operator.index(d)


def check_key(key: Any, owner: object) -> None:
    """Raises :class:`InitializerArgumentError` unless ``key`` is a PRNG key (typed, or the raw
    ``uint32`` data of ``jax.random.PRNGKey``), before JAX fails on it with a bare error."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (jnp.issubdtype(dtype, jax.dtypes.prng_key) or dtype == np.uint32):
        return
    raise InitializerArgumentError(
        f"{owner!r} needs a PRNG key as its first argument, e.g. jax.random.key(0); got "
        f"key={key!r}.")


def canonical_shape(shape: Shape, owner: object) -> tuple[int, ...]:
    """Returns ``shape`` as a tuple of non-negative ints, or raises :class:`ShapeError`.

    Shapes of more than :data:`MAX_ELEMENTS` elements are refused here, before anything is
    traced or compiled (XLA would abort the process on the largest ones).
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(_dim(d) for d in shape)
    except TypeError as e:
        raise ShapeError(
            f"{owner!r} needs a shape that is a sequence of ints; got {shape!r}.") from e
    if any(d < 0 for d in dims):
        raise ShapeError(f"{owner!r} got shape {dims} with a negative dimension.")
    size = math.prod(d for d in dims if d)  # a zero dimension does not shrink XLA's extents
    if size > MAX_ELEMENTS:
        raise ShapeError(
            f"{owner!r} got shape {dims} with {size:.3g} elements; XLA cannot compile arrays "
            f"of more than 2**50 = {MAX_ELEMENTS:.3g} elements (4 PiB of float32). Check the "
            "shape for a mistake, or initialize the weight in smaller pieces.")
    return dims


# --- hyper-parameter validation --------------------------------------------------------------
#
# Every field of every Initializer dataclass is checked at construction by _check_fields (the
# base class appends it to each subclass's __post_init__), so a new initializer or combinator
# gets the checks without writing them: numbers must be real (not complex), finite, not bools
# (except in fields annotated ``bool``). A field opts out with ``param(complex=True)`` or
# ``param(nonfinite=True)`` metadata. Quantities derived from the arguments (a gain squared,
# a range width) are computed through derived(), which names the arguments when they overflow.

_ALLOW_COMPLEX = "jinit_allow_complex"
_ALLOW_NONFINITE = "jinit_allow_nonfinite"


def param(default: Any, *, complex: bool = False, nonfinite: bool = False) -> Any:
    """A dataclass field whose number may be complex and/or non-finite (e.g. a constant fill)."""
    return dataclasses.field(default=default,
                             metadata={_ALLOW_COMPLEX: complex, _ALLOW_NONFINITE: nonfinite})


def _is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _number_error(owner: str, label: str, value: Any, problem: str, fix: str
                  ) -> InitializerArgumentError:
    return InitializerArgumentError(f"{owner}: {label} {problem}; got {label}={value!r}. {fix}")


def _check_number(owner: str, label: str, value: Any, *, allow_bool: bool = False,
                  allow_complex: bool = False, allow_nonfinite: bool = False) -> Any:
    """Checks one field value (recursing into tuples); returns it with 0-d arrays as scalars."""
    if _is_traced(value) or callable(value) or isinstance(value, (str, bytes)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        items = [_check_number(owner, f"{label}[{i}]", v, allow_bool=allow_bool,
                               allow_complex=allow_complex, allow_nonfinite=allow_nonfinite)
                 for i, v in enumerate(value)]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else type(
            value)(items)
    if isinstance(value, (np.ndarray, jax.Array)):
        if np.ndim(value) != 0:
            return value  # arrays are for constants; scalar fields say "must be a scalar"
        value = np.asarray(value).item()  # hashable, and the same number
    if isinstance(value, (bool, np.bool_)):
        if not allow_bool:
            raise _number_error(owner, label, value, "must be a number, not a bool",
                                "Pass a number such as 1 or 0.5 (bools usually mean swapped "
                                "arguments).")
        return value
    if not isinstance(value, (numbers.Number, np.number)):
        return value
    if isinstance(value, (complex, np.complexfloating)):
        if not allow_complex:
            raise _number_error(
                owner, label, value, "must be a real number, not complex",
                "Hyper-parameters are real; for complex weights pass a complex dtype "
                "(e.g. jnp.complex64) to the call.")
        finite = math.isfinite(value.real) and math.isfinite(value.imag)
    else:
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
    if not finite and not allow_nonfinite:
        raise _number_error(owner, label, value, "must be finite",
                            "Pass a finite number that fits in a float64.")
    return value


def _check_fields(init: Initializer) -> None:
    owner = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(init).__name__).lower()  # Normal: normal
    for f in dataclasses.fields(init):
        value = getattr(init, f.name)
        checked = _check_number(
            owner, f.name, value, allow_bool=f.type in (bool, "bool"),
            allow_complex=f.metadata.get(_ALLOW_COMPLEX, False),
            allow_nonfinite=f.metadata.get(_ALLOW_NONFINITE, False))
        if checked is not value:
            object.__setattr__(init, f.name, checked)


def derived(owner: str, args: dict[str, Any], what: str, compute: Callable[[], Any]) -> float:
    """``compute()``, a float derived from the arguments ``args``; raises naming them when it
    overflows (``OverflowError``, or an infinite or NaN result) instead of leaking the error.

    Examples:
      >>> from jinit._initializers import derived
      >>> derived("xavier_uniform", {"gain": 2.0}, "gain**2", lambda: 2.0 ** 2)
      4.0
    """
    if any(_is_traced(v) for v in args.values()):
        return compute()
    try:
        with np.errstate(over="raise", invalid="raise"):
            value = float(compute())
    except (OverflowError, FloatingPointError, ZeroDivisionError) as e:
        cause: BaseException | None = e
    else:
        if math.isfinite(value):
            return value
        cause = None
    got = ", ".join(f"{k}={v!r}" for k, v in args.items())
    raise InitializerArgumentError(
        f"{owner}: {what} is not a finite float64 for {got}; pass a smaller "
        f"{' / '.join(args)}.") from cause


def check_real(name: str, value: Any, *, owner: str, positive: bool = False,
               nonnegative: bool = False) -> None:
    """Validates a scalar hyperparameter: a finite real number, not a bool (tracers pass)."""
    if _is_traced(value):
        return
    if isinstance(value, (list, tuple)) or np.ndim(value) != 0:
        raise InitializerArgumentError(f"{owner}: {name} must be a scalar; got {name}={value!r}.")
    x = _check_number(owner, name, value)
    if not isinstance(x, (numbers.Real, np.floating, np.integer)):
        raise InitializerArgumentError(f"{owner}: {name} must be a number; got {name}={value!r}.")
    if positive and not x > 0:
        raise InitializerArgumentError(f"{owner}: {name} must be > 0; got {name}={value!r}.")
    if nonnegative and not x >= 0:
        raise InitializerArgumentError(f"{owner}: {name} must be >= 0; got {name}={value!r}.")


#: The dtype a call returns while ``_sample`` works in a wider one (8/16-bit floats).
_OUT_DTYPE: contextvars.ContextVar[np.dtype | None] = contextvars.ContextVar(
    "jinit_out_dtype", default=None)
#: An upper bound of ``|z|`` for ``z = jax.random.normal(...)``: ``sqrt(2) * erfinv(u)`` with
#: ``|u| <= 1 - 2**-53`` is at most 8.3 in float64 (5.4 in float32).
NORMAL_REACH = 9.0


def as_param(owner: object, name: str, value: Any, dtype: np.dtype, *, arg: str | None = None,
             reach: float = 1.0) -> jax.Array:
    """``jnp.asarray(value, dtype)`` for a hyper-parameter used in the computation.

    Raises :class:`DTypeError` naming it when ``value * reach`` (the largest magnitude it
    produces, e.g. ``stddev`` times the largest normal draw) does not fit ``dtype``, or the
    narrower dtype the call returns: ``stddev=1e39`` in float32 would make every value
    infinite, ``constant(300)`` in uint8 would wrap around to 44.
    """
    if not _is_traced(value) and not isinstance(value, jax.Array):
        check_fits(owner, name, value, dtype, arg=arg, reach=reach)
        out = _OUT_DTYPE.get()
        if out is not None and out != dtype:
            check_fits(owner, name, value, out, arg=arg, reach=reach)
    return jnp.asarray(value, dtype)


def check_fits(owner: object, name: str, value: Any, dtype: np.dtype, *,
                arg: str | None = None, reach: float = 1.0) -> None:
    if dtype == np.bool_:
        return
    host = np.asarray(value)
    if host.dtype == object:  # e.g. a Python int beyond int64
        try:
            host = host.astype(np.complex128 if np.iscomplexobj(host) else np.float64)
        except (OverflowError, TypeError, ValueError) as e:
            raise DTypeError(f"{owner!r}: {name}={value!r} does not fit in {dtype}; pass a "
                             f"smaller {arg or name}.") from e
    if jnp.issubdtype(host.dtype, jnp.complexfloating) and not jnp.issubdtype(
            dtype, jnp.complexfloating):
        raise DTypeError(f"{owner!r}: {name}={value!r} is complex but the dtype {dtype} is "
                         "real; pass a complex dtype such as jnp.complex64.")
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        if host.size and jnp.issubdtype(host.dtype, jnp.number) and not jnp.issubdtype(
                host.dtype, jnp.complexfloating):
            lo, hi = host.min(), host.max()
            fits = info.min <= lo and hi <= info.max and (
                not jnp.issubdtype(host.dtype, jnp.floating) or bool(np.isfinite(host).all()))
        else:
            fits = True
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            cast = (host * reach).astype(dtype)
        fits = bool(np.isfinite(cast).all()) or not bool(np.isfinite(host).all())
    if not fits:
        times = "" if reach == 1 else f" times {reach:g} (its largest draw)"
        raise DTypeError(
            f"{owner!r}: {name}={value!r}{times} does not fit in {dtype} (it would become "
            f"{'infinite' if jnp.issubdtype(dtype, jnp.inexact) else 'a wrapped-around integer'}"
            f"); pass a wider dtype or a smaller {arg or name}.")


def check_choice(name: str, value: Any, choices: Sequence[str], *, owner: str) -> None:
    if value not in choices:
        raise InitializerArgumentError(
            f"{owner}: {name} must be one of {tuple(choices)}; got {name}={value!r}.")


def normalize_axes(name: str, axes: Axes, *, owner: str) -> Axes:
    """Ints stay ints; sequences become tuples (hashable); anything else raises."""
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, (bool, np.bool_)):
        return int(axes)
    try:
        out = tuple(_dim(a) for a in axes)
    except TypeError as e:
        raise InitializerArgumentError(
            f"{owner}: {name} must be an int or a sequence of ints; got {name}={axes!r}.") from e
    return out


def check_real_dtype(dtype: np.dtype, owner: object) -> None:
    """Raises :class:`DTypeError` for complex dtypes (for initializers that draw real numbers)."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise DTypeError(
            f"{owner!r} draws real numbers and cannot produce dtype {dtype}; pass a real floating "
            "dtype, or use jinit.normal, variance_scaling or orthogonal, which support complex.")


def place(x: jax.Array, out_sharding: OutSharding) -> jax.Array:
    """Constrains ``x`` to ``out_sharding`` (no-op for ``None``)."""
    if out_sharding is None:
        return x
    return jax.lax.with_sharding_constraint(x, out_sharding)


@dataclasses.dataclass(frozen=True)
class Initializer(abc.ABC):
    """Base class of every jinit initializer: ``(key, shape, dtype=None, out_sharding=None)``.

    Subclasses are frozen dataclasses that declare their hyperparameters (and a ``dtype``
    field, the default dtype when a call passes none) and implement :meth:`_sample`. The base
    class canonicalizes the shape, resolves the dtype, rejects integer dtypes for random
    initializers, enforces ``min_ndim``, and samples 8/16-bit float dtypes in float32 before
    casting (``jax.random`` sampling directly in bfloat16 yields only 128 distinct values).

    Every field is checked at construction, in subclasses too (after their own
    ``__post_init__``): a number must be real, finite, and not a bool unless the field is
    annotated ``bool``; 0-d arrays become scalars, so the initializer stays hashable. Bad values
    raise :class:`InitializerArgumentError` naming the field.

    Examples:
      A custom initializer is a dataclass with a ``_sample`` method:

      >>> import dataclasses, jax, jax.numpy as jnp, jinit
      >>> @dataclasses.dataclass(frozen=True)
      ... class Rademacher(jinit.Initializer):
      ...     dtype: object = None
      ...     def _sample(self, key, shape, dtype, out_sharding):
      ...         return jax.random.rademacher(key, shape, dtype)
      >>> Rademacher()(jax.random.key(0), (2, 3)).dtype
      dtype('float32')
    """

    #: Whether the initializer draws random numbers (it then needs an inexact dtype).
    random: ClassVar[bool] = True
    #: The smallest rank of shape it accepts.
    min_ndim: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is not None and not getattr(own, "_checks_fields", False):
            @functools.wraps(own)
            def __post_init__(self) -> None:
                own(self)  # the class's own checks first: their messages are more specific
                _check_fields(self)

            __post_init__._checks_fields = True  # type: ignore[attr-defined]
            cls.__post_init__ = __post_init__  # type: ignore[method-assign]

    def __post_init__(self) -> None:
        _check_fields(self)

    def __call__(
        self,
        key: PRNGKey,
        shape: Shape,
        dtype: DTypeLike | None = None,
        out_sharding: OutSharding = None,
    ) -> jax.Array:
        shape = canonical_shape(shape, self)
        if self.random:
            check_key(key, self)
        if dtype is None:
            dtype = getattr(self, "dtype", None)
        dtype = default_float_dtype() if dtype is None else as_dtype(dtype, self)
        if self.random and not jnp.issubdtype(dtype, jnp.inexact):
            raise DTypeError(
                f"{self!r} draws random floats and cannot produce dtype {dtype}; pass a "
                "floating or complex dtype (e.g. jnp.float32) and cast afterwards if needed.")
        if len(shape) < self.min_ndim:
            raise ShapeError(
                f"{self!r} needs a shape of at least {self.min_ndim} dimensions; got {shape}.")
        work = dtype
        if self.random and jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4:
            work = np.dtype(np.float32)
        if work == dtype:
            return self._sample(key, shape, work, out_sharding)
        token = _OUT_DTYPE.set(dtype)  # as_param checks the hyper-parameters fit it too
        try:
            return self._sample(key, shape, work, out_sharding).astype(dtype)
        finally:
            _OUT_DTYPE.reset(token)

    @abc.abstractmethod
    def _sample(self, key: PRNGKey, shape: tuple[int, ...], dtype: np.dtype,
                out_sharding: OutSharding) -> jax.Array:
        """Draws an array of ``shape`` and ``dtype`` (already canonicalized and checked)."""


@dataclasses.dataclass(frozen=True, repr=False)
class Constant(Initializer):
    """Fills the array with ``value`` (a scalar or an array broadcastable to the shape)."""

    value: Any = param(0.0, complex=True, nonfinite=True)  # -inf fills attention masks
    dtype: DTypeLike | None = None
    random: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.value, jax.core.Tracer):
            try:
                np.asarray(self.value) + 0
            except TypeError as e:
                raise InitializerArgumentError(
                    f"constant: value must be a number or an array; got {self.value!r}.") from e
            if np.ndim(self.value) > 0 :
                # Arrays are wrapped so the initializer stays hashable.
                object.__setattr__(self, "value", _ArrayValue(np.asarray(self.value)))

    def _sample(self, key, shape, dtype, out_sharding):
        value = self.value.array if isinstance(self.value, _ArrayValue) else self.value
        if np.ndim(value) > 0:
            try:
                fits = np.broadcast_shapes(np.shape(value), shape) == shape
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(
                    f"constant value of shape {np.shape(value)} cannot be broadcast to the "
                    f"requested shape {shape}.")
        return jnp.full(shape, as_param(self, "value", value, dtype), dtype=dtype,
                        out_sharding=out_sharding)

    def __repr__(self) -> str:
        if self.dtype is None and not isinstance(self.value, _ArrayValue):
            if self.value == 0:
                return "jinit.zeros"
            if self.value == 1:
                return "jinit.ones"
        return f"Constant(value={self.value!r}, dtype={self.dtype!r})"


@dataclasses.dataclass(frozen=True, eq=False)
class _ArrayValue:
    """A hashable, comparable wrapper of a constant array value."""

    array: np.ndarray

    def _key(self):
        return (self.array.shape, self.array.dtype.str, self.array.tobytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ArrayValue) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return np.array2string(self.array, threshold=8)


#: An initializer that returns zeros (the key is ignored). As ``jax.nn.initializers.zeros``.
zeros: Initializer = Constant(0.0)
#: An initializer that returns ones (the key is ignored). As ``jax.nn.initializers.ones``.
ones: Initializer = Constant(1.0)


def constant(value: Any, dtype: DTypeLike | None = None) -> Initializer:
    """Builds an initializer that returns arrays full of ``value``.

    Args:
      value: a scalar, or an array broadcastable to the requested shape.
      dtype: the default dtype when the call passes none.

    Returns:
      An initializer; integer and bool dtypes are allowed.

    Examples:
      >>> import jax, jinit
      >>> jinit.constant(-7)(jax.random.key(0), (2, 3)).tolist()
      [[-7.0, -7.0, -7.0], [-7.0, -7.0, -7.0]]
    """
    return Constant(value, dtype)


@dataclasses.dataclass(frozen=True)
class Uniform(Initializer):
    """``U[0, scale)``, as ``jax.nn.initializers.uniform`` (one-sided)."""

    scale: Any = 1e-2
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        check_real("scale", self.scale, owner="uniform", nonnegative=True)

    def _sample(self, key, shape, dtype, out_sharding):
        check_real_dtype(dtype, self)
        return _random.uniform(key, shape, dtype, out_sharding=out_sharding) * as_param(
            self, "scale", self.scale, dtype)


def uniform(scale: Any = 1e-2, dtype: DTypeLike | None = None) -> Initializer:
    """Builds an initializer drawing from ``U[0, scale)`` (as ``jax.nn.initializers.uniform``).

    Note the range is one-sided; for ``U(a, b)`` use :func:`jinit.compat.torch.uniform`.

    Args:
      scale: the upper bound (>= 0).
      dtype: the default dtype.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.uniform(10.0)(jax.random.key(0), (1000,))
      >>> bool(w.min() >= 0) and bool(w.max() < 10)
      True
    """
    return Uniform(scale, dtype)


@dataclasses.dataclass(frozen=True)
class Normal(Initializer):
    """``N(0, stddev²)``, as ``jax.nn.initializers.normal``."""

    stddev: Any = 1e-2
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        check_real("stddev", self.stddev, owner="normal", nonnegative=True)

    def _sample(self, key, shape, dtype, out_sharding):
        return _random.normal(key, shape, dtype, out_sharding=out_sharding) * as_param(
            self, "stddev", self.stddev, dtype, reach=NORMAL_REACH)


def normal(stddev: Any = 1e-2, dtype: DTypeLike | None = None) -> Initializer:
    """Builds an initializer drawing from ``N(0, stddev²)`` (as ``jax.nn.initializers.normal``).

    Examples:
      >>> import jax, jinit
      >>> w = jinit.normal(0.02)(jax.random.key(0), (256, 512))
      >>> round(float(w.std()), 3)
      0.02
    """
    return Normal(stddev, dtype)


@dataclasses.dataclass(frozen=True)
class TruncatedNormal(Initializer):
    """``stddev * z`` with ``z ~ N(0, 1)`` truncated to ``(lower, upper)``; no variance correction."""

    stddev: Any = 1e-2
    dtype: DTypeLike | None = None
    lower: Any = -2.0
    upper: Any = 2.0

    def __post_init__(self) -> None:
        owner = "truncated_normal"
        check_real("stddev", self.stddev, owner=owner, nonnegative=True)
        check_real("lower", self.lower, owner=owner)
        check_real("upper", self.upper, owner=owner)
        if not isinstance(self.lower, jax.core.Tracer) and not isinstance(
                self.upper, jax.core.Tracer) and not float(self.lower) < float(self.upper):
            raise InitializerArgumentError(
                f"{owner}: lower must be < upper; got lower={self.lower!r}, upper={self.upper!r}.")

    def _sample(self, key, shape, dtype, out_sharding):
        check_real_dtype(dtype, self)
        lower, upper = (v if _is_traced(v) else float(v) for v in (self.lower, self.upper))
        return _random.truncated_normal(  # (float bounds: an int past int64 cannot enter jit)
            key, lower, upper, shape, dtype, out_sharding=out_sharding
        ) * as_param(self, "stddev", self.stddev, dtype,
                     reach=max(abs(lower), abs(upper), 1.0) if not _is_traced(lower) and
                     not _is_traced(upper) else 1.0)


def truncated_normal(stddev: Any = 1e-2, dtype: DTypeLike | None = None, lower: Any = -2.0,
                     upper: Any = 2.0) -> Initializer:
    """Builds a truncated-normal initializer (as ``jax.nn.initializers.truncated_normal``).

    Samples ``stddev * z`` with ``z ~ N(0, 1)`` conditioned on ``lower < z < upper``: the bounds
    are in units of ``stddev`` and no variance correction is applied, so the std is
    ``0.8796 * stddev`` for the default bounds.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.truncated_normal(1.0)(jax.random.key(0), (10000,))
      >>> bool(abs(w).max() < 2.0)
      True
    """
    return TruncatedNormal(stddev, dtype, lower, upper)


@dataclasses.dataclass(frozen=True)
class VarianceScaling(Initializer):
    """Samples with variance ``scale / n``, ``n`` given by ``mode`` from the fans of the shape.

    The general primitive behind Glorot/Xavier, He/Kaiming and LeCun, bit-identical to
    ``jax.nn.initializers.variance_scaling`` for float32/float64 (and complex dtypes).
    """

    scale: Any
    mode: Mode
    distribution: Distribution
    in_axis: Axes = -2
    out_axis: Axes = -1
    batch_axis: Axes = ()
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        owner = "variance_scaling"
        check_real("scale", self.scale, owner=owner, nonnegative=True)
        check_choice("mode", self.mode, MODES, owner=owner)
        check_choice("distribution", self.distribution, DISTRIBUTIONS, owner=owner)
        for name in ("in_axis", "out_axis", "batch_axis"):
            object.__setattr__(self, name, normalize_axes(name, getattr(self, name), owner=owner))

    def _sample(self, key, shape, dtype, out_sharding):
        fan_in, fan_out = compute_fans(shape, self.in_axis, self.out_axis, self.batch_axis)
        if self.mode == "fan_in":
            denominator = fan_in
        elif self.mode == "fan_out":
            denominator = fan_out
        elif self.mode == "fan_avg":
            denominator = (fan_in + fan_out) / 2
        else:
            denominator = (fan_in * fan_out) ** 0.5
        variance = as_param(self, "the variance scale / n", self.scale / denominator, dtype,
                            arg="scale")
        if self.distribution == "uniform" and not _is_traced(self.scale):
            check_fits(self, "3 * scale / n (the squared uniform bound)",
                        3 * (self.scale / denominator), dtype, arg="scale")
        floating = jnp.issubdtype(dtype, jnp.floating)
        if self.distribution == "truncated_normal":
            if floating:
                stddev = jnp.sqrt(variance) / jnp.array(_TRUNC_STD, dtype)
                return _random.truncated_normal(
                    key, -2, 2, shape, dtype, out_sharding=out_sharding) * stddev
            stddev = jnp.sqrt(variance) / jnp.array(_COMPLEX_TRUNC_STD, dtype)
            return place(_complex_truncated_normal(key, 2, shape, dtype) * stddev, out_sharding)
        if self.distribution == "normal":
            return _random.normal(key, shape, dtype, out_sharding=out_sharding) * jnp.sqrt(
                variance)
        if floating:
            return _random.uniform(key, shape, dtype, -1, out_sharding=out_sharding) * jnp.sqrt(
                3 * variance)
        return place(_complex_uniform(key, shape, dtype) * jnp.sqrt(variance), out_sharding)


def _complex_uniform(key, shape, dtype):
    """Uniform on the complex disk with zero mean and unit variance (as JAX)."""
    key_r, key_theta = jax.random.split(key)
    real_dtype = np.array(0, dtype).real.dtype
    r = jnp.sqrt(2 * _random.uniform(key_r, shape, real_dtype)).astype(dtype)
    theta = 2 * np.pi * _random.uniform(key_theta, shape, real_dtype).astype(dtype)
    return r * jnp.exp(1j * theta)


def _complex_truncated_normal(key, upper, shape, dtype):
    """Complex normal with modulus truncated to ``upper`` (as JAX)."""
    key_r, key_theta = jax.random.split(key)
    real_dtype = np.array(0, dtype).real.dtype
    t = (1 - jnp.exp(jnp.array(-(upper**2), dtype))) * _random.uniform(
        key_r, shape, real_dtype).astype(dtype)
    r = jnp.sqrt(-jnp.log(1 - t))
    theta = 2 * np.pi * _random.uniform(key_theta, shape, real_dtype).astype(dtype)
    return r * jnp.exp(1j * theta)


def variance_scaling(
    scale: Any,
    mode: Mode,
    distribution: Distribution,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Builds an initializer that adapts its scale to the shape of the weight.

    Samples have mean 0 and variance ``scale / n`` where ``n`` is, per ``mode``, ``fan_in``,
    ``fan_out``, ``(fan_in + fan_out) / 2`` or ``sqrt(fan_in * fan_out)`` (see
    :func:`jinit.compute_fans`). ``"truncated_normal"`` truncates at 2 std and divides by
    0.8796 so the variance is exact; ``"normal"`` is untruncated; ``"uniform"`` draws
    ``U(-a, a)`` with ``a = sqrt(3 * scale / n)``. Bit-identical to
    ``jax.nn.initializers.variance_scaling`` in float32/float64.

    Args:
      scale: the variance scale (>= 0).
      mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fan_geo_avg"``.
      distribution: ``"truncated_normal"``, ``"normal"`` or ``"uniform"``.
      in_axis: axis or axes of the input dimension.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for a negative or NaN scale, or an unknown mode/distribution.

    Examples:
      >>> import jax, jinit
      >>> init = jinit.variance_scaling(2.0, "fan_in", "normal")
      >>> w = init(jax.random.key(0), (512, 256))
      >>> round(float(w.var() * 512), 1)
      2.0
    """
    return VarianceScaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)


def _preset(scale: float, mode: str, distribution: str, name: str, doc: str):
    def factory(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                dtype: DTypeLike | None = None) -> Initializer:
        return VarianceScaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"""Builds a {doc} initializer.

    :func:`jinit.variance_scaling` with ``scale={scale}``, ``mode="{mode}"``,
    ``distribution="{distribution}"``; bit-identical to ``jax.nn.initializers.{name}``.

    Args:
      in_axis: axis or axes of the input dimension.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore.
      dtype: the default dtype.

    Examples:
      >>> import jax, jinit
      >>> jinit.{name}()(jax.random.key(0), (64, 32)).shape
      (64, 32)
    """
    return factory


glorot_uniform = _preset(1.0, "fan_avg", "uniform", "glorot_uniform", "Glorot (Xavier) uniform")
glorot_normal = _preset(1.0, "fan_avg", "truncated_normal", "glorot_normal",
                        "Glorot (Xavier) truncated normal")
lecun_uniform = _preset(1.0, "fan_in", "uniform", "lecun_uniform", "LeCun uniform")
lecun_normal = _preset(1.0, "fan_in", "truncated_normal", "lecun_normal",
                       "LeCun truncated normal")
he_uniform = _preset(2.0, "fan_in", "uniform", "he_uniform", "He (Kaiming) uniform")
he_normal = _preset(2.0, "fan_in", "truncated_normal", "he_normal",
                    "He (Kaiming) truncated normal")
xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


@dataclasses.dataclass(frozen=True)
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix, orthonormal along ``column_axis``, times ``scale``.

    As ``jax.nn.initializers.orthogonal`` (QR of a Gaussian with the sign fix, i.e. Haar), and
    additionally accepts ``out_sharding``. 16-bit dtypes run the QR in float32.
    """

    scale: Any = 1.0
    column_axis: int = -1
    dtype: DTypeLike | None = None
    min_ndim: ClassVar[int] = 2

    def __post_init__(self) -> None:
        check_real("scale", self.scale, owner="orthogonal")
        object.__setattr__(self, "column_axis",
                           normalize_axes("column_axis", self.column_axis, owner="orthogonal"))
        if not isinstance(self.column_axis, int):
            raise InitializerArgumentError(
                f"orthogonal: column_axis must be an int; got {self.column_axis!r}.")

    def _sample(self, key, shape, dtype, out_sharding):
        ndim = len(shape)
        if not -ndim <= self.column_axis < ndim:
            raise ShapeError(
                f"{self!r}: column_axis={self.column_axis} is out of range for shape {shape}.")
        if any(d == 0 for d in shape):
            return jnp.zeros(shape, dtype=dtype, out_sharding=out_sharding)
        n_cols = shape[self.column_axis]
        n_rows = math.prod(shape) // n_cols
        q = _random.orthogonal(key, n_rows, (), dtype, n_cols)
        q = jnp.reshape(q, tuple(np.delete(shape, self.column_axis)) + (n_cols,))
        q = jnp.moveaxis(q, -1, self.column_axis)
        return place(as_param(self, "scale", self.scale, dtype) * q, out_sharding)


def orthogonal(scale: Any = 1.0, column_axis: int = -1,
               dtype: DTypeLike | None = None) -> Initializer:
    """Builds an initializer of uniformly distributed (Haar) orthogonal matrices.

    The array is viewed as a matrix with ``shape[column_axis]`` columns; the smaller side is
    orthonormal. Bit-identical to ``jax.nn.initializers.orthogonal`` in float32/float64.

    Args:
      scale: multiplier (the gain).
      column_axis: the axis holding the columns.
      dtype: the default dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> q = jinit.orthogonal()(jax.random.key(0), (4, 4))
      >>> bool(jnp.allclose(q.T @ q, jnp.eye(4), atol=1e-5))
      True
    """
    return Orthogonal(scale, column_axis, dtype)


@dataclasses.dataclass(frozen=True)
class DeltaOrthogonal(Initializer):
    """A conv kernel ``(*k, in, out)`` that is zero except an orthogonal centre tap."""

    scale: Any = 1.0
    column_axis: int = -1
    dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        Orthogonal(self.scale, self.column_axis)  # validates the shared arguments

    def _sample(self, key, shape, dtype, out_sharding):
        if len(shape) not in (3, 4, 5):
            raise ShapeError(
                f"{self!r} needs a 3-D, 4-D or 5-D conv kernel (*spatial, in, out); got shape "
                f"{shape}.")
        if shape[-1] < shape[-2]:
            raise ShapeError(
                f"{self!r} needs in <= out (fan_in <= fan_out) to make the centre tap "
                f"orthogonal; got in={shape[-2]}, out={shape[-1]} in shape {shape}.")
        if any(d == 0 for d in shape):
            return jnp.zeros(shape, dtype=dtype, out_sharding=out_sharding)
        ortho = Orthogonal(self.scale, self.column_axis)._sample(key, shape[-2:], dtype, None)
        centre = tuple((k - 1) // 2 for k in shape[:-2])
        return place(jnp.zeros(shape, dtype=dtype).at[centre].set(ortho), out_sharding)


def delta_orthogonal(scale: Any = 1.0, column_axis: int = -1,
                     dtype: DTypeLike | None = None) -> Initializer:
    """Builds a delta-orthogonal conv initializer (as ``jax.nn.initializers.delta_orthogonal``).

    The kernel ``(*k, in, out)`` is zero except at the centre tap ``(k - 1) // 2``, which holds
    an orthogonal ``(in, out)`` matrix; requires ``in <= out``.

    References:
      Xiao et al., `Dynamical Isometry and a Mean Field Theory of CNNs
      <https://arxiv.org/abs/1806.05393>`_, 2018

    Examples:
      >>> import jax, jinit
      >>> w = jinit.delta_orthogonal()(jax.random.key(0), (3, 3, 4, 8))
      >>> float(abs(w[0, 0]).max()), w[1, 1].shape
      (0.0, (4, 8))
    """
    return DeltaOrthogonal(scale, column_axis, dtype)
