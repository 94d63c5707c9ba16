"""The paper's small CIFAR ResNet ("ResNet-18" in the paper; really 14 layers).

Two basic blocks per stage at widths 16/32/64, global average pooling, 64 features,
He-normal (fan-out) initialisation of the convolutions, about 0.17M parameters.

Batch norm keeps no running averages (the layers are pure functions of their parameters,
which training many models at once with ``torch.func.vmap`` needs). In training it uses the
statistics of the current minibatch, as the reference code's second-order version does.
In evaluation the engine normalises with the statistics of the model's own training
images under its final weights (population statistics, "PreciseBN"; models/norm.py), so
test accuracy does not depend on the order or the batching of the test examples.
``labeldistill.train_on`` returns it with standard ``nn.BatchNorm2d`` layers in eval mode
holding those statistics.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, register_model


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, track_running_stats=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet14(Classifier):
    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), _bn(16), nn.ReLU()]
        cin = 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            layers += [BasicBlock(cin, width, stride), BasicBlock(width, width, 1)]
            cin = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), 64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


@register_model("resnet14", aliases=("resnet18", "resnet"), description="CIFAR ResNet, 2 blocks x 16/32/64 (the paper's 'ResNet-18'); any size")
def resnet14(in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    return ResNet14(in_channels, image_size, num_classes)
