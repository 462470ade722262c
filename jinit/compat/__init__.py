"""Each framework's initializers with that framework's exact semantics, in pure JAX.

``jinit.compat.torch``, ``jinit.compat.keras`` and ``jinit.compat.mxnet`` import no framework.
"""

from jinit.compat import flax as flax
from jinit.compat import keras as keras
from jinit.compat import mxnet as mxnet
from jinit.compat import torch as torch

__all__ = ["flax", "keras", "mxnet", "torch"]
