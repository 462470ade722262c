"""The layer-rule registry: which conversion rule fills a target layer of a given type.

A rule (:class:`LayerRule`) says which Flax layer class a target layer type takes, the layout
operations (:mod:`~jinit.interop._layouts`) that turn the Flax slots into the target's tensors,
and which hyper-parameters to compare. Rules are looked up by the target object's class (most
derived registered class first), then by structural matchers, in registration order. The
built-in rules for torch, Keras (3 and tf-keras) and Gluon are registered with the same
:func:`register_layer` call that users call.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any

from jinit._errors import RuleError
from jinit.interop._layouts import Rule

FRAMEWORKS = ("torch", "keras", "gluon")
#: the root package of a class -> the framework whose models hold it
_PACKAGES = {"torch": "torch", "keras": "keras", "tf_keras": "keras", "mxnet": "gluon"}

#: Flax layer classes a rule can take (see ``flax_class``); "*" takes any Flax layer whose slot
#: names equal the target's tensor names (raw parameters).
FLAX_CLASSES = ("kernel1", "kernel2", "kernel3", "kernel4", "kernel5", "embed", "norm", "batch_norm",
                "lstm", "gru", "mha", "*")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class HParam:
    """A layer hyper-parameter that the parameter tree does not hold, compared on both sides.

    Attributes:
      name: Flax's name (``"epsilon"``, ``"momentum"``, ``"num_heads"``).
      target: how to read the target layer's value: an attribute name, a tuple of attribute
        names (the first present is used), a callable ``layer -> value``, or None (a Flax-only
        value that changes the layout, like ``transpose_kernel``).
      default: the Flax module's default, used (and reported as an assumption) when neither
        ``source=`` nor ``hparams`` gives the value; None: no assumption, unknown values are
        not compared.
      affects_output: a mismatch changes the forward pass (an error) rather than only training
        (a warning).
      convert: Flax value -> the target framework's convention (torch momentum ``1 - m``).
      flax_attrs: attribute names to read on the Flax source module (default: ``(name,)``).
      derive: the Flax value computed from the Flax layer's slot specs (heads from a
        ``(E, H, D)`` kernel), used when the source module does not give it.
    """

    name: str
    target: str | tuple[str, ...] | Callable[[Any], Any] | None = None
    default: Any = None
    affects_output: bool = True
    convert: Callable[[Any], Any] | None = None
    flax_attrs: tuple[str, ...] = ()
    derive: Callable[[Mapping[str, Any]], Any] | None = None

    def read_target(self, layer: Any) -> Any:
        """The target layer's value (None when the layer does not say)."""
        if self.target is None:
            return None
        if callable(self.target):
            return self.target(layer)
        for attr in (self.target,) if isinstance(self.target, str) else self.target:
            value = getattr(layer, attr, None)
            if value is not None:
                return value
        return None

    def to_target(self, value: Any) -> Any:
        return self.convert(value) if self.convert is not None and value is not None else value

    @property
    def attrs(self) -> tuple[str, ...]:
        return self.flax_attrs or (self.name,)


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """How a Flax layer fills one target layer type.

    Attributes:
      kind: a short name shown in reports and plans (``"dense"``, ``"rms_norm"``).
      flax: the Flax layer class it takes: ``"kernel2"`` (a 2-D ``kernel`` and optional
        ``bias``), ``"kernel3"``..``"kernel5"`` (conv kernels), ``"embed"``, ``"norm"``
        (``scale`` and/or ``bias``), ``"batch_norm"``, ``"lstm"``, ``"gru"``, ``"mha"``, or
        ``"*"``: any Flax layer whose slot names equal the target's tensor names (identity).
      ops: the layout operations from the Flax slots to the target tensor names, or a function
        ``hparams -> ops`` when a Flax hyper-parameter changes the layout.
      alternatives: other layouts the Flax side may use for this target type (a transposed
        kernel); the one whose converted shapes fit is used. When several fit (a square
        kernel), the layout the other layers of the same model proved is used, else the pair is
        reported as ambiguous.
      hparams: the hyper-parameters to compare (see :class:`HParam`).
      unsupported: ``layer -> reason`` for configurations no Flax layer matches ("" if fine).

    Examples:
      >>> from jinit.interop import LayerRule, HParam, ops
      >>> rule = LayerRule("rms_norm", flax="norm", ops=(ops.Rename("scale", "weight"),),
      ...                  hparams=(HParam("epsilon", target="eps", default=1e-6),))
      >>> rule.kind, rule.describe({})
      ('rms_norm', 'rename scale->weight')
    """

    kind: str
    flax: str
    ops: Rule | Callable[[Mapping[str, Any]], Rule] = ()
    alternatives: tuple[Rule, ...] = ()
    hparams: tuple[HParam, ...] = ()
    unsupported: Callable[[Any], str] | None = None

    def __post_init__(self):
        if self.flax not in FLAX_CLASSES:
            raise RuleError(f"LayerRule {self.kind!r}: flax={self.flax!r} is not one of {FLAX_CLASSES}")

    def layouts(self, hparams: Mapping[str, Any]) -> tuple[Rule, ...]:
        """Every candidate layout for the given Flax hyper-parameters (the first is the usual one)."""
        first = self.ops(hparams) if callable(self.ops) else tuple(self.ops)
        return (first, *self.alternatives)

    def why_unsupported(self, layer: Any) -> str:
        return self.unsupported(layer) if self.unsupported is not None else ""

    def describe(self, hparams: Mapping[str, Any]) -> str:
        return "; ".join(op.describe() for op in self.layouts(hparams)[0]) or "identity"


#: parameters held directly by a layer no rule covers (ViT's ``cls_token``): filled as they
#: are from a Flax layer with the same slot names.
RAW = LayerRule("params", flax="*")


