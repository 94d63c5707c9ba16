"""ZCA whitening (the MTT / DSA evaluation's preprocessing of colour images), fitted with kornia.

Fitting uses ``kornia.enhance.zca_mean`` (unbiased covariance, eigenvalues + eps), exactly what
the field's code calls through ``kornia.enhance.ZCAWhitening(eps=0.1)``; kornia is an optional
dependency (``pip install 'labeldistill[dsa]'``). Applying a fitted whitening is a plain affine
map ``(x - mean) @ W`` on the flattened image and needs no kornia, so a distilled set that
records its whitening (``DistilledSet.zca``) means the same thing wherever it is loaded.

Privacy: the mean and the D x D matrix are second-order statistics of the images they were
fitted on (the target's training split); ``labeldistill export --no-zca`` leaves them out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import UserError

CHUNK = 4096  # rows per matmul when whitening many images


def require_kornia(what: str) -> Any:
    try:
        import kornia
    except ImportError:
        raise UserError(f"{what} needs kornia (ZCA whitening): pip install 'labeldistill[dsa]'.") from None
    return kornia


@dataclass
class ZCA:
    """A fitted ZCA whitening of C x H x W images.

    Attributes:
        mean: D (= C*H*W) mean of the flattened fitting images.
        matrix: D x D, ``U diag(1 / sqrt(s + eps)) U^T`` of their (unbiased) covariance.
        eps: added to the eigenvalues.
        shape: (C, H, W) of the images it applies to.
        fitted_on: what it was fitted on (dataset, split, number of images, index hash).
        applied_to_images: whether a distilled set's stored images are already whitened
            (else a protocol whitens them, and the test images, when it trains).
    """

    mean: torch.Tensor
    matrix: torch.Tensor
    eps: float
    shape: tuple[int, int, int]
    fitted_on: dict = field(default_factory=dict)
    applied_to_images: bool = False

    def __post_init__(self) -> None:
        d = self.shape[0] * self.shape[1] * self.shape[2]
        if tuple(self.mean.shape) != (d,) or tuple(self.matrix.shape) != (d, d):
            raise UserError(f"A ZCA for {self.shape} images needs a mean of {d} and a {d} x {d} matrix, "
                            f"got {tuple(self.mean.shape)} and {tuple(self.matrix.shape)}.")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten N x C x H x W images (in their dtype, on their device)."""
        if tuple(x.shape[1:]) != tuple(self.shape):
            raise UserError(f"This ZCA whitens {self.shape} images, got {tuple(x.shape[1:])}.")
        mean, matrix = self.mean.to(x.device, x.dtype), self.matrix.to(x.device, x.dtype)
        flat = x.reshape(x.shape[0], -1)
        out = torch.cat([(flat[i : i + CHUNK] - mean) @ matrix for i in range(0, flat.shape[0], CHUNK)]) if len(flat) else flat
        return out.reshape(x.shape)

    def document(self) -> dict:
        """The JSON part (the tensors are stored as ``zca_mean`` / ``zca_matrix``)."""
        return {"eps": float(self.eps), "shape": list(self.shape), "fitted_on": dict(self.fitted_on),
                "applied_to_images": bool(self.applied_to_images),
                "fit": "kornia.enhance.zca_mean: unbiased covariance, U diag(1/sqrt(s + eps)) U^T; apply (x - mean) @ matrix"}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"zca_mean": self.mean, "zca_matrix": self.matrix}

    @classmethod
    def from_parts(cls, doc: dict, tensors: dict[str, torch.Tensor]) -> ZCA:
        return cls(tensors["zca_mean"], tensors["zca_matrix"], float(doc["eps"]), tuple(int(v) for v in doc["shape"]),  # type: ignore[arg-type]
                   dict(doc.get("fitted_on") or {}), bool(doc.get("applied_to_images", False)))

    def to(self, device: str | torch.device) -> ZCA:
        return ZCA(self.mean.to(device), self.matrix.to(device), self.eps, self.shape, dict(self.fitted_on), self.applied_to_images)


def fit_zca(x: torch.Tensor, eps: float = 0.1, *, dtype: torch.dtype = torch.float32, fitted_on: dict | None = None) -> ZCA:
    """Fit a ZCA whitening on N x C x H x W images with kornia (computed in ``dtype``, kept in it)."""
    kornia = require_kornia("ZCA whitening")
    if x.shape[0] < 2:
        raise UserError(f"ZCA whitening needs at least 2 images to fit, got {x.shape[0]}.")
    flat = x.reshape(x.shape[0], -1).to(dtype)
    matrix, mean, _ = kornia.enhance.zca_mean(flat, dim=0, unbiased=True, eps=float(eps))
    return ZCA(mean.reshape(-1), matrix, float(eps), tuple(int(v) for v in x.shape[1:]), dict(fitted_on or {}))  # type: ignore[arg-type]
