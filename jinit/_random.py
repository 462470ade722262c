"""Random sampling primitives used by every jinit initializer.

Same signatures and bit-identical values as the ``jax.random`` functions of the same name.
This module is the single place where the sampling strategy is chosen (see the speed issue):
callers never import ``jax.random`` samplers directly.
"""

from __future__ import annotations

from jax import random

uniform = random.uniform
normal = random.normal
truncated_normal = random.truncated_normal
orthogonal = random.orthogonal