@dataclasses.dataclass
class _Table:
    by_type: dict[type, LayerRule] = dataclasses.field(default_factory=dict)
    matchers: list[tuple[Callable[[Any], bool], LayerRule]] = dataclasses.field(default_factory=list)
    early: list[tuple[Callable[[Any], bool], LayerRule]] = dataclasses.field(default_factory=list)


_TABLES: dict[str, _Table] = {fw: _Table() for fw in FRAMEWORKS}
_BUILTINS: dict[str, Callable[[], None]] = {}  # framework -> registers its built-in rules once
_LOADED: set[str] = set()
_LOCK = threading.RLock()


def framework_of(cls: type) -> str | None:
    """The framework whose layer class ``cls`` is (by its first framework base class)."""
    for base in getattr(cls, "__mro__", ()):
        fw = _PACKAGES.get(base.__module__.split(".")[0])
        if fw is not None:
            return fw
    return None


def builtins(framework: str, register: Callable[[], None]) -> None:
    """Declares the function registering ``framework``'s built-in rules (run on first use)."""
    _BUILTINS[framework] = register


_MODULES = {"torch": "_load_torch", "keras": "_load_keras", "gluon": "_load_gluon"}


_SINGLETONS: dict[str, Any] = {}


def singleton(name: str, make: Callable[[], Any]) -> Any:
    """One object per process for ``name`` (a layer class its rule is registered for), even when
    the defining module is imported twice (doctest collection imports ``interop`` as well)."""
    with _LOCK:
        if name not in _SINGLETONS:
            _SINGLETONS[name] = make()
        return _SINGLETONS[name]


def first_time(token: str) -> bool:
    """True the first time ``token`` is seen (built-in registrations run once per process)."""
    with _LOCK:
        if token in _LOADED:
            return False
        _LOADED.add(token)
        return True


def _ensure(framework: str) -> None:
    import importlib

    importlib.import_module(f"jinit.interop.{_MODULES[framework]}")  # declares its built-ins
    with _LOCK:
        if framework in _LOADED or framework not in _BUILTINS:
            return
        _LOADED.add(framework)
        _BUILTINS[framework]()


def register_layer(
    target: type | Callable[[Any], bool],
    rule: LayerRule,
    *,
    framework: str | None = None,
    replace: bool = False,
    before_classes: bool = False,
) -> None:
    """Registers the conversion rule for a target layer type (torch, Keras or Gluon class).

    Every built-in rule is registered with this call. A class rule applies to the class and its
    subclasses (the most derived registered class wins); a structural matcher (a predicate on
    the layer object, with ``framework`` given) applies to layers no class rule covers, tried in
    registration order.

    Args:
      target: the layer class (``torch.nn.Linear``, ``keras.layers.Dense``, a Gluon block class,
        your own module class), or a predicate ``layer -> bool``.
      rule: the :class:`LayerRule`.
      framework: ``"torch"``, ``"keras"`` or ``"gluon"``; inferred from a class.
      replace: replace an existing rule for the same class (otherwise an error).
      before_classes: a matcher tried before the class rules (for layers that a wrapper changes,
        like torch's parametrized modules).

    Raises:
      RuleError: the class already has a rule (and not ``replace``), or its framework is unknown.

    Examples:
      >>> import torch
      >>> from jinit.interop import LayerRule, register_layer, ops, load_torch
      >>> class Scale(torch.nn.Module):  # y = x * gain
      ...     def __init__(self, n):
      ...         super().__init__()
      ...         self.gain = torch.nn.Parameter(torch.ones(n))
      >>> register_layer(Scale, LayerRule("scale", flax="norm", ops=(ops.Rename("scale", "gain"),)))
      >>> import jax.numpy as jnp
      >>> report = load_torch(Scale(3), {"params": {"scale": jnp.arange(3.0)}})
      >>> [(p.target, p.transform) for p in report.params]
      [('gain', 'rename scale->gain')]
    """
    if not isinstance(rule, LayerRule):
        raise RuleError(f"register_layer: rule must be a LayerRule, got {type(rule).__name__}")
    if isinstance(target, type):
        fw = framework or framework_of(target)
        if fw not in FRAMEWORKS:
            raise RuleError(f"register_layer: {target.__name__} is not a torch, Keras or Gluon class; "
                            f"pass framework= one of {FRAMEWORKS}")  # fmt: skip
        _ensure(fw)
        with _LOCK:
            table = _TABLES[fw]
            if target in table.by_type and not replace:
                raise RuleError(f"register_layer: {target.__module__}.{target.__qualname__} already has the rule "
                                f"{table.by_type[target].kind!r}; pass replace=True to replace it")  # fmt: skip
            table.by_type[target] = rule
        return
    if not callable(target) or framework not in FRAMEWORKS:
        raise RuleError(f"register_layer: a structural matcher needs framework= one of {FRAMEWORKS}")
    _ensure(framework)
    with _LOCK:
        table = _TABLES[framework]
        (table.early if before_classes else table.matchers).append((target, rule))


def lookup(framework: str, layer: Any) -> LayerRule | None:
    """The rule for a layer object: its most derived registered class, else the first matcher."""
    _ensure(framework)
    table = _TABLES[framework]
    for match, rule in table.early:
        if match(layer):
            return rule
    for cls in type(layer).__mro__:
        rule = table.by_type.get(cls)
        if rule is not None:
            return rule
    for match, rule in table.matchers:
        if match(layer):
            return rule
    return None


def registered(framework: str) -> dict[type, LayerRule]:
    """A copy of the class rules of a framework (for docs and tests)."""
    _ensure(framework)
    return dict(_TABLES[framework].by_type)
