"""Combinators: ``Initializer -> Initializer``.

Each is a frozen dataclass with a readable repr, validated at construction, jittable and
vmappable over keys. They wrap any ``(key, shape, dtype=None, out_sharding=None)`` callable:
jinit initializers, ``jax.nn.initializers`` and Flax initializers alike.

A wrapper passes the call's ``dtype`` through to the wrapped initializer unchanged, so a
``dtype=None`` call keeps the wrapped initializer's own default dtype (and its dtype checks);
:func:`with_dtype` is the way to force one.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jinit import _random
from jinit._errors import DTypeError, InitializerArgumentError, ShapeError
from jinit._initializers import (
    Initializer,
    as_dtype,
    as_param,
    canonical_shape,
    check_key,
    check_real,
    default_float_dtype,
    place,
)
from jinit._typing import DTypeLike, InitFn, OutSharding, PRNGKey, Shape

_PROB_TOL = 1e-6  # how far the mixture probabilities may sum from 1 (float rounding of 1/3s)


def _check_init(init: Any, owner: str, name: str = "init") -> None:
    if not callable(init):
        raise InitializerArgumentError(
            f"{owner}: {name} must be an initializer, a callable (key, shape, dtype) -> array; "
            f"got {name}={init!r}. Did you pass a value instead of e.g. jinit.constant(value)?")


def _call(init: InitFn, key: PRNGKey, shape: tuple[int, ...], dtype: Any,
          out_sharding: OutSharding = None) -> jax.Array:
    """Calls any initializer; ``dtype=None`` keeps a jinit initializer's own default dtype."""
    if dtype is None and not isinstance(init, Initializer):
        dtype = default_float_dtype()
    if out_sharding is None:
        out = init(key, shape, dtype)
    else:
        out = init(key, shape, dtype, out_sharding)
    if tuple(out.shape) != shape:
        raise ShapeError(f"{init!r} returned shape {tuple(out.shape)} for requested shape {shape}.")
    return out


@dataclasses.dataclass(frozen=True)
class Wrapper(Initializer):
    """Base of the combinators: passes the call's dtype (possibly ``None``) through.

    Subclasses implement ``_apply(key, shape, dtype, out_sharding)`` with ``dtype`` as given
    by the caller; dtype and rank checks are left to the wrapped initializers.
    """

    random: ClassVar[bool] = False

    def __call__(self, key: PRNGKey, shape: Shape, dtype: DTypeLike | None = None,
                 out_sharding: OutSharding = None) -> jax.Array:
        shape = canonical_shape(shape, self)
        check_key(key, self)
        if dtype is not None:
            dtype = as_dtype(dtype, self)
        return self._apply(key, shape, dtype, out_sharding)

    def _sample(self, key, shape, dtype, out_sharding):
        return self._apply(key, shape, dtype, out_sharding)

    def _apply(self, key: PRNGKey, shape: tuple[int, ...], dtype: np.dtype | None,
               out_sharding: OutSharding) -> jax.Array:
        raise NotImplementedError


