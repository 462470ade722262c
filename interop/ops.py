"""The declarative layout operations that layer rules are built from.

A rule is a tuple of these operations on named slots: it starts from the Flax layer's slots
(``kernel``, ``bias``, ``scale``, ``embedding``, ...) and must end with the target layer's
tensor names and shapes. Each operation is invertible, so the same rule also reads a target's
tensors back into Flax (``params_from_*``).

* :class:`Rename` ``(src, dst)``: ``kernel`` -> ``weight``.
* :class:`Permute` ``(slot, axes)``: transpose / permute axes (a view in torch).
* :class:`Flip` ``(slot, axes)``: reverse axes (transposed-conv kernels).
* :class:`Merge` ``(slot, start, stop)``: merge contiguous axes (``(E, H, D)`` -> ``(E, H*D)``).
* :class:`Reshape` ``(slot, shape)``: any reshape (a bias ``(n,)`` kept as ``(1, n)``).
* :class:`Concat` ``(dst, srcs, axis)`` / :class:`Stack`: gates into one tensor.
* :class:`ZeroPartner` ``(src, dst)``: a zero partner bias (torch ``b_ih`` + ``b_hh``).

Examples:
  >>> import numpy as np
  >>> from jinit.interop import ops
  >>> rule = (ops.Rename("kernel", "weight"), ops.Permute("weight", (1, 0)))
  >>> ops.apply(rule, {"kernel": np.zeros((4, 8))})["weight"].shape
  (8, 4)
"""

from jinit.interop._layouts import (
    Concat as Concat,
)
from jinit.interop._layouts import (
    Flip as Flip,
)
from jinit.interop._layouts import (
    Merge as Merge,
)
from jinit.interop._layouts import (
    Op as Op,
)
from jinit.interop._layouts import (
    Permute as Permute,
)
from jinit.interop._layouts import (
    Rename as Rename,
)
from jinit.interop._layouts import (
    Reshape as Reshape,
)
from jinit.interop._layouts import (
    Spec as Spec,
)
from jinit.interop._layouts import (
    Stack as Stack,
)
from jinit.interop._layouts import (
    ZeroPartner as ZeroPartner,
)
from jinit.interop._layouts import (
    apply as apply,
)
from jinit.interop._layouts import (
    invert as invert,
)

__all__ = [
    "Concat",
    "Flip",
    "Merge",
    "Op",
    "Permute",
    "Rename",
    "Reshape",
    "Spec",
    "Stack",
    "ZeroPartner",
    "apply",
    "invert",
]
