"""When a layer may take its fast inference path on a CPU, and in what pieces.

Without gradients on a CPU, a few of PyTorch's generic kernels are slow for this project's
batches (1,024 target images): they stream tensors larger than the caches through one
elementwise op after another. Layers whose outputs are per example and whose ops are exact
(a maximum) or elementwise run the SAME library op on chunks of the batch instead, so every
output element is computed from the same values by the same code: bit for bit the full-batch
result (tested), only faster. With gradients (training), on a GPU, or under ``vmap``, the
layers are exactly PyTorch's.
"""
from __future__ import annotations

import torch

CHUNK = 32  # examples per piece: about 2-8 MB per activation of the CIFAR models, inside the caches


def cpu_inference(x: torch.Tensor) -> bool:
    """True when ``x`` (N x C x H x W) may take a layer's chunked CPU inference path."""
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and x.dim() == 4 and x.shape[0] > CHUNK
            and not torch._C._functorch.is_batchedtensor(x))
