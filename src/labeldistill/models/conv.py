"""``nn.Conv2d`` with a faster weight gradient on a CPU for large batches.

For a stride-1, ungrouped convolution the weight gradient
``dW[o, c, i, j] = sum_n sum_yx x_pad[n, c, y+i, x+j] * g[n, o, y, x]`` is itself a
convolution: of the input with the batch as channels (``x^T``: C x N x H x W) by the
output gradient as the kernel (``g^T``: O x N x H' x W'). On this project's 2-core CPU,
oneDNN's own weight-gradient kernel took 34 ms for LeNet's first layer on 1,024 MNIST
images (one input channel: its worst case) and the same sum written as that convolution
14 ms, the largest single saving in the second-order step (docs/benchmarks.md). The
values agree up to float32 summation order; the input and bias gradients, the forward
pass and all second derivatives are the library's own operations, so double backward,
forward-mode (``jvp``) and ``vmap`` work as for ``F.conv2d``. Elsewhere (a GPU, small
batches, strided or grouped convolutions, several input channels) the layer is exactly
``nn.Conv2d``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Below this batch size oneDNN's kernel is as fast (measured: equal at 100 images).
MIN_BATCH = 256


def weight_grad_as_conv(x: torch.Tensor, grad_out: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """``d sum(conv2d(x, W) * grad_out) / dW`` for stride 1, no groups (O x C x kh x kw)."""
    return F.conv2d(x.transpose(0, 1), grad_out.transpose(0, 1), padding=padding).transpose(0, 1)


class _Conv2dBatchWeightGrad(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int]) -> torch.Tensor:
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, _, padding = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.padding = padding

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        gx = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, padding=ctx.padding) if need_x else None
        gw = weight_grad_as_conv(x, grad_out, ctx.padding) if need_w else None
        gb = grad_out.sum((0, 2, 3)) if need_b else None
        return gx, gw, gb, None

    @staticmethod
    def jvp(ctx: Any, dx, dw, db, _):
        x, weight = ctx.saved_tensors
        out = 0
        if dx is not None:
            out = out + F.conv2d(dx, weight, padding=ctx.padding)
        if dw is not None:
            out = out + F.conv2d(x, dw, padding=ctx.padding)
        if db is not None:
            out = out + db.view(1, -1, 1, 1)
        return out


class Conv2d(nn.Conv2d):
    """Drop-in for ``nn.Conv2d`` (same parameters, state dict and results)."""

    def _fast_weight_grad(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu" and x.dim() == 4 and x.shape[0] >= MIN_BATCH and torch.is_grad_enabled()
            and self.in_channels == 1 and self.groups == 1 and self.stride == (1, 1) and self.dilation == (1, 1)
            and self.padding_mode == "zeros" and isinstance(self.padding, tuple)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_weight_grad(x):
            return _Conv2dBatchWeightGrad.apply(x, self.weight, self.bias, self.padding)
        return super().forward(x)
