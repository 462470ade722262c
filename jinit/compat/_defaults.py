"""Per-framework layer defaults as tree initializers over Flax parameter trees.

``jinit.compat.{torch,keras,mxnet,flax}.defaults()`` initialize a Flax parameter tree (linen
``params`` or a whole ``variables`` dict, or an ``nnx.State``) the way each framework initializes
the equivalent layers. Two steps:

1. **Recognition** (:func:`recognize`): from the tree's paths and shapes only, every leaf gets a
   :class:`Layer`: its *kind* (``"kernel"``, ``"bias"``, ``"embedding"``, ``"rnn_hidden_kernel"``,
   ...) and the geometry a default needs (fans, hidden size, gate, ...). Layers are recognized by
   Flax's leaf names (``kernel``, ``bias``, ``embedding``, ``scale``, ``mean``/``var``,
   ``negative_slope``), by the names of sibling sub-modules (an LSTM cell is a module whose
   children are the gate layers ``ii``, ``if``, ..., ``ho``; attention is a module with
   ``query``, ``key``, ``value`` and ``out``) and by shapes, never by one model's names.
2. **A table per framework** maps each kind to that framework's initializer, computed from the
   :class:`Layer` (so torch's bias bound comes from the sibling kernel's fan-in).

``defaults()`` returns a :func:`jinit.rules` object with one rule per kind (selector
:class:`LayerKind`, initializer a layer-aware :class:`LayerDefault`), so ``.plan(tree)`` and
:func:`jinit.summary` show the kind of each leaf, and user rules placed before it override it:
``jinit.rules((".*/head/kernel", jinit.zeros), jinit.compat.torch.defaults())``. Unrecognized
leaves match no rule: concrete ones are kept, abstract ones raise :class:`jinit.RuleError` until
a rule covers them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jinit import _random
from jinit._combinators import Wrapper
from jinit._errors import InitializerArgumentError, ShapeError
from jinit._initializers import (
    Initializer,
    check_real,
    constant,
    ones,
    orthogonal,
    place,
    variance_scaling,
    zeros,
)
from jinit._layer_axes import planned_shapes
from jinit._paths import flatten, is_array_like
from jinit._structural import gate_bias
from jinit._tree import LeafContext, Rules, rules
from jinit._typing import DTypeLike, InitFn
from jinit.select import Predicate

# --- the layer of a leaf --------------------------------------------------------------------

#: Every kind :func:`recognize` assigns, in the order ``defaults()`` lists its rules.
KINDS: tuple[str, ...] = (
    "kernel", "bias", "embedding", "scale", "shift", "mean", "var", "prelu",
    "rnn_input_kernel", "rnn_hidden_kernel", "rnn_bias",
    "attention_kernel", "attention_out_kernel", "attention_bias",
)


@dataclasses.dataclass(frozen=True)
class Layer:
    """What :func:`recognize` found out about one leaf.

    Attributes:
      kind: one of :data:`KINDS`.
      module: the path of the layer holding the leaf (``"Dense_0"``).
      fan_in, fan_out: kernels: the fans over ``in_axes``/``out_axes``; biases: their kernel's.
      in_axes, out_axes: the kernel's input and output axes (the rest is receptive field).
      transposed: a transposed convolution (torch takes its fan-in from the output channels).
      cell: recurrent cells: ``"lstm"``, ``"gru"`` or ``"simple"``.
      gates: the gate letters the leaf covers, in layout order (``"f"``, or ``"ifgo"`` fused).
      order: the cell's gate order (``"ifgo"``, ``"rzn"``, ``"h"``).
      hidden, inputs: the cell's hidden size and input features.
      sources: per gate of a recurrent bias, how many torch biases add up to it (torch has
        ``b_ih`` and ``b_hh``; a Flax cell often has one of them).
      packed: attention q/k/v of equal widths, which torch packs into one ``in_proj_weight``.
    """

    kind: str
    module: str
    fan_in: int = 0
    fan_out: int = 0
    in_axes: tuple[int, ...] = ()
    out_axes: tuple[int, ...] = ()
    transposed: bool = False
    cell: str = ""
    gates: str = ""
    order: str = ""
    hidden: int = 0
    inputs: int = 0
    sources: tuple[int, ...] = ()
    packed: bool = False

    @property
    def torch_fan_in(self) -> int:
        """The fan-in torch uses: a transposed conv's weight is ``(I, O/g, *k)``."""
        return self.fan_out if self.transposed else self.fan_in

    @property
    def block(self) -> int:
        """Index of this leaf's gate in the cell's fused layout; -1 if the leaf is fused."""
        return self.order.index(self.gates) if len(self.gates) == 1 < len(self.order) else -1


