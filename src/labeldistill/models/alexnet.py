"""AlexCifarNet, the small AlexNet of Dataset Distillation (Wang et al.), used by the paper for CIFAR."""
from __future__ import annotations

from torch import nn

from .base import Classifier, register_model
from .lrn import LocalResponseNorm
from .pooling import MaxPool2d


class AlexCifarNet(Classifier):
    """Its pooling and LRN layers are PyTorch's, with bit-identical chunked inference on a CPU
    (:class:`.pooling.MaxPool2d`, :class:`.lrn.LocalResponseNorm`)."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> None:
        def lrn() -> nn.Module:
            return LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1.0)

        conv = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5, padding=2), nn.ReLU(), MaxPool2d(3, 2, padding=1), lrn(),
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), lrn(), MaxPool2d(3, 2, padding=1), nn.Flatten(),
        )
        side = (image_size - 1) // 2 + 1
        side = (side - 1) // 2 + 1
        features = nn.Sequential(conv, nn.Linear(64 * side * side, 384), nn.ReLU(), nn.Linear(384, 192), nn.ReLU())
        super().__init__(features, 192, num_classes)


@register_model("alexnet", required_size=32, aliases=("alexcifarnet",), description="AlexCifarNet (2 conv + LRN, fc384, fc192); 32 px")
def alexnet(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    return AlexCifarNet(in_channels, image_size, num_classes)
