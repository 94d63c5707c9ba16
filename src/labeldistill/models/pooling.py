"""Max pooling with fast inference paths on a CPU: ``nn.MaxPool2d(2)`` (LeNet) and any other
``nn.MaxPool2d`` (AlexCifarNet's 3 x 3, stride 2).

On this project's 2-core CPU, PyTorch's ``max_pool2d`` (the generic kernel, which also
records argmax indices) took 17 ms for LeNet's first pooling on 1,024 MNIST images,
more than the convolution before it. Without gradients the same values are the maximum
of the four strided sub-images: 2.6 ms. That is the ridge method's target pass (no
backward through it), the label-selection and test models' evaluation and every
``predict``. With gradients enabled, or on a GPU, the library kernel is used, so training
and every gradient are exactly PyTorch's.

AlexCifarNet's 3 x 3 / stride-2 pooling on 1,024 CIFAR images took 0.96 s of a 4.7 s
forward pass here (one thread); the same kernel on channels-last chunks of 32 images gives
the same values (a maximum is exact) in 0.45 s (:class:`MaxPool2d`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._inference import CHUNK, cpu_inference


def max_pool2x2_values(x: torch.Tensor) -> torch.Tensor:
    """The values of ``F.max_pool2d(x, 2)`` (an odd last row or column is dropped, as there)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    return torch.maximum(top, torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


class MaxPool2x2(nn.Module):
    """Drop-in for ``nn.MaxPool2d(2)`` (no parameters; same state dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            return max_pool2x2_values(x)
        return F.max_pool2d(x, 2)

    def extra_repr(self) -> str:
        return "kernel_size=2, stride=2"


class MaxPool2d(nn.MaxPool2d):
    """Drop-in for ``nn.MaxPool2d`` (same arguments, no parameters, same state dict) whose
    inference on a CPU runs the library kernel on channels-last chunks of the batch: the same
    values, bit for bit, about twice as fast on 1,024 CIFAR images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not cpu_inference(x) or self.return_indices:
            return super().forward(x)
        pieces = [super(MaxPool2d, self).forward(c.contiguous(memory_format=torch.channels_last)) for c in x.split(CHUNK)]
        return torch.cat(pieces).contiguous()
