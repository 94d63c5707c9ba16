"""Differentiable Siamese Augmentation (DSA) as used to *evaluate* distilled sets, per sample,
on the device, with one seeded random stream per model.

The DC / DSA / MTT evaluation protocol trains with ``color_crop_cutout_flip_scale_rotate``
in DSA's "single" mode: each minibatch draws one of the transforms (color = brightness,
then saturation, then contrast), and every image of the minibatch gets its own random
parameters. The transforms act on normalised (or ZCA-whitened) images and are those of
Zhao & Bilen (2021), "Dataset Condensation with Differentiable Siamese Augmentation":

* brightness ``x + (u - 0.5) * 1.0``; saturation ``m_c + (x - m_c) * 2u`` (``m_c``: the
  mean over channels); contrast ``m + (x - m) * (u + 0.5)`` (``m``: the image's mean);
* crop: an integer shift of up to ``int(0.125 H + 0.5)`` pixels in each direction, zeros
  shifted in;
* cutout: a square of side ``int(0.5 H + 0.5)`` set to 0, centred anywhere (clipped at the
  borders);
* flip: left-right with probability 0.5 (never for digits and characters: ``flip=False``);
* scale: ``x`` and ``y`` scaled independently by ``u (1.2 - 1/1.2) + 1/1.2``; rotate: by
  ``(u - 0.5) * 30`` degrees (bilinear ``affine_grid`` / ``grid_sample``, zeros outside).

*Siamese* refers to distillation (the real and the synthetic batch share one draw); at
evaluation, as here, each minibatch gets fresh draws.

Not kornia: ``kornia.augmentation.ColorJiggle`` clamps to [0, 1] and changes saturation in
HSV, which is another function (and meaningless for normalised or whitened images), and kornia
draws from the global RNG, so K models could not each have their own reproducible stream
without forking it at every step. These transforms draw from an explicit ``torch.Generator``
per model, on the images' device.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..seeding import derive_seed

TRANSFORMS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    """DSA's parameters (``ParamDiffAug`` of the DC / DSA / MTT code); the defaults are theirs."""

    strategy: tuple[str, ...] = TRANSFORMS
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0  # degrees
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def __post_init__(self) -> None:
        bad = [t for t in self.strategy if t not in TRANSFORMS]
        if bad or not self.strategy:
            raise UserError(f"Unknown DSA transform(s) {', '.join(bad) or '(none given)'}. Known: {', '.join(TRANSFORMS)}.")

    def without(self, name: str) -> DSAParams:
        from dataclasses import replace

        return replace(self, strategy=tuple(t for t in self.strategy if t != name))

    def for_channels(self, channels: int, *, flip_digits: bool = False) -> DSAParams:
        """These transforms for images of ``channels`` channels: one-channel (digit / character) images are not flipped
        unless ``flip_digits`` (a flipped 2 is no 2; the field's code never flips them)."""
        return self if (channels == 3 or flip_digits) else self.without("flip")

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["strategy"] = "_".join(self.strategy)
        return d


def _uniform(g: torch.Generator, n: int, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, generator=g, device=g.device, dtype=x.dtype).to(x.device)


def _randint(g: torch.Generator, low: int, high: int, n: int, x: torch.Tensor) -> torch.Tensor:
    """Integers in [low, high)."""
    return torch.randint(low, high, (n,), generator=g, device=g.device).to(x.device)


