"""ConvNet-3, the network of the DatasetCondensation / DSA / MTT evaluation protocol.

Three blocks of 3x3 convolution (width 128, padding 1), instance norm, ReLU and 2x2 average
pooling, then a linear classifier on the flattened features. As in the field's code
(``ConvNet(net_width=128, net_depth=3, net_norm='instancenorm', net_pooling='avgpooling')``):

* instance norm is ``nn.GroupNorm(128, 128, affine=True)``: one group per channel, statistics
  over each image's own H x W, so the network has no batch dependence (it trains K models at
  once under ``vmap`` or a loop, and scores each test image independently of its batch);
* one-channel input (MNIST-like, 28 px) gets padding 3 on the first convolution (the field's
  rule is "one input channel"), so 28 px become 32 -> 16 -> 8 -> 4 and the features are
  128 x 4 x 4 = 2,048, as for 32 px colour input;
* default PyTorch initialisation.

Any input size works (the feature size follows it); at least 8 px (smaller images are
resized up to 8 by the data loader).
"""
from __future__ import annotations

from torch import nn

from .base import Classifier, register_model

WIDTH = 128
DEPTH = 3


def first_padding(in_channels: int) -> int:
    """3 for one-channel input (the field's rule), else 1."""
    return 3 if in_channels == 1 else 1


class ConvNet(Classifier):
    """``depth`` x (conv3x3 -> instance norm -> ReLU -> avgpool2) -> flatten -> linear."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10, width: int = WIDTH, depth: int = DEPTH) -> None:
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for d in range(depth):
            pad = first_padding(in_channels) if d == 0 else 1
            layers += [nn.Conv2d(channels, width, 3, padding=pad), nn.GroupNorm(width, width, affine=True), nn.ReLU(), nn.AvgPool2d(2)]
            side = (side + 2 * pad - 2) // 2
            channels = width
            if side < 1:
                raise RuntimeError(f"ConvNet-{depth} needs images of at least 8 px, got {image_size}")
        layers.append(nn.Flatten())
        super().__init__(nn.Sequential(*layers), width * side * side, num_classes)


@register_model("convnet3", min_size=8, aliases=("convnet",),
                description="ConvNet-3 of DC / DSA / MTT (3 x conv3x3-128, instance norm, ReLU, avgpool); any size >= 8 px")
def convnet3(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    return ConvNet(in_channels, image_size, num_classes)
