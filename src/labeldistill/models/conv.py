"""A convolution followed by 2x2 max pooling, as one layer with a faster CPU path.

LeNet's first block (one input channel, 5x5 kernel, then a 2x2 max pool) is most of the
second-order step on a CPU, and oneDNN handles single-channel inputs badly. For large
batches with gradients on a CPU this layer computes the same function another way:

* **Pooling by phases.** The conv output at (2i+dy, 2j+dx) is a stride-2 convolution
  with the kernel placed at offset (dy, dx) in a (k+1) x (k+1) window. One stride-2
  convolution with the 4 placed kernels stacked as 4 x O output channels gives the four
  phases of every pooling window as four contiguous blocks, and the pool is a maximum
  over them (first maximum on ties, in max_pool2d's scan order: the same values and the
  same selected positions as ``max_pool2d``).
* **Weight gradient as a convolution over the batch.** For stride s, ``dW[o, c, a, b] =
  sum_n sum_ij x_pad[n, c, s*i+a, s*j+b] g[n, o, i, j]`` is a dilated convolution of
  ``x^T`` (C x N x H x W: the batch as channels) by ``g^T`` (the output gradient as the
  kernel).

Measured on this project's 2-core CPU, interleaved (docs/benchmarks.md): LeNet's forward +
backward on 1,024 images 81.5 ms against 97.6 ms with PyTorch's layers
(``benchmarks/bench_lenet_layers.py``), and the whole second-order loop step 1.42x as fast
(``benchmarks/bench_protocol.py``); oneDNN's weight gradient alone took 34 ms for this
layer, the convolution over the batch 14 ms. Values agree with ``conv2d`` + ``max_pool2d``
up to float32 summation order; second derivatives, forward mode (``jvp``) and ``vmap``
work (the backward is written with differentiable library operations). Everywhere else
(a GPU, no gradients, small batches, several input channels, strided or grouped
convolutions) the layer is ``nn.Conv2d`` followed by :class:`.pooling.MaxPool2x2`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .pooling import MaxPool2x2

# Below this batch size the library's kernels are as fast (the weight gradient measured equal at 100 images).
MIN_BATCH = 256


def weight_grad_as_conv(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int], padding: tuple[int, int],
                        stride: int = 1) -> torch.Tensor:
    """``d sum(conv2d(x, W, stride, padding) * grad_out) / dW`` (O x C x kh x kw), no groups."""
    gw = F.conv2d(x.transpose(0, 1), grad_out.transpose(0, 1), padding=padding, dilation=stride).transpose(0, 1)
    return gw[..., : kernel[0], : kernel[1]]  # rows/columns that no output reached are dropped, as by conv2d


class _Conv2dBatchWeightGrad(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, stride, padding)`` whose weight gradient is computed by
    :func:`weight_grad_as_conv`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: tuple[int, int]) -> torch.Tensor:
        return F.conv2d(x, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, _, stride, padding = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.stride, ctx.padding = stride, padding

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, stride=ctx.stride, padding=ctx.padding) if need_x else None
        gw = weight_grad_as_conv(x, grad_out, weight.shape[-2:], ctx.padding, ctx.stride) if need_w else None
        gb = grad_out.sum((0, 2, 3)) if need_b else None
        return gx, gw, gb, None, None

    @staticmethod
    def jvp(ctx: Any, dx, dw, db, _stride, _padding):
        x, weight = ctx.saved_tensors
        out = 0
        if dx is not None:
            out = out + F.conv2d(dx, weight, stride=ctx.stride, padding=ctx.padding)
        if dw is not None:
            out = out + F.conv2d(x, dw, stride=ctx.stride, padding=ctx.padding)
        if db is not None:
            out = out + db.view(1, -1, 1, 1)
        return out


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """The kernel placed at offsets (0,0), (0,1), (1,0), (1,1) of a (k+1)-window: 4*O x C x (k+1) x (k+1)."""
    return torch.cat([F.pad(weight, (dx, 1 - dx, dy, 1 - dy)) for dy in (0, 1) for dx in (0, 1)])


def conv_max_pool_by_phases(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int]) -> torch.Tensor:
    """``F.max_pool2d(F.conv2d(x, weight, bias, padding=padding), 2)`` for stride-1, ungrouped convolutions."""
    out_channels = weight.shape[0]
    stacked_bias = None if bias is None else bias.repeat(4)
    phases = _Conv2dBatchWeightGrad.apply(x, phase_kernels(weight), stacked_bias, 2, padding)
    n, _, h, w = phases.shape
    # Phase order (0,0), (0,1), (1,0), (1,1) is max_pool2d's scan order: max() keeps the first maximum.
    return phases.view(n, 4, out_channels, h, w).max(1).values


class Conv2dMaxPool(nn.Conv2d):
    """``nn.Conv2d`` then a 2x2 max pool (stride 2) as one layer; parameters as ``nn.Conv2d``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = MaxPool2x2()

    def _by_phases(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu" and x.dim() == 4 and x.shape[0] >= MIN_BATCH and torch.is_grad_enabled()
            and self.in_channels == 1 and self.groups == 1 and self.stride == (1, 1) and self.dilation == (1, 1)
            and self.padding_mode == "zeros" and isinstance(self.padding, tuple)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._by_phases(x):
            return conv_max_pool_by_phases(x, self.weight, self.bias, self.padding)
        return self.pool(super().forward(x))
