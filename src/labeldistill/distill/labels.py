"""The labels of the synthetic set: learned soft labels (optimised with Adam), or fixed one-hot.

After every update the learned labels are clamped to [0, 1] and each row divided by its sum
(the paper: labels stay valid distributions, which makes them interpretable and trains
better). A row that clamps to all zeros becomes uniform (the reference code would divide by
zero there). Beyond the paper, ``--label-param logits`` learns each row's logits instead
(:class:`LogitLabels`). When images are learned instead (the paper's "our DD"), the labels are
fixed one-hot vectors (:class:`FixedLabels`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .quantity import Quantity


def normalise_(y: torch.Tensor) -> torch.Tensor:
    """In place: clamp to [0, 1], all-zero rows -> uniform, rows sum to one."""
    with torch.no_grad():
        y.clamp_(0.0, 1.0)
        s = y.sum(dim=-1, keepdim=True)
        zero = s <= 0
        y.copy_(torch.where(zero, torch.full_like(y, 1.0 / y.shape[-1]), y / torch.where(zero, torch.ones_like(s), s)))
    return y


class Labels(Quantity):
    """Soft labels ``N x C`` (uniform 1/C at the start, or ``init``: ``--label-init``) and their Adam optimiser."""

    key = "labels"
    learned = True
    state_key = "labels"  # what a checkpoint calls the learned tensor

    def __init__(self, n: int, num_classes: int, *, lr: float = 1e-3, device: str | torch.device = "cpu",
                 init: torch.Tensor | None = None) -> None:
        if init is None:
            self.value = torch.full((n, num_classes), 1.0 / num_classes, device=device, requires_grad=True)
        else:  # a given start (--label-init): N x C distributions
            if tuple(init.shape) != (n, num_classes):
                raise ValueError(f"initial labels must be {n} x {num_classes}, got {tuple(init.shape)}")
            self.value = init.detach().to(device=device, dtype=torch.get_default_dtype()).clone().requires_grad_()
        # Capturable on CUDA: the step count stays on the device (no host read; graph-capturable).
        self.opt = torch.optim.Adam([self.value], lr=lr, capturable=torch.device(device).type == "cuda")

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        return self.value.detach()[rows]

    def seen(self) -> torch.Tensor:
        return self.snapshot()

    def step(self, rows: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Adam step with ``grad`` (len(rows) x C) for the given rows (zero elsewhere), then normalise."""
        full = torch.zeros_like(self.value)
        full.index_put_((rows,), grad, accumulate=True)
        self.value.grad = full
        self.opt.step()
        normalise_(self.value)

    def snapshot(self) -> torch.Tensor:
        return self.value.detach().clone()

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt]

    def state_dict(self) -> dict[str, Any]:
        return {self.state_key: self.value.detach(), "labels_opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.value.copy_(state[self.state_key])
        self.opt.load_state_dict(state["labels_opt"])


class LogitLabels(Labels):
    """Soft labels softmax(z) of learned logits ``z`` (``--label-param logits``; beyond the paper).

    Models see, and snapshots keep, the distributions; Adam steps the logits with the chain rule through the
    softmax. A step in logit space scales a row's probabilities multiplicatively, so the small entries of an
    informative start (a teacher's "dark knowledge": which wrong classes an image resembles) keep their
    proportions; the paper's clamped probabilities move every entry by about the same absolute amount (the lr)
    each step and flatten such entries within a few epochs (docs/results.md, the field table's teacher starts).
    A start distribution ``init`` becomes the logits log(max(init, 1e-6)): a zero entry (a one-hot start) starts at
    about a millionth, from where Adam, which scales steps by the gradient's own size, can still grow it; the uniform
    start is z = 0.
    """

    FLOOR = 1e-6
    state_key = "label_logits"  # never read as probabilities (nor a probabilities checkpoint as logits)

    def __init__(self, n: int, num_classes: int, *, lr: float = 1e-3, device: str | torch.device = "cpu",
                 init: torch.Tensor | None = None) -> None:
        super().__init__(n, num_classes, lr=lr, device=device, init=init)
        with torch.no_grad():  # the same object (the optimiser holds it), now holding logits
            if init is None:
                self.value.zero_()
            else:
                self.value.copy_(self.value.clamp_min(self.FLOOR).log())

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.value.detach()[rows], dim=-1)

    def snapshot(self) -> torch.Tensor:
        return torch.softmax(self.value.detach(), dim=-1)

    def step(self, rows: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Adam step on the logits from ``grad``, the meta-gradient of the rows' distributions y: dL/dz = y * (g - <g, y>)."""
        y = self.batch(rows)
        self.value.grad = torch.zeros_like(self.value).index_put_((rows,), y * (grad - (grad * y).sum(-1, keepdim=True)),
                                                                   accumulate=True)
        self.opt.step()


LABEL_PARAMS = {"probabilities": Labels, "logits": LogitLabels}  # --label-param: what Adam steps


class FixedLabels(Quantity):
    """One-hot labels that never change: image i has class ``classes[i]``."""

    key = "labels"
    learned = False

    def __init__(self, classes: torch.Tensor, num_classes: int, *, device: str | torch.device = "cpu") -> None:
        # The default float dtype (float32 in runs), as learned labels have.
        self.value = F.one_hot(classes.to(device, torch.long), num_classes).to(torch.get_default_dtype())

    @staticmethod
    def balanced(n: int, num_classes: int) -> torch.Tensor:
        """Classes in turn (image i has class i % C): N / C images per class, as the original DD."""
        return torch.arange(n) % num_classes

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        return self.value[rows]

    def seen(self) -> torch.Tensor:
        return self.value.clone()