_CONV = re.compile(r"(?i).*conv.*")
_TRANSPOSED = re.compile(r"(?i).*(transpose|deconv).*")
_DENSE = re.compile(r"(?i).*(dense|linear|proj).*")
_ATTENTION = ("query", "key", "value", "out")

#: Per-gate recurrent cells: (cell, gate order, sides). Gate layers are named side + gate
#: (``ii``, ``hf``, ...); nnx spells ``if`` as ``if_``.
_GATED = (("lstm", "ifgo"), ("gru", "rzn"))
#: Fused cells (nnx OptimizedLSTMCell, GRUCell, SimpleCell): recurrent width / hidden -> cell.
_FUSED = {4: ("lstm", "ifgo"), 3: ("gru", "rzn"), 1: ("simple", "h")}


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


@dataclasses.dataclass(frozen=True)
class _Cell:
    """A recognized recurrent cell: where its gate layers are and what they hold."""

    cell: str
    order: str
    hidden: int
    inputs: int
    layers: Mapping[tuple[str, str], str]  # (side, gate or "") -> layer path
    fused: bool

    def sources(self, side: str, gate: str, modules: Mapping[str, Mapping[str, tuple]]) -> int:
        """How many torch biases feed the Flax bias of ``gate`` on ``side``."""
        other = "h" if side == "i" else "i"
        layer = self.layers.get((other, "" if self.fused else gate))
        other_has_bias = layer is not None and "bias" in modules.get(layer, {})
        additive = not (self.cell == "gru" and gate == "n")  # torch: n = W x + b + r*(U h + b)
        return 1 + (not other_has_bias and additive)


