"""``nn.MaxPool2d(2)`` with a fast inference path on a CPU.

On this project's 2-core CPU, PyTorch's ``max_pool2d`` (the generic kernel, which also
records argmax indices) took 17 ms for LeNet's first pooling on 1,024 MNIST images,
more than the convolution before it. Without gradients the same values are the maximum
of the four strided sub-images: 2.6 ms. That is the ridge method's target pass (no
backward through it), the label-selection and test models' evaluation and every
``predict``. With gradients enabled, or on a GPU, the library kernel is used, so training
and every gradient are exactly PyTorch's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
