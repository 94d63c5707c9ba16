"""LeNet as used by Dataset Distillation (Wang et al.) and the paper (features: 84)."""
from __future__ import annotations

from torch import nn

from .base import Classifier, register_model
from .conv import Conv2dMaxPool


class LeNet(Classifier):
    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> None:
        # Padding 2 on 28 px input makes the flattened size 16x5x5, as for 32 px input.
        pad = 2 if image_size == 28 else 0
        # conv -> pool -> ReLU is the paper's conv -> ReLU -> pool (the two commute exactly, gradients
        # included) with ReLU on 4x fewer elements; conv + pool is one layer (a faster CPU path, models/conv.py).
        # The Identity placeholders keep the parameter names (features.0.0 / features.0.3) of earlier versions.
        conv = nn.Sequential(
            Conv2dMaxPool(in_channels, 6, 5, padding=pad), nn.ReLU(), nn.Identity(),
            Conv2dMaxPool(6, 16, 5), nn.ReLU(), nn.Identity(), nn.Flatten(),
        )
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if side < 1:
            raise RuntimeError(f"LeNet needs images of at least 28 px (with padding), got {image_size}")
        features = nn.Sequential(conv, nn.Linear(16 * side * side, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        super().__init__(features, 84, num_classes)


@register_model("lenet", min_size=28, description="LeNet-5 (conv5-6, conv5-16, fc120, fc84); 28 or 32 px")
def lenet(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    return LeNet(in_channels, image_size, num_classes)