class _Recognizer:
    """Recognizes the layers of one tree, given its array leaves' paths and shapes."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]):
        self.shapes = shapes
        self.modules: dict[str, dict[str, tuple[int, ...]]] = {}
        self.children: dict[str, set[str]] = {}
        for path, shape in shapes.items():
            parent, name = _split(path)
            self.modules.setdefault(parent, {})[name] = tuple(shape)
        for module in self.modules:
            if module:
                grand, name = _split(module)
                self.children.setdefault(grand, set()).add(name)

    def run(self) -> dict[str, Layer]:
        out = {}
        for path in self.shapes:
            layer = self.leaf(path)
            if layer is not None:
                out[path] = layer
        return out

    def leaf(self, path: str) -> Layer | None:
        module, name = _split(path)
        leaves = self.modules[module]
        if name in ("mean", "var") and {"mean", "var"} <= set(leaves):
            return Layer(name, module)
        if name == "embedding" and len(leaves[name]) == 2:
            return Layer("embedding", module)
        if name == "negative_slope":
            return Layer("prelu", module)
        if name in ("kernel", "bias") and "kernel" in leaves:
            return self.kernel_layer(module, name)
        if name == "scale":
            return Layer("scale", module)
        if name == "bias" and "embedding" not in leaves:
            return Layer("shift", module)
        return None

    def kernel_layer(self, module: str, name: str) -> Layer | None:
        parent, own = _split(module)
        cell = self.cell(parent)
        if cell is not None:
            return self.rnn_layer(cell, module, own, name)
        if own in _ATTENTION and set(_ATTENTION) <= self.children.get(parent, set()):
            return self.attention_layer(parent, own, name)
        return self.dense_or_conv(module, own, name)

    # -- recurrent cells ------------------------------------------------------------------------

    def kernel_of(self, module: str) -> tuple[int, ...] | None:
        return self.modules.get(module, {}).get("kernel")

    def cell(self, parent: str) -> _Cell | None:
        kids = self.children.get(parent, set())
        for cell, order in _GATED:
            layers = {}
            for side in "ih":
                for g in order:
                    name = side + g
                    name = name if name in kids else name + "_"  # nnx: "if_"
                    if self.kernel_of(_join(parent, name)) is None:
                        break
                    layers[(side, g)] = _join(parent, name)
            if len(layers) == 2 * len(order):
                hk, ik = self.kernel_of(layers[("h", order[0])]), self.kernel_of(
                    layers[("i", order[0])])
                return _Cell(cell, order, hk[-1], ik[0], layers, fused=False)
        if kids == {"i", "h"}:
            hk, ik = self.kernel_of(_join(parent, "h")), self.kernel_of(_join(parent, "i"))
            if hk is not None and ik is not None and len(hk) == len(ik) == 2:
                layers = {(s, "h"): _join(parent, s) for s in "ih"}
                return _Cell("simple", "h", hk[-1], ik[0], layers, fused=False)
        if {"dense_i", "dense_h"} <= kids:
            hk = self.kernel_of(_join(parent, "dense_h"))
            ik = self.kernel_of(_join(parent, "dense_i"))
            if hk is not None and ik is not None and len(hk) == len(ik) == 2 and hk[0] and (
                    hk[1] % hk[0] == 0 and hk[1] // hk[0] in _FUSED):
                cell, order = _FUSED[hk[1] // hk[0]]
                layers = {(s, ""): _join(parent, f"dense_{s}") for s in "ih"}
                return _Cell(cell, order, hk[0], ik[0], layers, fused=True)
        return None

    def rnn_layer(self, cell: _Cell, module: str, own: str, name: str) -> Layer:
        side = own[-1] if cell.fused else own[0]
        gates = cell.order if cell.fused else (own[1] if cell.cell != "simple" else "h")
        common = dict(cell=cell.cell, gates=gates, order=cell.order, hidden=cell.hidden,
                      inputs=cell.inputs)
        if name == "bias":
            sources = tuple(cell.sources(side, g, self.modules) for g in gates)
            return Layer("rnn_bias", module, sources=sources, **common)
        kind = "rnn_input_kernel" if side == "i" else "rnn_hidden_kernel"
        return Layer(kind, module, **common)

    # -- attention ------------------------------------------------------------------------------

    def attention_layer(self, parent: str, own: str, name: str) -> Layer | None:
        shape = self.kernel_of(_join(parent, own))
        if len(shape) < 2:
            return None
        if name == "bias":
            return Layer("attention_bias", _join(parent, own))
        nd = len(shape)
        if own == "out":
            in_axes, out_axes = tuple(range(nd - 1)), (nd - 1,)
            kind, packed = "attention_out_kernel", False
        else:
            in_axes, out_axes = (0,), tuple(range(1, nd))
            widths = [self.kernel_of(_join(parent, n)) for n in _ATTENTION[:3]]
            proj = math.prod(shape[1:])
            packed = all(w is not None and w[0] == proj and math.prod(w[1:]) == proj
                         for w in widths)
            kind = "attention_kernel"
        fan_in = math.prod(shape[a] for a in in_axes)
        fan_out = math.prod(shape[a] for a in out_axes)
        return Layer(kind, _join(parent, own), fan_in, fan_out, in_axes, out_axes,
                     packed=packed)

    # -- dense, dense-general, conv --------------------------------------------------------------

    def dense_or_conv(self, module: str, own: str, name: str) -> Layer | None:
        leaves = self.modules[module]
        shape = leaves["kernel"]
        nd = len(shape)
        if nd < 2:
            return None
        bias = leaves.get("bias")
        transposed = False
        if nd == 2:
            in_axes, out_axes = (0,), (1,)
        elif _CONV.fullmatch(own):
            in_axes, out_axes = (nd - 2,), (nd - 1,)
            transposed = bool(_TRANSPOSED.fullmatch(own))
        elif bias is not None and 1 < len(bias) < nd and tuple(shape[nd - len(bias):]) == bias:
            in_axes, out_axes = tuple(range(nd - len(bias))), tuple(range(nd - len(bias), nd))
        elif _DENSE.fullmatch(own):
            in_axes, out_axes = tuple(range(nd - 1)), (nd - 1,)
        else:  # Flax's convolutions: (*k, in/groups, out)
            in_axes, out_axes = (nd - 2,), (nd - 1,)
            transposed = bool(_TRANSPOSED.fullmatch(own))
        rf = math.prod(shape) // max(1, math.prod(shape[a] for a in in_axes + out_axes))
        fan_in = math.prod(shape[a] for a in in_axes) * rf
        fan_out = math.prod(shape[a] for a in out_axes) * rf
        return Layer(name if name == "bias" else "kernel", module, fan_in, fan_out, in_axes,
                     out_axes, transposed)


def recognize(tree: Any) -> dict[str, Layer]:
    """Recognizes the layer of every leaf of a Flax parameter tree (shapes only).

    Args:
      tree: linen ``params`` or ``variables``, an ``nnx.State``, or any pytree of arrays /
        ``jax.ShapeDtypeStruct``; or a mapping ``path -> leaf`` (a :class:`LeafContext`'s
        ``tree``).

    Returns:
      ``{path: Layer}`` for every recognized leaf; unrecognized leaves are absent.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jinit.compat import flax as jflax
      >>> s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
      >>> params = {"Dense_0": {"kernel": s(4, 8), "bias": s(8)}, "pos": s(16, 8)}
      >>> {p: (l.kind, l.fan_in) for p, l in jflax.recognize(params).items()}
      {'Dense_0/bias': ('bias', 4), 'Dense_0/kernel': ('kernel', 4)}
    """
    return dict(_recognize(_shapes(tree)))


def _shapes(tree: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``(path, shape)`` of every array leaf: all that recognition looks at (hashable)."""
    if isinstance(tree, Mapping) and all(isinstance(p, str) and is_array_like(x)
                                         for p, x in tree.items()):
        return tuple((p, tuple(x.shape)) for p, x in tree.items())
    flat = flatten(tree)
    return tuple((flat.paths[i], tuple(flat.leaves[i].shape)) for i in flat.array_indices())


