"""Image preprocessing: uint8 arrays -> normalised float32 tensors on the device, in one pass.

The paper normalises greyscale datasets with MNIST's statistics and colour datasets with
CIFAR-10's, at 28×28 and 32×32. Source images in cross-dataset runs get the *target's*
preprocessing, so grey/colour conversion and resizing live here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, UserError

GREY_MEAN = (0.1307,)
GREY_STD = (0.3081,)
COLOUR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
COLOUR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)

# ITU-R BT.601 luma weights (what PIL's convert("L") uses).
_LUMA = (0.299, 0.587, 0.114)
# 8192 images of 32×32×3 float32 is ~100 MB per intermediate: large enough to be fast,
# small enough that 60k-image datasets never hold two full float copies.
CHUNK = 8192


def _uint8_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.dtype != torch.uint8:
            raise DataError(f"Preprocessing.apply expects uint8 images, got {x.dtype}")
        return x
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise DataError(f"Preprocessing.apply expects uint8 images, got {getattr(x, 'dtype', type(x).__name__)}")
    if not x.flags.writeable or not x.flags.c_contiguous:
        x = np.array(x)  # torch.from_numpy warns on read-only arrays
    return torch.from_numpy(x)


def _image_shape(x: np.ndarray | torch.Tensor) -> tuple[int, int, int, int]:
    shape = tuple(x.shape)
    if len(shape) == 3:
        return (*shape, 1)  # type: ignore[return-value]
    if len(shape) == 4 and shape[-1] in (1, 3):
        return shape  # type: ignore[return-value]
    raise DataError(f"Preprocessing.apply expects N×H×W or N×H×W×3 images, got shape {shape}")


@dataclass(frozen=True)
class Preprocessing:
    """How stored uint8 images become model inputs.

    Args:
        channels: 1 (greyscale) or 3 (colour) output channels.
        size: output side in pixels; None keeps the stored size.
        mean: per output channel, in [0, 1] pixel units.
        std: per output channel, in [0, 1] pixel units.

    Example:
        >>> p = Preprocessing(1, 28, (0.1307,), (0.3081,))
        >>> p.apply(np.zeros((2, 28, 28), np.uint8)).shape
        torch.Size([2, 1, 28, 28])
    """

    channels: int
    size: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise UserError(f"Preprocessing channels must be 1 or 3, got {self.channels!r}")
        if self.size is not None and (not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1):
            raise UserError(f"Preprocessing size must be a positive integer or None, got {self.size!r}")
        try:
            mean = tuple(float(m) for m in self.mean)
            std = tuple(float(s) for s in self.std)
        except (TypeError, ValueError) as e:
            raise UserError(f"Preprocessing mean/std must be sequences of numbers ({e})") from None
        if len(mean) != self.channels or len(std) != self.channels:
            raise UserError(f"Preprocessing needs {self.channels} mean and std values, got {len(mean)} and {len(std)}")
        if not all(np.isfinite(mean)) or not all(np.isfinite(s) and s > 0 for s in std):
            raise UserError(f"Preprocessing mean must be finite and std positive, got mean {mean} std {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(C, H, W)`` of the result for stored images of ``height×width``."""
        return (self.channels, self.size or height, self.size or width)

    def _converted_chunks(self, x: np.ndarray | torch.Tensor, device: torch.device) -> Iterator[torch.Tensor]:
        """Yield un-normalised float32 ``B×C×H×W`` chunks in [0, 1]."""
        n, h, w, c_in = _image_shape(x)
        _, oh, ow = self.output_shape(h, w)
        luma = torch.tensor(_LUMA, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        for start in range(0, n, CHUNK):
            t = _uint8_tensor(x[start : start + CHUNK]).to(device, non_blocking=True)
            f = t.to(torch.float32).div_(255.0)
            f = f.unsqueeze(1) if f.ndim == 3 else f.permute(0, 3, 1, 2)
            if c_in == 3 and self.channels == 1:
                f = (f * luma).sum(dim=1, keepdim=True)  # before resizing: a third of the work
            if (h, w) != (oh, ow):
                f = F.interpolate(f, size=(oh, ow), mode="bilinear", antialias=True, align_corners=False)
            if f.shape[1] == 1 and self.channels == 3:
                f = f.expand(-1, 3, -1, -1)
            yield f

    def apply(self, x: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
        """Convert uint8 images to normalised float32 ``N×C×size×size`` on ``device``.

        Args:
            x: uint8 images ``N×H×W``, ``N×H×W×1`` or ``N×H×W×3`` (numpy or torch).
            device: where the result lives.
        """
        device = torch.device(device)
        n, h, w, _ = _image_shape(x)
        out = torch.empty((n, *self.output_shape(h, w)), dtype=torch.float32, device=device)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        start = 0
        for f in self._converted_chunks(x, device):
            out[start : start + len(f)] = (f - mean) / std
            start += len(f)
        return out

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised ``…×C×H×W`` images back to [0, 1] (for plotting).

        Args:
            x: a tensor whose third-from-last dimension is the channel.
        """
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x * std + mean).clamp(0.0, 1.0)

    def to_dict(self) -> dict:
        """A JSON-able dict; :meth:`from_dict` inverts it."""
        return {"channels": self.channels, "size": self.size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output.

        Args:
            d: a dict with keys channels, size, mean, std.
        """
        if not isinstance(d, dict):
            raise UserError(f"Preprocessing.from_dict expects a dict, got {type(d).__name__}")
        missing = {"channels", "size", "mean", "std"} - set(d)
        if missing:
            raise UserError(f"Preprocessing dict lacks {', '.join(sorted(missing))}")
        if not isinstance(d["mean"], (list, tuple)) or not isinstance(d["std"], (list, tuple)):
            raise UserError("Preprocessing dict: mean and std must be lists")
        return cls(channels=d["channels"], size=d["size"], mean=tuple(d["mean"]), std=tuple(d["std"]))

    @classmethod
    def measured(
        cls, x: np.ndarray, channels: int, size: int | None, device: str | torch.device = "cpu"
    ) -> Preprocessing:
        """Preprocessing whose mean/std are measured on ``x`` after channel conversion and resizing.

        Args:
            x: uint8 training images.
            channels: output channels.
            size: output side, None to keep the stored size.
            device: where to compute.
        """
        ident = cls(channels, size, (0.0,) * channels, (1.0,) * channels)
        total = torch.zeros(channels, dtype=torch.float64, device=torch.device(device))
        total_sq = torch.zeros_like(total)
        count = 0
        for f in ident._converted_chunks(x, torch.device(device)):
            f = f.to(torch.float64)
            total += f.sum(dim=(0, 2, 3))
            total_sq += (f * f).sum(dim=(0, 2, 3))
            count += f.shape[0] * f.shape[2] * f.shape[3]
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0.0)
        std = var.sqrt()
        # A constant image set has std 0; dividing by 1 keeps it finite (and it's useless anyway).
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        return cls(channels, size, tuple(mean.tolist()), tuple(std.tolist()))