def color(x: torch.Tensor, p: DSAParams, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_uniform(g, n, x) - 0.5).view(n, 1, 1, 1) * p.brightness
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (_uniform(g, n, x) * p.saturation).view(n, 1, 1, 1) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (_uniform(g, n, x) + p.contrast).view(n, 1, 1, 1) + m


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """``out[i, :, h, w] = x[i, :, h + dy_i, w + dx_i]``, 0 where that falls outside."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h) + dy.view(n, 1)  # n x h
    cols = torch.arange(w, device=x.device).view(1, w) + dx.view(n, 1)  # n x w
    ok = ((rows >= 0) & (rows < h)).view(n, 1, h, 1) & ((cols >= 0) & (cols < w)).view(n, 1, 1, w)
    rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    picked = x.gather(2, rows.view(n, 1, h, 1).expand(n, x.shape[1], h, w))
    picked = picked.gather(3, cols.view(n, 1, 1, w).expand(n, x.shape[1], h, w))
    return picked * ok.to(x.dtype)


def crop(x: torch.Tensor, p: DSAParams, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
    dy = _randint(g, -sy, sy + 1, n, x)
    dx = _randint(g, -sx, sx + 1, n, x)
    return shift(x, dy, dx)


def cutout(x: torch.Tensor, p: DSAParams, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
    cy = _randint(g, 0, h + (1 - ch % 2), n, x)
    cx = _randint(g, 0, w + (1 - cw % 2), n, x)
    # Rows [cy - ch//2, cy - ch//2 + ch - 1] (and columns likewise), clipped to the image.
    y0, x0 = (cy - ch // 2).clamp(0, h - 1), (cx - cw // 2).clamp(0, w - 1)
    y1, x1 = (cy - ch // 2 + ch - 1).clamp(0, h - 1), (cx - cw // 2 + cw - 1).clamp(0, w - 1)
    r = torch.arange(h, device=x.device).view(1, h)
    c = torch.arange(w, device=x.device).view(1, w)
    in_rows = (r >= y0.view(n, 1)) & (r <= y1.view(n, 1))
    in_cols = (c >= x0.view(n, 1)) & (c <= x1.view(n, 1))
    hole = in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w)
    return x * (~hole).to(x.dtype)


def flip(x: torch.Tensor, p: DSAParams, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    return torch.where((_uniform(g, n, x) < p.prob_flip).view(n, 1, 1, 1), x.flip(3), x)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def scale(x: torch.Tensor, p: DSAParams, g: torch.Generator) -> torch.Tensor:
    n, r = x.shape[0], p.ratio_scale
    sx = _uniform(g, n, x) * (r - 1.0 / r) + 1.0 / r
    sy = _uniform(g, n, x) * (r - 1.0 / r) + 1.0 / r
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    return _affine(x, theta)


def rotate(x: torch.Tensor, p: DSAParams, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    a = (_uniform(g, n, x) - 0.5) * 2 * p.ratio_rotate / 180 * math.pi
    zero = torch.zeros_like(a)
    theta = torch.stack([torch.stack([a.cos(), -a.sin(), zero], 1), torch.stack([a.sin(), a.cos(), zero], 1)], 1)
    return _affine(x, theta)


APPLY = {"color": color, "crop": crop, "cutout": cutout, "flip": flip, "scale": scale, "rotate": rotate}


@dataclass
class DSAugmenter:
    """DSA in "single" mode for K models at once: ``augment(xb)`` with ``xb`` K x b x C x H x W.

    Model k draws from its own pair of generators, seeded from ``(seeds[k], "augmentation")``:
    the transform of each of its minibatches on the CPU (no device-to-host read), the per-image
    parameters on the images' device. So model k's augmentations depend only on its seed and
    step, never on K or on the other models.
    """

    params: DSAParams
    seeds: Sequence[int]
    device: torch.device | str = "cpu"
    _choice: list[torch.Generator] = field(default_factory=list, init=False, repr=False)
    _draws: list[torch.Generator] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        dev = torch.device(self.device)
        for s in self.seeds:
            c = torch.Generator()
            c.manual_seed(derive_seed(int(s), "augmentation-choice"))
            d = torch.Generator(device=dev)
            d.manual_seed(derive_seed(int(s), "augmentation"))
            self._choice.append(c)
            self._draws.append(d)

    def choose(self, k: int) -> str:
        i = int(torch.randint(0, len(self.params.strategy), (1,), generator=self._choice[k]))
        return self.params.strategy[i]

    def augment_one(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Model k's next minibatch ``x`` (b x C x H x W), augmented."""
        return APPLY[self.choose(k)](x, self.params, self._draws[k])

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        """Every generator's state (CPU uint8 tensors), so that a resumed loop draws what it would have drawn."""
        return {"choice": [g.get_state() for g in self._choice], "draws": [g.get_state() for g in self._draws]}

    def load_state_dict(self, s: dict[str, list[torch.Tensor]]) -> None:
        if len(s["choice"]) != len(self._choice) or len(s["draws"]) != len(self._draws):
            raise ValueError(f"augmenter state of {len(s['draws'])} models for an augmenter of {len(self._draws)}")
        for g, t in zip((*self._choice, *self._draws), (*s["choice"], *s["draws"])):
            g.set_state(t.to(torch.uint8).cpu())

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        if xb.shape[0] != len(self._draws):
            raise ValueError(f"{xb.shape[0]} models' minibatches for an augmenter of {len(self._draws)} models")
        return torch.stack([self.augment_one(k, xb[k]) for k in range(xb.shape[0])])