@functools.lru_cache(maxsize=16)
def _recognize(shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> dict[str, Layer]:
    return _Recognizer(dict(shapes)).run()


class _LastTree:
    """A one-entry identity cache of the shapes map a tree initializer builds for one call.

    The rules of ``defaults()`` ask once per leaf with the same ``LeafContext.tree`` (a dict of
    ``jax.ShapeDtypeStruct``: holding it keeps no array alive).
    """

    def __init__(self) -> None:
        self.tree: Any = None
        self.layers: dict[str, Layer] = {}

    def __call__(self, tree: Mapping[str, Any]) -> dict[str, Layer]:
        if tree is not self.tree:
            self.layers, self.tree = _recognize(_shapes(tree)), tree
        return self.layers


_layers_of_context = _LastTree()


@dataclasses.dataclass(frozen=True)
class LayerKind(Predicate):
    """Selects the leaves that :func:`recognize` assigns one of ``kinds``.

    Examples:
      >>> import jax, jax.numpy as jnp, jinit
      >>> from jinit.compat import flax as jflax
      >>> spec = {"LayerNorm_0": {"scale": jax.ShapeDtypeStruct((4,), jnp.float32)}}
      >>> jinit.paths(spec, jflax.LayerKind(("scale",)))
      ['LayerNorm_0/scale']
    """

    kinds: tuple[str, ...]

    def __post_init__(self) -> None:
        kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise InitializerArgumentError(
                f"LayerKind: unknown kind(s) {unknown}; the kinds are {KINDS}.")
        object.__setattr__(self, "kinds", kinds)

    def __call__(self, path: str, leaf: Any) -> bool:
        raise InitializerArgumentError(
            "LayerKind needs the whole tree to recognize layers: use it as a selector in "
            "jinit.rules(...) or jinit.paths(tree, selector).")

    def prepare(self, tree: Any) -> Callable[[str, Any], bool]:
        shapes = planned_shapes(tree)  # per layer (stacked leaves), while a tree is planned
        layers = _recognize(shapes if shapes is not None else _shapes(tree))
        return lambda path, leaf: path in layers and layers[path].kind in self.kinds


# --- initializers the tables need and the core lacks ------------------------------------------


@dataclasses.dataclass(frozen=True)
class UniformSum(Initializer):
    """Per gate slice of the last axis, the sum of ``sources[g]`` independent ``U(±bound)``.

    A Flax recurrent cell with one bias per gate stands for torch's ``b_ih + b_hh``: two
    uniforms summed (a triangular law, variance ``2 bound^2 / 3``) where torch adds both.
    """

    bound: Any
    sources: tuple[int, ...] = (1,)
    dtype: DTypeLike | None = None
    min_ndim: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_real("bound", self.bound, owner="UniformSum", nonnegative=True)
        if not self.sources or any(int(s) < 1 for s in self.sources):
            raise InitializerArgumentError(
                f"UniformSum: sources must be positive counts per gate; got {self.sources!r}.")
        object.__setattr__(self, "sources", tuple(int(s) for s in self.sources))

    def _sample(self, key, shape, dtype, out_sharding):
        n = len(self.sources)
        if shape[-1] % n:
            raise ShapeError(f"{self!r}: the last axis of shape {shape} is not divisible into "
                             f"{n} gates.")
        most = max(self.sources)
        u = _random.uniform(key, (most, *shape), dtype, -self.bound, self.bound)
        count = jnp.repeat(jnp.asarray(self.sources), shape[-1] // n)
        out = sum(jnp.where(c < count, u[c], jnp.zeros((), dtype)) for c in range(most))
        return place(out.astype(dtype), out_sharding)


@dataclasses.dataclass(frozen=True)
class Block(Wrapper):
    """Block ``index`` along ``axis`` of one draw of ``init`` at the ``fused`` shape.

    Keras draws an LSTM's recurrent kernel as one orthogonal ``(H, 4H)`` matrix; a Flax
    per-gate cell holds its four ``(H, H)`` blocks as separate leaves. Each leaf is the block of
    a fused draw; with a shared ``key_path`` (the tree initializer keys the leaf by it instead
    of the leaf's own path) all blocks come from the *same* draw, so together they are exactly
    the framework's matrix (jointly orthogonal), not just blocks with the right marginal law.
    """

    init: InitFn
    fused: tuple[int, ...]
    index: int
    axis: int = -1
    key_path: str | None = None

    def _apply(self, key, shape, dtype, out_sharding):
        axis = self.axis % len(shape)
        size = shape[axis]
        want = self.fused[:axis] + (size,) + self.fused[axis + 1:]
        if len(shape) != len(self.fused) or shape != want or (
                (self.index + 1) * size > self.fused[axis]):
            raise ShapeError(f"{self!r} cannot produce block {self.index} of shape {shape}.")
        full = self.init(key, self.fused, dtype) if dtype is not None else self.init(
            key, self.fused)
        out = jax.lax.slice_in_dim(full, self.index * size, (self.index + 1) * size, axis=axis)
        return place(out, out_sharding)


# --- the tables -----------------------------------------------------------------------------

#: A framework's defaults: layer kind -> (the leaf's :class:`Layer` -> initializer).
Table = Mapping[str, Callable[[Layer], Any]]


def _fixed(init: Any) -> Callable[[Layer], Any]:
    """The same initializer whatever the layer."""
    return lambda layer: init


def _constants(**inits: Any) -> dict[str, Callable[[Layer], Any]]:
    """Norm scale 1 / shift 0 and running mean 0 / var 1 (every framework), plus ``inits``."""
    fixed = {"scale": ones, "var": ones, "shift": zeros, "mean": zeros, **inits}
    return {kind: _fixed(init) for kind, init in fixed.items()}


def _axes(layer: Layer) -> dict[str, Any]:
    """``in_axis``/``out_axis`` for jinit's variance scaling; Flax's defaults stay implicit."""
    nd = len(layer.in_axes) + len(layer.out_axes)
    if layer.in_axes == (nd - 2,) and layer.out_axes == (nd - 1,) or not layer.in_axes:
        return {}
    one = lambda axes: axes[0] if len(axes) == 1 else axes  # noqa: E731
    return {"in_axis": one(layer.in_axes), "out_axis": one(layer.out_axes)}


def _symmetric(bound: float) -> InitFn:
    """``U[-bound, bound)``, torch's ``uniform_(w, -bound, bound)``."""
    from jinit.compat import torch  # compat.torch re-exports this module: import late

    return torch.uniform(-bound, bound)


def _glorot(fan_in: float, fan_out: float) -> InitFn:
    """Glorot/Xavier uniform of the given fans: ``U(±sqrt(6 / (fan_in + fan_out)))``."""
    return _symmetric(math.sqrt(6.0 / (fan_in + fan_out)))


def _torch_fan(layer: Layer) -> InitFn:
    """Linear/Conv weight and bias: ``kaiming_uniform_(a=sqrt(5))`` = ``U(±1/sqrt(fan_in))``."""
    return _symmetric(1 / math.sqrt(layer.torch_fan_in))


def _torch_attention(layer: Layer) -> InitFn:
    """Packed ``in_proj_weight`` (3E, E): fan_in E, fan_out 3E; else per ``(E, kdim)``."""
    return _glorot(layer.fan_in, layer.fan_out * (3 if layer.packed else 1))


def _torch_rnn(layer: Layer) -> InitFn:
    return _symmetric(1 / math.sqrt(layer.hidden))


def _torch_rnn_bias(layer: Layer) -> InitFn:
    return UniformSum(1 / math.sqrt(layer.hidden), layer.sources)


def torch_table() -> Table:
    """torch: Linear/Conv ``U(±1/sqrt(fan_in))`` for weight *and* bias, RNNs ``U(±1/sqrt(H))``."""
    from jinit.compat import torch

    return _constants(embedding=torch.normal(0.0, 1.0), prelu=torch.constant(0.25),
                      attention_bias=zeros) | {
        "kernel": _torch_fan, "bias": _torch_fan, "attention_out_kernel": _torch_fan,
        "attention_kernel": _torch_attention,
        "rnn_input_kernel": _torch_rnn, "rnn_hidden_kernel": _torch_rnn,
        "rnn_bias": _torch_rnn_bias,
    }


_EINSUM = re.compile(r"(?i).*einsum.*")


def _keras_glorot(layer: Layer) -> InitFn:
    """``glorot_uniform`` with the kernel's (or the einsum's) input and output axes.

    Keras's ``EinsumDense`` takes its fans from the equation: every kernel axis is an input or
    an output axis. A Flax ``Einsum`` kernel shows them through its bias (the output axes); one
    without a bias gets the convolution fans and a warning saying how to give the axes.
    """
    if _EINSUM.fullmatch(layer.module.rpartition("/")[2]) and min(
            layer.in_axes + layer.out_axes, default=0) > 0:
        import warnings

        warnings.warn(
            f"keras.defaults: {layer.module!r} looks like an Einsum layer without a bias, so its "
            "kernel's input and output axes are unknown (Keras's EinsumDense reads them from "
            f"the equation); it gets the convolution fans ({layer.fan_in}, {layer.fan_out}). "
            f"Give the axes: jinit.rules((r'{layer.module}/kernel', jinit.compat.keras."
            "glorot_uniform(input_axes=[...], output_axes=[...])), "
            "jinit.compat.keras.defaults()).", UserWarning, stacklevel=2)
    return _glorot(layer.fan_in, layer.fan_out)


def _keras_rnn_input(layer: Layer) -> InitFn:
    """``glorot_uniform`` of the fused ``(in, n_gates * H)`` kernel: i.i.d., so any block."""
    return _glorot(layer.inputs, len(layer.order) * layer.hidden)


def _keras_recurrent(layer: Layer) -> InitFn:
    """``orthogonal`` of the fused ``(H, n_gates * H)`` matrix, or this gate's block of it."""
    from jinit.compat import keras

    ortho = keras.orthogonal(layout="flax")
    if layer.block < 0:
        return ortho
    cell = layer.module.rpartition("/")[0]
    return Block(ortho, (layer.hidden, len(layer.order) * layer.hidden), layer.block,
                 key_path=f"{cell}/<fused recurrent kernel>")


def keras_table(unit_forget_bias: bool = True) -> Table:
    """Keras: glorot_uniform kernels (fused RNN fans), orthogonal recurrent, zero biases."""
    from jinit.compat import keras

    def rnn_bias(layer: Layer) -> InitFn:
        if layer.cell != "lstm" or not unit_forget_bias or "f" not in layer.gates:
            return zeros
        return gate_bias(layer.gates, f=1.0)

    return _constants(bias=zeros, embedding=keras.random_uniform(-0.05, 0.05), prelu=zeros,
                      attention_bias=zeros) | {
        "kernel": _keras_glorot, "attention_kernel": _keras_glorot,
        "attention_out_kernel": _keras_glorot,
        "rnn_input_kernel": _keras_rnn_input, "rnn_hidden_kernel": _keras_recurrent,
        "rnn_bias": rnn_bias,
    }


def mxnet_table(init: InitFn) -> Table:
    """MXNet Gluon: every weight from the global init (``Uniform(0.07)``), biases 0, gamma 1."""
    weights = ("kernel", "embedding", "rnn_input_kernel", "rnn_hidden_kernel",
               "attention_kernel", "attention_out_kernel")
    return _constants(bias=zeros, rnn_bias=zeros, attention_bias=zeros,
                      prelu=constant(0.25), **dict.fromkeys(weights, init))


def _lecun(layer: Layer) -> InitFn:
    """Flax's ``lecun_normal``; DenseGeneral kernels are flattened to (in, out) first, while
    ``nn.Einsum`` keeps ``lecun_normal``'s own axes (Flax does not read its equation)."""
    einsum = _EINSUM.fullmatch(layer.module.rpartition("/")[2])
    return variance_scaling(1.0, "fan_in", "truncated_normal", **({} if einsum else _axes(layer)))


def flax_table() -> Table:
    """Flax: lecun_normal kernels (DenseGeneral fans), orthogonal recurrent, N(0, 1/d) embed."""
    return _constants(
        bias=zeros, rnn_bias=zeros, attention_bias=zeros, prelu=constant(0.01),
        embedding=variance_scaling(1.0, "fan_in", "normal", out_axis=0),
        rnn_hidden_kernel=orthogonal()) | dict.fromkeys(
            ("kernel", "rnn_input_kernel", "attention_kernel", "attention_out_kernel"), _lecun)


@dataclasses.dataclass(frozen=True)
class LayerDefault:
    """The layer-aware initializer of one kind: ``table[kind](layer of the leaf)``."""

    framework: str
    kind: str
    table: Table = dataclasses.field(repr=False, compare=False, hash=False)

    def resolve(self, ctx: LeafContext) -> Any:
        layer = _layers_of_context(ctx.tree).get(ctx.path)
        if layer is None or layer.kind != self.kind:  # selected by a user's own selector
            layer = Layer(self.kind, ctx.parent)
        return self.table[self.kind](layer)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise InitializerArgumentError(
            f"{self!r} is layer-aware: use it in jinit.rules(...), e.g. through "
            f"jinit.compat.{self.framework}.defaults().")

    def __repr__(self) -> str:
        return f"{self.framework}.{self.kind}"


def _defaults(framework: str, table: Table) -> Rules:
    return rules(*((LayerKind((kind,)), LayerDefault(framework, kind, table)) for kind in KINDS),
                 strict=False)


def torch_defaults() -> Rules:
    """PyTorch's layer defaults for a Flax parameter tree, as a tree initializer.

    ======================  ===============================================================
    Flax leaf               torch layer and init applied
    ======================  ===============================================================
    Dense/Conv kernel       ``Linear``/``ConvNd``: ``U(±1/sqrt(fan_in))`` (kaiming a=sqrt 5);
                            ``ConvTranspose``: fan_in from the *output* channels
    Dense/Conv bias         ``U(±1/sqrt(fan_in))``, fan_in of the sibling kernel
    Embed embedding         ``N(0, 1)``
    norm scale / bias       1 / 0; BatchNorm mean 0, var 1; PReLU slope 0.25
    LSTM/GRU/RNN kernels    ``U(±1/sqrt(H))``
    LSTM/GRU/RNN biases     ``U(±1/sqrt(H))``, or the sum of two (``b_ih + b_hh``) where the
                            Flax cell holds one bias for both (triangular, var ``2/(3H)``)
    attention q/k/v         xavier_uniform of torch's packed ``(3E, E)`` ``in_proj_weight``
                            (fan_out 3E) when q/k/v widths are equal, else per projection
    attention out / biases  ``U(±1/sqrt(E))`` / 0
    ======================  ===============================================================

    Returns:
      A :func:`jinit.rules` tree initializer (one rule per layer kind, non-strict); put
      override rules before it: ``jinit.rules((".*/head/kernel", jinit.zeros), defaults())``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jinit.compat import torch
      >>> spec = {"Dense_0": {"kernel": jax.ShapeDtypeStruct((256, 512), jnp.float32),
      ...                     "bias": jax.ShapeDtypeStruct((512,), jnp.float32)}}
      >>> p = torch.defaults()(jax.random.key(0), spec)["Dense_0"]
      >>> bool(abs(p["bias"]).max() <= 1 / 16), round(float(p["kernel"].std() * 16 * 3**.5), 1)
      (True, 1.0)
    """
    return _defaults("torch", torch_table())


def keras_defaults(unit_forget_bias: bool = True) -> Rules:
    """Keras 3's layer defaults for a Flax parameter tree, as a tree initializer.

    ======================  ===============================================================
    Flax leaf               Keras layer and init applied
    ======================  ===============================================================
    Dense/Conv kernel       ``glorot_uniform`` with the kernel's fans (``Conv(groups=g)``:
                            ``(*k, I/g, O)``, as Flax stores it)
    biases                  zeros
    Embed embedding         ``RandomUniform(-0.05, 0.05)``
    norm scale / bias       1 / 0; BatchNorm moving mean 0, var 1; PReLU alpha 0
    LSTM/GRU/RNN input      ``glorot_uniform`` of the *fused* ``(in, n_gates*H)`` kernel
    LSTM/GRU/RNN recurrent  ``orthogonal`` of the fused ``(H, n_gates*H)`` matrix (a per-gate
                            Flax leaf is its block)
    LSTM/GRU/RNN biases     zeros; the LSTM forget gate 1 (``unit_forget_bias``)
    attention kernels       ``glorot_uniform`` with the einsum's input/output axes
    attention biases        zeros
    ======================  ===============================================================

    Args:
      unit_forget_bias: as Keras ``LSTM(unit_forget_bias=...)``.

    Returns:
      A :func:`jinit.rules` tree initializer (non-strict).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jinit.compat import keras
      >>> spec = {"Embed_0": {"embedding": jax.ShapeDtypeStruct((1000, 16), jnp.float32)}}
      >>> e = keras.defaults()(jax.random.key(0), spec)["Embed_0"]["embedding"]
      >>> bool(abs(e).max() <= 0.05)
      True
    """
    if not isinstance(unit_forget_bias, bool):
        raise InitializerArgumentError(
            f"keras.defaults: unit_forget_bias must be a bool; got {unit_forget_bias!r}.")
    return _defaults("keras", keras_table(unit_forget_bias))


def mxnet_defaults(init: InitFn | None = None) -> Rules:
    """MXNet Gluon's layer defaults after ``net.initialize(init)``, as a tree initializer.

    Every weight (Dense/Conv kernels, embeddings, RNN and attention kernels) comes from the
    global initializer ``init``: by default ``mx.init.Uniform()``, i.e. ``U(±0.07)``. Biases,
    ``beta`` and running means are 0; ``gamma`` and running variances 1; PReLU alpha 0.25.

    Args:
      init: the global initializer, for Flax-layout weights (default ``U(±0.07)``).

    Returns:
      A :func:`jinit.rules` tree initializer (non-strict).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jinit.compat import mxnet
      >>> spec = {"Dense_0": {"kernel": jax.ShapeDtypeStruct((64, 64), jnp.float32)}}
      >>> w = mxnet.defaults()(jax.random.key(0), spec)["Dense_0"]["kernel"]
      >>> bool(abs(w).max() <= 0.07), round(float(w.std()), 2)
      (True, 0.04)
    """
    if init is None:
        from jinit.compat import mxnet  # noqa: PLC0415

        init = mxnet.uniform(0.07)
    elif not callable(init):
        raise InitializerArgumentError(
            f"mxnet.defaults: init must be an initializer (key, shape, dtype) -> array; got "
            f"{init!r}.")
    return _defaults("mxnet", mxnet_table(init))


def flax_defaults() -> Rules:
    """Flax's own layer defaults (linen and nnx), as a tree initializer.

    ``lecun_normal`` kernels (DenseGeneral/attention kernels with the fans of the flattened
    kernel), zero biases, ``N(0, 1/features)`` embeddings, norm scale 1 and bias 0, BatchNorm
    mean 0 and var 1, PReLU slope 0.01, recurrent kernels ``orthogonal`` on the leaf (per gate
    in linen cells, fused in nnx ``OptimizedLSTMCell``/``GRUCell``). Use it to re-initialize a
    trained model to Flax's defaults, with per-path keys.

    Returns:
      A :func:`jinit.rules` tree initializer (non-strict).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jinit.compat import flax
      >>> spec = {"LayerNorm_0": {"scale": jax.ShapeDtypeStruct((3,), jnp.float32)}}
      >>> flax.defaults()(jax.random.key(0), spec)["LayerNorm_0"]["scale"].tolist()
      [1.0, 1.0, 1.0]
    """
    return _defaults("flax", flax_table())


__all__ = [
    "KINDS",
    "Block",
    "Layer",
    "LayerDefault",
    "LayerKind",
    "UniformSum",
    "flax_defaults",
    "keras_defaults",
    "mxnet_defaults",
    "recognize",
    "torch_defaults",
]
