"""Flax's own layer defaults and the layer recognition behind every ``compat.*.defaults()``.

``defaults()`` re-initializes a Flax parameter tree (linen or nnx) exactly as Flax's layers
initialize themselves, with jinit's per-path keys. :func:`recognize` shows what each leaf was
recognized as; :class:`LayerKind` selects leaves by that kind in :func:`jinit.rules`.
Importing this module does not import Flax.
"""

from jinit.compat._defaults import (
    KINDS as KINDS,
)
from jinit.compat._defaults import (
    Layer as Layer,
)
from jinit.compat._defaults import (
    LayerKind as LayerKind,
)
from jinit.compat._defaults import (
    flax_defaults as defaults,
)
from jinit.compat._defaults import (
    recognize as recognize,
)

__all__ = ["KINDS", "Layer", "LayerKind", "defaults", "recognize"]
