"""``calculate_gain``: PyTorch's table of recommended gains per nonlinearity."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from jinit._errors import InitializerArgumentError
from jinit._initializers import derived

#: Names PyTorch treats as linear (gain 1).
LINEAR_NONLINEARITIES: tuple[str, ...] = (
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d")
#: Every nonlinearity name :func:`calculate_gain` accepts.
NONLINEARITIES: tuple[str, ...] = (
    *LINEAR_NONLINEARITIES, "sigmoid", "tanh", "relu", "leaky_relu", "selu")

_DEFAULT_NEGATIVE_SLOPE = 0.01  # torch.nn.LeakyReLU's default


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an int beyond float64
        return False


def leaky_relu_gain(slope: Any, *, name: str = "param", owner: str = "calculate_gain") -> float:
    """``sqrt(2 / (1 + slope**2))``; errors name the slope ``name`` (``None``: 0.01)."""
    if slope is None:
        slope = _DEFAULT_NEGATIVE_SLOPE
    elif isinstance(slope, (bool, np.bool_)) or not isinstance(
            slope, (numbers.Real, np.integer, np.floating)):
        raise InitializerArgumentError(
            f"{owner}: {name} is the leaky_relu negative slope and must be a real number (not a "
            f"bool); got {name}={slope!r}. Pass e.g. {name}=0.2, or None for "
            f"{_DEFAULT_NEGATIVE_SLOPE}.")
    elif not _finite(slope):
        raise InitializerArgumentError(
            f"{owner}: the leaky_relu negative slope must be finite; got {name}={slope!r}.")
    return derived(owner, {name: slope}, f"the leaky_relu gain sqrt(2 / (1 + {name}**2))",
                   lambda: math.sqrt(2.0 / (1 + float(slope) ** 2)))


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""Returns PyTorch's recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    ============================================ =================================
    nonlinearity                                 gain
    ============================================ =================================
    ``linear``, ``conv{1,2,3}d``,                1
    ``conv_transpose{1,2,3}d``, ``sigmoid``
    ``tanh``                                     5/3
    ``relu``                                     :math:`\sqrt{2}`
    ``leaky_relu``                               :math:`\sqrt{2 / (1 + \text{slope}^2)}`
    ``selu``                                     3/4
    ============================================ =================================

    Multiply a variance-scaling std by it (``jinit.compat.torch.kaiming_*`` and
    ``xavier_*`` do); for the variance, square it.

    Args:
      nonlinearity: the ``torch.nn.functional`` name of the nonlinearity.
      param: the negative slope for ``"leaky_relu"`` (default 0.01); ignored otherwise.

    Returns:
      The gain, as a float (PyTorch returns the int ``1`` for the linear names).

    Raises:
      InitializerArgumentError: for an unknown nonlinearity, or a ``leaky_relu`` slope that is
        not a finite real number (bools are rejected, as in PyTorch).

    Examples:
      >>> import jinit
      >>> round(jinit.calculate_gain("relu"), 4), round(jinit.calculate_gain("leaky_relu", 0.2), 4)
      (1.4142, 1.3868)
      >>> round(jinit.calculate_gain("leaky_relu", 5 ** 0.5), 4)  # torch nn.Linear's a=sqrt(5)
      0.5774
    """
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise InitializerArgumentError(
            f"calculate_gain: unsupported nonlinearity={nonlinearity!r}; use one of "
            f"{NONLINEARITIES}.")
    if nonlinearity in LINEAR_NONLINEARITIES or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return leaky_relu_gain(param)
    return 3.0 / 4  # selu