# --- mixture -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mixture(Wrapper):
    """Each element comes from component ``i`` with probability ``p_i``."""

    components: tuple[tuple[float, InitFn], ...]

    def __post_init__(self) -> None:
        owner = "mixture"
        try:
            components = tuple((p, init) for p, init in self.components)
        except (TypeError, ValueError) as e:
            raise InitializerArgumentError(
                f"{owner}: components must be a sequence of (probability, initializer) pairs; "
                f"got {self.components!r}.") from e
        if not components:
            raise InitializerArgumentError(f"{owner}: needs at least one (probability, "
                                           "initializer) pair; got none.")
        for i, (p, init) in enumerate(components):
            check_real(f"probability {i}", p, owner=owner, nonnegative=True)
            _check_init(init, owner, f"component {i}")
        probs = [float(np.real(p)) for p, _ in components]
        if abs(math.fsum(probs) - 1.0) > _PROB_TOL:
            raise InitializerArgumentError(
                f"{owner}: the probabilities must sum to 1; got {probs} (sum "
                f"{math.fsum(probs)!r}).")
        object.__setattr__(self, "components", tuple(
            (p, init) for p, (_, init) in zip(probs, components, strict=True)))

    def _apply(self, key, shape, dtype, out_sharding):
        keys = jax.random.split(key, len(self.components) + 1)
        # Component i owns the interval [cdf_{i-1}, cdf_i) of one uniform per element.
        u = _random.uniform(keys[0], shape, jnp.float32)
        cdf = np.cumsum([p for p, _ in self.components])[:-1].astype(np.float32)
        choice = sum((u >= c).astype(jnp.int32) for c in cdf)  # no searchsorted loop
        draws = [_call(init, k, shape, dtype) for (_, init), k in
                 zip(self.components, keys[1:], strict=True)]
        dtypes = {d.dtype for d in draws}
        if len(dtypes) > 1:
            raise DTypeError(
                f"{self!r}: the components returned different dtypes "
                f"{[str(d.dtype) for d in draws]}; pass dtype= in the call or wrap components "
                "in jinit.with_dtype(...).")
        out = draws[-1]
        for i in range(len(draws) - 2, -1, -1):
            out = jnp.where(choice == i, draws[i], out)
        return place(out, out_sharding)


def mixture(components: Sequence[tuple[float, InitFn]]) -> Initializer:
    """Builds a mixture initializer: each element is drawn from component ``i`` w.p. ``p_i``.

    One uniform per element picks the component; every component is drawn over the full shape
    with its own key split from the call's key, and the picked values are kept.

    Args:
      components: ``(probability, initializer)`` pairs; the probabilities must be >= 0 and sum
        to 1 (within 1e-6).

    Returns:
      An initializer. All components must return the same dtype (they get the call's dtype).

    Raises:
      InitializerArgumentError: for an empty list, a negative/NaN probability, probabilities
        not summing to 1, or a component that is not callable.

    Examples:
      The textbook custom distribution: U(5, 10) w.p. 1/4, 0 w.p. 1/2, U(-10, -5) w.p. 1/4.

      >>> import jax, jinit
      >>> init = jinit.mixture([(0.25, jinit.shifted(jinit.uniform(5.0), 5.0)),
      ...                       (0.50, jinit.zeros),
      ...                       (0.25, jinit.shifted(jinit.uniform(5.0), -10.0))])
      >>> w = init(jax.random.key(0), (100_000,))
      >>> round(float((w == 0).mean()), 2), round(float((w >= 5).mean()), 2)
      (0.5, 0.25)
    """
    return Mixture(tuple(components))


# --- masked ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Masked(Wrapper):
    """``init``'s values, with ``fill`` wherever ``mask_fn(values)`` is True."""

    init: InitFn
    mask_fn: Callable[[jax.Array], jax.Array]
    fill: Any = 0.0

    def __post_init__(self) -> None:
        _check_init(self.init, "masked")
        if not callable(self.mask_fn):
            raise InitializerArgumentError(
                f"masked: mask_fn must be a callable values -> bool array (True where the "
                f"value is replaced by fill); got mask_fn={self.mask_fn!r}.")
        check_real("fill", self.fill, owner="masked")

    def _apply(self, key, shape, dtype, out_sharding):
        values = _call(self.init, key, shape, dtype)
        mask = jnp.asarray(self.mask_fn(values))
        if mask.dtype != jnp.bool_:
            raise DTypeError(
                f"{self!r}: mask_fn must return a bool array; it returned dtype {mask.dtype}. "
                "Return a comparison such as jnp.abs(w) < 5.")
        try:
            np.broadcast_shapes(mask.shape, shape)
        except ValueError as e:
            raise ShapeError(
                f"{self!r}: mask_fn returned shape {mask.shape}, which does not broadcast to "
                f"the values' shape {shape}.") from e
        out = jnp.where(mask, as_param(self, "fill", self.fill, values.dtype), values)
        return place(out, out_sharding)


