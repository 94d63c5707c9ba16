"""The learned labels: one probability vector per base example, optimised with Adam.

After every update the labels are clamped to [0, 1] and each row divided by its sum
(the paper: labels stay valid distributions, which makes them interpretable and trains
better). A row that clamps to all zeros becomes uniform (the reference code would
divide by zero there).
"""
from __future__ import annotations

import torch


def normalise_(y: torch.Tensor) -> torch.Tensor:
    """In place: clamp to [0, 1], all-zero rows -> uniform, rows sum to one."""
    with torch.no_grad():
        y.clamp_(0.0, 1.0)
        s = y.sum(dim=-1, keepdim=True)
        zero = s <= 0
        y.copy_(torch.where(zero, torch.full_like(y, 1.0 / y.shape[-1]), y / torch.where(zero, torch.ones_like(s), s)))
    return y


class Labels:
    """Soft labels ``N x C`` (uniform 1/C at the start) and their Adam optimiser."""

    def __init__(self, n: int, num_classes: int, *, lr: float = 1e-3, device: str | torch.device = "cpu") -> None:
        self.value = torch.full((n, num_classes), 1.0 / num_classes, device=device, requires_grad=True)
        # Capturable on CUDA: the step count stays on the device (no host read; graph-capturable).
        self.opt = torch.optim.Adam([self.value], lr=lr, capturable=torch.device(device).type == "cuda")

    def step(self, rows: torch.Tensor, grad: torch.Tensor) -> None:
        """Adam step with ``grad`` (len(rows) x C) for the given rows (zero elsewhere), then normalise."""
        full = torch.zeros_like(self.value)
        full.index_put_((rows,), grad, accumulate=True)
        self.value.grad = full
        self.opt.step()
        normalise_(self.value)

    def snapshot(self) -> torch.Tensor:
        return self.value.detach().clone()
