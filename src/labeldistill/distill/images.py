"""The images of the synthetic set: the fixed base images, or learned pixels.

Learned images (the paper's "our DD", Appendix C) are stored in pixel space, ``N x C x H x W``
in [0, 1], and normalised with the target's preprocessing (``(p - mean) / std``, as
:meth:`~labeldistill.data.Preprocessing.apply` does for real images) whenever a model sees
them; after every Adam step they are clamped back to [0, 1], so they stay valid images. The
strategy's meta-gradient is taken with respect to the normalised images the model saw and
brought back to pixel space by the chain rule (``/ std``), exactly what autograd would
compute through the normalisation.
"""
from __future__ import annotations

from typing import Any

import torch

from ..data import Preprocessing
from .quantity import Quantity


class FixedImages(Quantity):
    """The base images, already normalised, never changed (label distillation)."""

    key = "images"
    learned = False

    def __init__(self, normalised: torch.Tensor) -> None:
        self.value = normalised

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        return self.value[rows]

    def seen(self) -> torch.Tensor:
        return self.value.detach().clone()


class LearnedImages(Quantity):
    """Pixels ``N x C x H x W`` in [0, 1], learned with Adam.

    Args:
        pixels: the initial images in pixel space (values outside [0, 1] are clamped).
        preprocessing: the target's preprocessing (its mean and std normalise what models see).
        lr: Adam learning rate (the paper's 1e-3).
    """

    key = "images"
    learned = True

    def __init__(self, pixels: torch.Tensor, preprocessing: Preprocessing, *, lr: float = 1e-3,
                 device: str | torch.device = "cpu") -> None:
        device = torch.device(device)
        # The pixels keep their floating dtype (float32 in runs; float64 in the gradient tests).
        self.pixels = pixels.detach().to(device).clamp(0.0, 1.0).contiguous().requires_grad_()
        # Built once, on the device: nothing is copied from the host inside a (graph-captured) step.
        self.mean = torch.tensor(preprocessing.mean, dtype=pixels.dtype, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(preprocessing.std, dtype=pixels.dtype, device=device).view(1, -1, 1, 1)
        self.opt = torch.optim.Adam([self.pixels], lr=lr, capturable=device.type == "cuda")
        self.initial = self.seen()  # the images before learning, as models see them

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.pixels.detach()[rows])

    def seen(self) -> torch.Tensor:
        return self.normalise(self.pixels.detach())

    def pixel_grad(self, rows: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """N x C x H x W gradient in pixel space from ``grad`` (d loss / d normalised images of ``rows``)."""
        full = torch.zeros_like(self.pixels)
        full.index_put_((rows,), grad / self.std, accumulate=True)  # d((p - m) / s) / dp = 1 / s
        return full

    def step(self, rows: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Adam step from ``grad`` (d loss / d normalised images of ``rows``), then clamp to [0, 1]."""
        self.pixels.grad = self.pixel_grad(rows, grad)
        self.opt.step()
        with torch.no_grad():
            self.pixels.clamp_(0.0, 1.0)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt]

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.pixels.detach(), "images_opt": self.opt.state_dict(), "initial_images": self.initial}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.pixels.copy_(state["images"])
        self.opt.load_state_dict(state["images_opt"])
        self.initial = state["initial_images"].to(self.pixels.device)