def masked(init: InitFn, mask_fn: Callable[[jax.Array], jax.Array], fill: Any = 0.0
           ) -> Initializer:
    """Builds an initializer that replaces the values selected by ``mask_fn`` with ``fill``.

    Args:
      init: the initializer drawing the values.
      mask_fn: ``values -> bool array`` (broadcastable to the shape), True where the value is
        replaced.
      fill: the replacement value.

    Raises:
      InitializerArgumentError: if ``init`` or ``mask_fn`` is not callable, or ``fill`` is not
        a finite number.

    Examples:
      U(-10, 10) with every value of magnitude below 5 set to zero:

      >>> import jax, jax.numpy as jnp, jinit
      >>> init = jinit.masked(jinit.shifted(jinit.uniform(20.0), -10.0),
      ...                     lambda w: jnp.abs(w) < 5)
      >>> w = init(jax.random.key(0), (100_000,))
      >>> round(float((w == 0).mean()), 2), bool((jnp.abs(w[w != 0]) >= 5).all())
      (0.5, True)
    """
    return Masked(init, mask_fn, fill)


# --- elementwise wrappers ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scaled(Wrapper):
    """``init``'s values times ``factor``."""

    init: InitFn
    factor: Any

    def __post_init__(self) -> None:
        _check_init(self.init, "scaled")
        check_real("factor", self.factor, owner="scaled")

    def _apply(self, key, shape, dtype, out_sharding):
        values = _call(self.init, key, shape, dtype)
        return place(values * as_param(self, "factor", self.factor, values.dtype), out_sharding)


def scaled(init: InitFn, factor: Any) -> Initializer:
    """Builds an initializer returning ``factor * init(...)`` (e.g. GPT-2's residual scaling).

    Examples:
      >>> import jax, jinit
      >>> w = jinit.scaled(jinit.normal(0.02), 1 / (2 * 12) ** 0.5)(jax.random.key(0), (512, 512))
      >>> round(float(w.std()), 4)
      0.0041
    """
    return Scaled(init, factor)


@dataclasses.dataclass(frozen=True)
class Shifted(Wrapper):
    """``init``'s values plus ``offset``."""

    init: InitFn
    offset: Any

    def __post_init__(self) -> None:
        _check_init(self.init, "shifted")
        check_real("offset", self.offset, owner="shifted")

    def _apply(self, key, shape, dtype, out_sharding):
        values = _call(self.init, key, shape, dtype)
        return place(values + as_param(self, "offset", self.offset, values.dtype), out_sharding)


def shifted(init: InitFn, offset: Any) -> Initializer:
    """Builds an initializer returning ``init(...) + offset``.

    Examples:
      ``U[5, 10)`` from the one-sided ``jinit.uniform``:

      >>> import jax, jinit
      >>> w = jinit.shifted(jinit.uniform(5.0), 5.0)(jax.random.key(0), (1000,))
      >>> bool(w.min() >= 5) and bool(w.max() < 10)
      True
    """
    return Shifted(init, offset)


