"""Structural initializers: identity, dirac (conv identity), sparse, bilinear, gate biases.

Each is a frozen dataclass deriving :class:`jinit.Initializer` with a factory function. The
deterministic ones (``identity``, ``dirac``, ``bilinear``, ``gate_bias``) ignore the key and are
built from ``iota`` comparisons, never from host-side constants, so they stay cheap under
``jax.jit`` and shard like any other initializer.

Kernel layouts follow :func:`jinit.layout_axes`: ``"flax"``/``"jax"``/``"keras"`` kernels are
``(*spatial, in, out)``; ``"torch"``/``"mxnet"`` kernels are ``(out, in, *spatial)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jinit import _random
from jinit._errors import DTypeError, InitializerArgumentError, ShapeError
from jinit._fans import LAYOUTS, layout_axes
from jinit._initializers import (
    NORMAL_REACH,
    Initializer,
    as_param,
    check_choice,
    check_fits,
    check_real,
    check_real_dtype,
    place,
)
from jinit._typing import DTypeLike

Centre = Literal["floor", "ceil"]
CENTRES: tuple[str, ...] = ("floor", "ceil")


def _kernel_axes(shape: tuple[int, ...], layout: str) -> tuple[int, int, tuple[int, ...]]:
    """``(in_axis, out_axis, spatial_axes)`` of a conv kernel, all non-negative."""
    ndim = len(shape)
    in_axis, out_axis = (a % ndim for a in layout_axes(layout, ndim))
    spatial = tuple(a for a in range(ndim) if a not in (in_axis, out_axis))
    return in_axis, out_axis, spatial


def _centre_index(size: int, centre: str) -> int:
    # "floor" is jax.nn.initializers.delta_orthogonal's (k - 1) // 2, "ceil" torch dirac_'s k // 2.
    return (size - 1) // 2 if centre == "floor" else size // 2


def _iota(shape: tuple[int, ...], axis: int) -> jax.Array:
    return jax.lax.broadcasted_iota(jnp.int32, shape, axis)


# --- identity ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Identity(Initializer):
    """``gain * eye(shape[-2], shape[-1])``, broadcast over any leading dimensions."""

    gain: Any = 1.0
    dtype: DTypeLike | None = None
    random: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 2

    def __post_init__(self) -> None:
        check_real("gain", self.gain, owner="identity")

    def _sample(self, key, shape, dtype, out_sharding):
        eye = _iota(shape, len(shape) - 2) == _iota(shape, len(shape) - 1)
        return place(eye.astype(dtype) * as_param(self, "gain", self.gain, dtype), out_sharding)


def identity(gain: Any = 1.0, dtype: DTypeLike | None = None) -> Initializer:
    """Builds an identity initializer: ``gain * eye(rows, cols)`` on the last two axes.

    Rectangular matrices get ones on the main diagonal (``torch.nn.init.eye_``,
    ``keras.initializers.Identity(gain)``); leading axes are broadcast (haiku's ``Identity``).
    The key is ignored; integer and bool dtypes are allowed.

    Args:
      gain: the value on the diagonal (IRNN uses ``identity()`` for the recurrent matrix).
      dtype: the default dtype.

    Raises:
      ShapeError: for shapes of fewer than 2 dimensions.

    Examples:
      >>> import jax, jinit
      >>> jinit.identity(2.0)(jax.random.key(0), (2, 3)).tolist()
      [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]

    References:
      Le, Jaitly & Hinton, `A Simple Way to Initialize Recurrent Networks of Rectified Linear
      Units <https://arxiv.org/abs/1504.00941>`_, 2015
    """
    return Identity(gain, dtype)


# --- dirac -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dirac(Initializer):
    """A conv kernel that maps every (grouped) input channel to itself at the centre tap."""

    groups: int = 1
    centre: Centre = "floor"
    layout: str = "flax"
    gain: Any = 1.0
    dtype: DTypeLike | None = None
    random: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 3

    def __post_init__(self) -> None:
        owner = "dirac"
        if isinstance(self.groups, bool) or not isinstance(self.groups, (int, np.integer)) or (
                self.groups < 1):
            raise InitializerArgumentError(
                f"{owner}: groups must be a positive int; got groups={self.groups!r}.")
        object.__setattr__(self, "groups", int(self.groups))
        check_choice("centre", self.centre, CENTRES, owner=owner)
        check_choice("layout", self.layout, LAYOUTS, owner=owner)
        check_real("gain", self.gain, owner=owner)

    def _sample(self, key, shape, dtype, out_sharding):
        in_axis, out_axis, spatial = _kernel_axes(shape, self.layout)
        n_out = shape[out_axis]
        if n_out % self.groups:
            raise ShapeError(
                f"{self!r}: the output channels ({n_out}, axis {out_axis} of shape {shape}) are "
                f"not divisible by groups={self.groups}.")
        # w[out=o, in=i, centre] = gain  iff  i == o mod (out // groups): torch.nn.init.dirac_.
        per_group = max(n_out // self.groups, 1)
        hit = _iota(shape, in_axis) == _iota(shape, out_axis) % per_group
        for a in spatial:
            hit &= _iota(shape, a) == _centre_index(shape[a], self.centre)
        return place(hit.astype(dtype) * as_param(self, "gain", self.gain, dtype), out_sharding)


def dirac(groups: int = 1, centre: Centre = "floor", layout: str = "flax", gain: Any = 1.0,
          dtype: DTypeLike | None = None) -> Initializer:
    """Builds a Dirac (conv identity) initializer: the convolution preserves its input.

    The kernel is zero except at the spatial centre, where output channel ``o`` of group ``g``
    reads input channel ``o - g * out // groups`` with weight ``gain`` (channels beyond the
    smaller of ``in`` and ``out // groups`` stay zero). This is ``torch.nn.init.dirac_(w,
    groups)`` for ``layout="torch", centre="ceil"``; with the default Flax layout and
    ``centre="floor"`` it uses the centre tap of ``jinit.delta_orthogonal``. The two centres
    differ only for even kernel sizes (k=4: ``floor`` is index 1, ``ceil`` is index 2).

    Args:
      groups: the convolution's groups (``feature_group_count`` in Flax); the output channels
        must be divisible by it. The ``in`` axis holds the per-group input channels.
      centre: ``"floor"`` for index ``(k - 1) // 2`` (jax), ``"ceil"`` for ``k // 2`` (torch).
      layout: ``"flax"``/``"jax"``/``"keras"`` for ``(*k, in, out)``, ``"torch"``/``"mxnet"``
        for ``(out, in, *k)``.
      gain: the value of the non-zero taps.
      dtype: the default dtype (integer and bool allowed).

    Raises:
      InitializerArgumentError: for a bad ``groups``, ``centre``, ``layout`` or ``gain``.
      ShapeError: for kernels of fewer than 3 dimensions, or out channels not divisible by groups.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> w = jinit.dirac()(jax.random.key(0), (3, 3, 4, 4))
      >>> x = jax.random.normal(jax.random.key(1), (1, 8, 8, 4))
      >>> y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
      ...                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
      >>> bool(jnp.allclose(x, y))
      True
    """
    return Dirac(groups, centre, layout, gain, dtype)


# --- sparse ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sparse(Initializer):
    """``N(0, std²)`` with ``ceil(sparsity * rows)`` random rows zeroed in every column."""

    sparsity: Any
    std: Any = 0.01
    dtype: DTypeLike | None = None
    min_ndim: ClassVar[int] = 2

    def __post_init__(self) -> None:
        check_real("sparsity", self.sparsity, owner="sparse", nonnegative=True)
        if not float(self.sparsity) <= 1.0:
            raise InitializerArgumentError(
                f"sparse: sparsity must be a fraction in [0, 1]; got sparsity={self.sparsity!r}.")
        check_real("std", self.std, owner="sparse", nonnegative=True)

    def _sample(self, key, shape, dtype, out_sharding):
        if len(shape) != 2:
            raise ShapeError(
                f"{self!r} needs a 2-D (rows, cols) weight, as torch.nn.init.sparse_; got shape "
                f"{shape}. Reshape the weight to 2-D, or use fused()/a per-slice initializer.")
        rows, _ = shape
        n_zero = math.ceil(float(self.sparsity) * rows)
        k_values, k_rows = jax.random.split(key)
        values = _random.normal(k_values, shape, dtype) * as_param(self, "std", self.std, dtype,
                                                                  reach=NORMAL_REACH)
        # Ranks of i.i.d. uniforms down each column are a uniform random permutation of the rows
        # (argsort is stable, so ranks are distinct): exactly n_zero rows per column fall below.
        u = _random.uniform(k_rows, shape, jnp.float32)
        ranks = jnp.argsort(jnp.argsort(u, axis=0), axis=0)
        return place(jnp.where(ranks < n_zero, jnp.zeros((), dtype), values), out_sharding)


def sparse(sparsity: Any, std: Any = 0.01, dtype: DTypeLike | None = None) -> Initializer:
    """Builds a sparse initializer (``torch.nn.init.sparse_`` semantics, jittable).

    Draws ``N(0, std²)``, then in every column sets ``ceil(sparsity * rows)`` rows, chosen
    uniformly at random and independently per column, to zero. Only 2-D ``(rows, cols)``
    weights are accepted. For a Flax ``(in, out)`` kernel the columns are the output units, so
    each unit keeps ``in - ceil(sparsity * in)`` non-zero inputs (Martens' sparse init).

    Args:
      sparsity: the fraction of each column set to zero, in ``[0, 1]``.
      std: the std of the non-zero values.
      dtype: the default dtype.

    Raises:
      InitializerArgumentError: for sparsity outside ``[0, 1]`` or a negative/NaN std.
      ShapeError: for shapes that are not 2-D.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.sparse(0.25)(jax.random.key(0), (8, 5))
      >>> (w == 0).sum(axis=0).tolist()
      [2, 2, 2, 2, 2]

    References:
      Martens, `Deep learning via Hessian-free optimization
      <https://www.cs.toronto.edu/~jmartens/docs/Deep_HessianFree.pdf>`_, 2010
    """
    return Sparse(sparsity, std, dtype)


# --- bilinear ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bilinear(Initializer):
    """A (multi)linear-interpolation upsampling kernel, the same for every (in, out) pair."""

    layout: str = "flax"
    factor_from: Literal["own", "last"] = "own"
    dtype: DTypeLike | None = None
    random: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 3

    def __post_init__(self) -> None:
        check_choice("layout", self.layout, LAYOUTS, owner="bilinear")
        check_choice("factor_from", self.factor_from, ("own", "last"), owner="bilinear")

    def _sample(self, key, shape, dtype, out_sharding):
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise DTypeError(
                f"{self!r} produces fractional weights and cannot produce dtype {dtype}; pass a "
                "floating dtype.")
        _, _, spatial = _kernel_axes(shape, self.layout)
        out = jnp.ones(shape, jnp.float32)
        for a in spatial:
            size = shape[spatial[-1]] if self.factor_from == "last" else shape[a]
            f = max(math.ceil(size / 2), 1)  # size 0: an empty kernel, any f will do
            c = (2 * f - 1 - f % 2) / (2.0 * f)
            out = out * (1 - jnp.abs(_iota(shape, a).astype(jnp.float32) / f - c))
        return place(out.astype(dtype), out_sharding)


def bilinear(layout: str = "flax", factor_from: Literal["own", "last"] = "own",
             dtype: DTypeLike | None = None) -> Initializer:
    """Builds a bilinear-upsampling kernel initializer (MXNet ``init.Bilinear``, generalized).

    For a spatial axis of size ``k``: ``f = ceil(k / 2)``, ``c = (2f - 1 - f % 2) / (2f)`` and
    the weight at index ``x`` is ``1 - |x / f - c|``; the kernel is the product over the
    spatial axes (any number of them: 1-D, 2-D, 3-D kernels), and every (in, out) channel pair
    gets the same kernel, as in MXNet. Used as a transposed convolution with stride ``f`` it
    upsamples by linear interpolation (FCN).

    Args:
      layout: ``"flax"``/``"jax"``/``"keras"`` for ``(*k, in, out)``, ``"torch"``/``"mxnet"``
        for ``(out, in, *k)``.
      factor_from: ``"own"`` computes ``f`` and ``c`` from each axis's own size; ``"last"``
        takes them from the last spatial axis for all axes, which is exactly MXNet's code
        (it uses ``shape[3]`` for both ``x`` and ``y``). They agree for square kernels.
      dtype: the default dtype (floating dtypes only).

    Raises:
      ShapeError: for shapes of fewer than 3 dimensions.
      DTypeError: for integer or bool dtypes.

    Examples:
      >>> import jax, jinit
      >>> w = jinit.bilinear()(jax.random.key(0), (4, 4, 1, 1))
      >>> w[:, :, 0, 0].round(4).tolist()[0]
      [0.0625, 0.1875, 0.1875, 0.0625]
    """
    return Bilinear(layout, factor_from, dtype)


# --- gate biases -------------------------------------------------------------------------------


def _check_order(order: Any, owner: str) -> None:
    if not isinstance(order, str) or not order or len(set(order)) != len(order):
        raise InitializerArgumentError(
            f"{owner}: order must be a non-empty string of distinct gate letters such as "
            f"'ifgo'; got order={order!r}.")


def _gate_slices(shape: tuple[int, ...], n_gates: int, owner: object) -> int:
    """Returns the hidden size ``H`` of a ``(..., n_gates * H)`` bias, or raises."""
    if shape[-1] % n_gates:
        raise ShapeError(
            f"{owner!r}: the last axis of shape {shape} ({shape[-1]}) must be n_gates * hidden "
            f"= {n_gates} * H; it is not divisible by {n_gates}.")
    return shape[-1] // n_gates


@dataclasses.dataclass(frozen=True)
class GateBias(Initializer):
    """A fused gate bias ``(..., n_gates * H)``: one constant per gate slice."""

    order: str = "ifgo"
    values: tuple[tuple[str, Any], ...] = (("f", 1.0),)
    default: Any = 0.0
    dtype: DTypeLike | None = None
    random: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 1

    def __post_init__(self) -> None:
        owner = "gate_bias"
        _check_order(self.order, owner)
        values = tuple(dict(self.values).items())
        for gate, value in values:
            if gate not in self.order:
                raise InitializerArgumentError(
                    f"{owner}: gate {gate!r} is not in order={self.order!r}; name gates by the "
                    "letters of order (e.g. f=1.0 for the forget gate of 'ifgo').")
            check_real(gate, value, owner=owner)
        check_real("default", self.default, owner=owner)
        object.__setattr__(self, "values", values)

    def _sample(self, key, shape, dtype, out_sharding):
        hidden = _gate_slices(shape, len(self.order), self)
        per_gate = [dict(self.values).get(g, self.default) for g in self.order]
        gate = _iota(shape, len(shape) - 1) // max(hidden, 1)
        out = jnp.full(shape, as_param(self, "default", self.default, dtype), dtype)
        for i, (g, value) in enumerate(zip(self.order, per_gate, strict=True)):
            out = jnp.where(gate == i, as_param(self, g, value, dtype), out)
        return place(out, out_sharding)


def gate_bias(order: str = "ifgo", default: Any = 0.0, dtype: DTypeLike | None = None,
              **values: Any) -> Initializer:
    """Builds a fused RNN gate-bias initializer: a constant per gate slice.

    The bias has shape ``(..., n_gates * H)`` with the gates laid out along the last axis in
    ``order``; gate ``g`` gets ``values[g]`` (keyword arguments named by the gate letters) and
    the others ``default``. Common orders: torch LSTM and Flax ``OptimizedLSTMCell`` ``"ifgo"``;
    Keras LSTM, MXNet and cuDNN ``"ifco"``; haiku ``"igfo"``; TF1 ``BasicLSTMCell`` ``"ijfo"``;
    GRU (torch) ``"rzn"``.

    Args:
      order: one distinct letter per gate, in memory order.
      default: the value of the gates not named in ``values``.
      dtype: the default dtype (integer dtypes allowed).
      **values: ``gate_letter=value`` pairs, e.g. ``f=1.0``.

    Raises:
      InitializerArgumentError: for a bad order, a gate not in order, or a non-finite value.
      ShapeError: when the last axis is not divisible by the number of gates.

    Examples:
      >>> import jax, jinit
      >>> jinit.gate_bias("ifco", f=1.0)(jax.random.key(0), (8,)).tolist()
      [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """
    return GateBias(order, tuple(values.items()), default, dtype)


def lstm_forget_bias(forget_bias: Any = 1.0, order: str = "ifgo",
                     dtype: DTypeLike | None = None) -> Initializer:
    """Builds an LSTM bias initializer: zeros, and ``forget_bias`` on the forget-gate slice.

    :func:`gate_bias` with ``f=forget_bias``. With the default order (forget gate second) it
    equals MXNet ``init.LSTMBias(forget_bias)`` (``arr[H:2H] = forget_bias``) and the bias of a
    Keras ``LSTM(unit_forget_bias=True)``; pass ``order`` for other layouts (it must contain
    ``"f"``).

    Examples:
      >>> import jax, jinit
      >>> jinit.lstm_forget_bias(2.0)(jax.random.key(0), (8,)).tolist()
      [0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]

    References:
      Jozefowicz, Zaremba & Sutskever, `An Empirical Exploration of Recurrent Network
      Architectures <https://proceedings.mlr.press/v37/jozefowicz15.html>`_, 2015
    """
    check_real("forget_bias", forget_bias, owner="lstm_forget_bias")
    return GateBias(order, (("f", forget_bias),), 0.0, dtype)


@dataclasses.dataclass(frozen=True)
class Chrono(Initializer):
    """Chrono LSTM bias: ``b_f = log(U[1, t_max - 1])``, ``b_i = -b_f``, other gates zero."""

    t_max: Any
    order: str = "ifgo"
    dtype: DTypeLike | None = None
    min_ndim: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_real("t_max", self.t_max, owner="chrono")
        if not float(self.t_max) > 2:
            raise InitializerArgumentError(
                f"chrono: t_max (the longest expected dependency, in time steps) must be > 2; "
                f"got t_max={self.t_max!r}.")
        _check_order(self.order, "chrono")
        if "i" not in self.order or "f" not in self.order:
            raise InitializerArgumentError(
                f"chrono: order must contain the input gate 'i' and forget gate 'f'; got "
                f"order={self.order!r}.")

    def _sample(self, key, shape, dtype, out_sharding):
        check_real_dtype(dtype, self)
        hidden = _gate_slices(shape, len(self.order), self)
        gate_shape = shape[:-1] + (hidden,)
        check_fits(self, "t_max", self.t_max, dtype)
        u = _random.uniform(key, gate_shape, dtype, minval=1.0, maxval=float(self.t_max) - 1)
        b_f = jnp.log(u)
        blocks = [b_f if g == "f" else -b_f if g == "i" else jnp.zeros(gate_shape, dtype)
                  for g in self.order]
        return place(jnp.concatenate(blocks, axis=-1), out_sharding)


def chrono(t_max: Any, order: str = "ifgo", dtype: DTypeLike | None = None) -> Initializer:
    """Builds a chrono initializer for a fused LSTM bias ``(..., n_gates * H)``.

    The forget-gate bias is ``log(u)`` with ``u ~ U[1, t_max - 1]`` and the input-gate bias is
    its negation; the other gates are zero. It generalizes forget bias 1 to a range of
    time scales up to ``t_max``.

    Args:
      t_max: the longest dependency (in time steps) the network should remember (> 2).
      order: the gate order along the last axis; must contain ``"i"`` and ``"f"``.
      dtype: the default dtype.

    Examples:
      >>> import jax, jinit
      >>> b = jinit.chrono(100)(jax.random.key(0), (4 * 256,))
      >>> bool((b[256:512] >= 0).all() and (b[:256] == -b[256:512]).all())
      True

    References:
      Tallec & Ollivier, `Can recurrent neural networks warp time?
      <https://arxiv.org/abs/1804.11188>`_, 2018
    """
    return Chrono(t_max, order, dtype)
