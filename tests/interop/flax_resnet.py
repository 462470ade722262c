"""ResNet in Flax linen, after Flax's ImageNet example, laid out like torchvision's ResNet.

The blocks, names and hyper-parameters are those of the example (``conv_init``, ``bn_init``,
``ResNetBlock_i`` / ``BottleneckResNetBlock_i`` with ``conv_proj`` / ``norm_proj``, BatchNorm
momentum 0.9 and epsilon 1e-5, no conv biases, a zero-initialised last scale per block). One
deliberate difference: 3x3 convolutions and the stem's max pool pad (1, 1) like torchvision,
where the example pads ``"SAME"``; for stride 2 on an even size "SAME" pads (0, 1), so the
example's weights port to torchvision unchanged but its outputs differ along the borders.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

_PAD1 = ((1, 1), (1, 1))


class ResNetBlock(nn.Module):
    """Basic block: two 3x3 convs, projection shortcut where the shape changes."""

    filters: int
    conv: Any
    norm: Any
    act: Callable
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x):
        residual = x
        y = self.conv(self.filters, (3, 3), self.strides, padding=_PAD1)(x)
        y = self.act(self.norm()(y))
        y = self.conv(self.filters, (3, 3), padding=_PAD1)(y)
        y = self.norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = self.conv(self.filters, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return self.act(residual + y)


class BottleneckResNetBlock(nn.Module):
    """Bottleneck block: 1x1, strided 3x3, 1x1 (x4) convs, projection shortcut."""

    filters: int
    conv: Any
    norm: Any
    act: Callable
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x):
        residual = x
        y = self.act(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = self.conv(self.filters, (3, 3), self.strides, padding=_PAD1)(y)
        y = self.act(self.norm()(y))
        y = self.conv(self.filters * 4, (1, 1))(y)
        y = self.norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = self.conv(self.filters * 4, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return self.act(residual + y)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool), stages, global mean pool, Dense."""

    stage_sizes: Sequence[int]
    block_cls: Any
    num_classes: int = 1000
    num_filters: int = 64
    act: Callable = nn.relu

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = functools.partial(nn.Conv, use_bias=False)
        norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                                 epsilon=1e-5)  # fmt: skip
        x = conv(self.num_filters, (7, 7), (2, 2), padding=((3, 3), (3, 3)), name="conv_init")(x)
        x = nn.relu(norm(name="bn_init")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=_PAD1)
        for i, block_size in enumerate(self.stage_sizes):
            for j in range(block_size):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                x = self.block_cls(self.num_filters * 2**i, strides=strides, conv=conv, norm=norm,
                                   act=self.act)(x)  # fmt: skip
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=ResNetBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=ResNetBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckResNetBlock)