@dataclasses.dataclass(frozen=True)
class Clipped(Wrapper):
    """``init``'s values clipped to ``[min, max]`` (either bound may be None)."""

    init: InitFn
    min: Any = None
    max: Any = None

    def __post_init__(self) -> None:
        _check_init(self.init, "clipped")
        if self.min is None and self.max is None:
            raise InitializerArgumentError("clipped: give min, max or both; got neither.")
        for name in ("min", "max"):
            if getattr(self, name) is not None:
                check_real(name, getattr(self, name), owner="clipped")
        if self.min is not None and self.max is not None and not isinstance(
                self.min, jax.core.Tracer) and not isinstance(self.max, jax.core.Tracer):
            if float(np.real(self.min)) > float(np.real(self.max)):
                raise InitializerArgumentError(
                    f"clipped: min must be <= max; got min={self.min!r}, max={self.max!r}.")

    def _apply(self, key, shape, dtype, out_sharding):
        values = _call(self.init, key, shape, dtype)
        if jnp.issubdtype(values.dtype, jnp.complexfloating):
            raise DTypeError(
                f"{self!r}: complex values ({values.dtype}) have no order and cannot be clipped; "
                "pass a real floating dtype.")
        lo = None if self.min is None else jnp.asarray(self.min, values.dtype)
        hi = None if self.max is None else jnp.asarray(self.max, values.dtype)
        return place(jnp.clip(values, lo, hi), out_sharding)


def clipped(init: InitFn, min: Any = None, max: Any = None) -> Initializer:
    """Builds an initializer returning ``clip(init(...), min, max)``.

    Clipping piles mass on the bounds; for a truncated distribution (resampling) use
    :func:`jinit.truncated_normal` instead.

    Raises:
      InitializerArgumentError: if neither bound is given, or ``min > max``.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.clipped(jinit.normal(1.0), -0.5, 0.5)(jax.random.key(0), (1000,))
      >>> float(w.min()), float(w.max())
      (-0.5, 0.5)
    """
    return Clipped(init, min, max)


@dataclasses.dataclass(frozen=True)
class WithDtype(Wrapper):
    """``init`` always called with ``dtype``, whatever dtype the caller passes."""

    init: InitFn
    dtype: DTypeLike

    def __post_init__(self) -> None:
        _check_init(self.init, "with_dtype")
        object.__setattr__(self, "dtype", as_dtype(self.dtype, "with_dtype"))

    def _apply(self, key, shape, dtype, out_sharding):
        return _call(self.init, key, shape, self.dtype, out_sharding)


def with_dtype(init: InitFn, dtype: DTypeLike) -> Initializer:
    """Builds an initializer that always produces ``dtype``, ignoring the call's dtype.

    Useful to keep a parameter in float32 inside a bfloat16 model, or to give the components
    of a :func:`mixture` one dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> jinit.with_dtype(jinit.normal(), jnp.bfloat16)(jax.random.key(0), (2,), jnp.float32).dtype
      dtype(bfloat16)
    """
    return WithDtype(init, dtype)


# --- fused -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fused(Wrapper):
    """``init`` applied block by block along ``axis``, each block with its own fans and key."""

    init: InitFn
    splits: int | tuple[int, ...]
    axis: int = -1

    def __post_init__(self) -> None:
        owner = "fused"
        _check_init(self.init, owner)
        splits = self.splits
        bad = InitializerArgumentError(
            f"{owner}: splits must be a positive int (equal blocks) or a sequence of positive "
            f"block sizes; got splits={splits!r}.")
        if isinstance(splits, bool):
            raise bad
        try:
            splits = operator.index(splits) if not isinstance(splits, Sequence) else tuple(
                operator.index(s) for s in splits)
        except TypeError as e:
            raise bad from e
        if (splits < 1) if isinstance(splits, int) else (not splits or min(splits) < 1):
            raise bad
        object.__setattr__(self, "splits", splits)
        if isinstance(self.axis, bool) or not isinstance(self.axis, (int, np.integer)):
            raise InitializerArgumentError(f"{owner}: axis must be an int; got axis={self.axis!r}.")
        object.__setattr__(self, "axis", int(self.axis))

    def _sizes(self, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        ndim = len(shape)
        if not -ndim <= self.axis < ndim:
            raise ShapeError(f"{self!r}: axis={self.axis} is out of range for shape {shape}.")
        axis = self.axis % ndim
        if isinstance(self.splits, int):
            if shape[axis] % self.splits:
                raise ShapeError(
                    f"{self!r}: axis {axis} of shape {shape} ({shape[axis]}) is not divisible "
                    f"into {self.splits} equal blocks.")
            return axis, (shape[axis] // self.splits,) * self.splits
        if sum(self.splits) != shape[axis]:
            raise ShapeError(
                f"{self!r}: the block sizes {self.splits} sum to {sum(self.splits)}, but axis "
                f"{axis} of shape {shape} has size {shape[axis]}.")
        return axis, self.splits

    def _apply(self, key, shape, dtype, out_sharding):
        axis, sizes = self._sizes(shape)
        keys = jax.random.split(key, len(sizes))
        blocks = [_call(self.init, k, shape[:axis] + (n,) + shape[axis + 1:], dtype)
                  for k, n in zip(keys, sizes, strict=True)]
        return place(jnp.concatenate(blocks, axis=axis), out_sharding)


def fused(init: InitFn, splits: int | Sequence[int], axis: int = -1) -> Initializer:
    """Builds an initializer for a packed weight: ``init`` on each block along ``axis``.

    Fused parameters (a packed QKV projection, the 4 gates of an LSTM kernel) otherwise get
    the fans of the whole packed shape: torch's packed ``in_proj_weight`` under Xavier has
    ``1/sqrt(2)`` of the per-projection std, and orthogonal on the fused recurrent matrix does
    not make each gate's block orthogonal. Each block is drawn with its own key (split from the
    call's key), so it has exactly the distribution ``init`` gives a standalone block.

    Args:
      init: the per-block initializer.
      splits: the number of equal blocks, or the block sizes (summing to the axis size).
      axis: the packed axis (the output axis ``-1`` for Flax kernels).

    Raises:
      InitializerArgumentError: for a non-callable init, bad splits or a non-int axis.

    Examples:
      A packed QKV kernel (E, 3E) with Xavier fans of each (E, E) projection:

      >>> import jax, jinit
      >>> w = jinit.fused(jinit.xavier_uniform(), 3)(jax.random.key(0), (512, 3 * 512))
      >>> round(float(w.std()), 4), round((1 / 512) ** 0.5, 4)
      (0.0442, 0.0442)
    """
    if isinstance(splits, Sequence):
        splits = tuple(splits)
    return Fused(init, splits, axis)


# --- stacked (a layer axis) --------------------------------------------------------------------

#: Primitives of matrix decompositions: a batched one is run slice by slice (``lax.map``), since
#: XLA's batched QR is slow on GPU and can stall on CPU; everything else is vectorized (``vmap``).
_DECOMPOSITIONS = frozenset({"qr", "householder_product", "geqrf", "geqp3", "orgqr", "svd",
                             "eig", "eigh", "lu", "cholesky", "schur", "hessenberg",
                             "tridiagonal"})


def _primitives(jaxpr: Any) -> set[str]:
    from jax.extend.core import jaxprs_in_params  # noqa: PLC0415

    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jaxprs_in_params(eqn.params):
            names |= _primitives(sub)
    return names


def layer_axes_tuple(axis: Any, owner: str) -> tuple[int, ...]:
    """Validates a layer ``axis`` argument (an int or a sequence of distinct ints)."""
    bad = InitializerArgumentError(
        f"{owner}: axis must be an int or a sequence of distinct ints (the layer axes); got "
        f"axis={axis!r}.")
    if isinstance(axis, bool):
        raise bad
    try:
        axes = tuple(operator.index(a) for a in axis) if isinstance(axis, Sequence) else (
            operator.index(axis),)
    except TypeError as e:
        raise bad from e
    if not axes or any(isinstance(a, bool) for a in axes) or len(set(axes)) != len(axes):
        raise bad
    return axes


@dataclasses.dataclass(frozen=True)
class Stacked(Wrapper):
    """``init`` drawn independently for every slice along the layer ``axis`` (see :func:`stacked`)."""

    init: InitFn
    axis: int | tuple[int, ...] = 0

    def __post_init__(self) -> None:
        _check_init(self.init, "stacked")
        axes = layer_axes_tuple(self.axis, "stacked")
        object.__setattr__(self, "axis", axes[0] if len(axes) == 1 else axes)

    @property
    def key_path(self) -> str | None:
        """The wrapped initializer's shared key path (fused blocks), if any."""
        return getattr(self.init, "key_path", None)

    def axes(self, ndim: int) -> tuple[int, ...]:
        """The layer axes of an ``ndim``-D shape, sorted and non-negative."""
        axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        for a in axes:
            if not -ndim <= a < ndim:
                raise ShapeError(f"{self!r}: layer axis {a} is out of range for a {ndim}-D shape.")
        out = sorted(a % ndim for a in axes)
        if len(set(out)) != len(out):
            raise ShapeError(f"{self!r}: the layer axes {axes} repeat an axis of a {ndim}-D shape.")
        return tuple(out)

    def _apply(self, key, shape, dtype, out_sharding):
        axes = self.axes(len(shape))
        layers = tuple(shape[a] for a in axes)
        inner = tuple(d for i, d in enumerate(shape) if i not in axes)
        n = math.prod(layers)

        def one(i):
            return _call(self.init, jax.random.fold_in(key, i), inner, dtype)

        index = jnp.arange(n, dtype=jnp.uint32)
        proto = jax.make_jaxpr(one)(jnp.uint32(0))
        if n == 0:
            out = jnp.zeros((0, *inner), proto.out_avals[0].dtype)
        elif _primitives(proto.jaxpr) & _DECOMPOSITIONS:
            out = jax.lax.map(one, index)
        else:
            out = jax.vmap(one)(index)
        out = jnp.moveaxis(out.reshape(layers + inner), tuple(range(len(axes))), axes)
        return place(out, out_sharding)


def stacked(init: InitFn, axis: int | Sequence[int] = 0) -> Initializer:
    """Builds an initializer for stacked layers: ``init`` on every slice along ``axis``.

    ``nn.scan``/``nn.vmap`` (and ``nnx.vmap``/``nnx.scan``) stack the parameters of L layers
    into one leaf, e.g. a ``(L, in, out)`` kernel. A fan-based initializer applied to the whole
    leaf counts L in the fans (``variance_scaling`` sees a receptive field of L) and orthogonal
    makes the *stack* orthogonal; per layer, each slice must have its own fans and be an
    independent draw. ``stacked`` gives exactly that: slice ``i`` (row-major index over the
    layer axes) is ``init(jax.random.fold_in(key, i), slice_shape, dtype)``. Keys depend on the
    layer index only, so growing a stack from 12 to 24 layers keeps the first 12 slices.

    Slices are drawn vectorized (``vmap``); initializers with a matrix decomposition (QR for
    orthogonal) are drawn slice by slice with ``jax.lax.map``.

    Args:
      init: the per-layer initializer.
      axis: the layer axis, or several (nested stacks).

    Returns:
      An initializer.

    Raises:
      InitializerArgumentError: for a non-callable init or a bad axis.

    Examples:
      A stack of 12 Dense(256) kernels with Flax's lecun_normal per layer (std 1/16):

      >>> import jax, jinit
      >>> w = jinit.stacked(jinit.lecun_normal(), axis=0)(jax.random.key(0), (12, 256, 256))
      >>> round(float(w.std()), 3), round(float(jinit.lecun_normal()(
      ...     jax.random.key(0), (12, 256, 256)).std()), 3)
      (0.062, 0.018)

      Each slice is the initializer's draw with the layer's key:

      >>> k = jax.random.key(1)
      >>> s = jinit.stacked(jinit.orthogonal())(k, (3, 4, 4))
      >>> bool((abs(s[2] - jinit.orthogonal()(jax.random.fold_in(k, 2), (4, 4))) < 1e-6).all())
      True
    """
    return Stacked(init, tuple(axis) if isinstance(axis, Sequence) else axis)
