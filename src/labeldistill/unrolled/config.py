"""Settings of the unrolled trainer (DD, Wang et al. 2018; SLDD, Sucholutsky & Schonlau 2019).

The defaults are the reference code's (SsnL/dataset-distillation @24e6958, ``base_options.py``
and ``train_distilled_image.py``; docs/DD-REFERENCE.md) for MNIST with random initialisation;
:func:`unrolled_config` gives the per-dataset and per-method values.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import UserError, check_choice
from ..settings import from_dict

METHODS = ("dd", "sldd")
INITS = ("xavier",)


@dataclass(frozen=True)
class UnrolledConfig:
    """One unrolled distillation run.

    Args:
        method: ``"dd"`` (images and learning rates learned, labels fixed) or ``"sldd"`` (a free
            soft label per image learned as well).
        steps: distinct image batches (``distill_steps``); step t trains on batch ``t mod steps``.
        epochs: passes over the batches (``distill_epochs``); ``steps * epochs`` inner steps.
        images_per_class: images of each class in every batch (the batch holds classes 0..C-1).
        distill_lr: the initial inner learning rate; each step's lr is ``softplus(raw_t)`` with
            ``raw_t = log(expm1(distill_lr))`` at the start.
        outer_lr, betas: Adam over images, raw lrs (and SLDD labels), one group.
        decay_epochs, decay_factor: the outer lr is ``outer_lr * decay_factor ** ((epoch + 1) //
            decay_epochs)`` in outer epoch ``epoch`` (0-based): the reference steps its ``StepLR``
            at the start of every epoch, the first included, so the first halving is at epoch 39.
        outer_epochs: passes over the target's training split; one outer iteration per target
            minibatch, the last (smaller) minibatch of an epoch kept, as PyTorch's DataLoader does.
        batch_size: target minibatch size (shuffled each epoch).
        init, init_gain: every fresh network: Xavier-normal weights with this gain, zero biases.
        image_std: distilled images start as N(0, image_std^2) in normalised space (never clamped).
        augment: reflect-pad 4, random crop, random horizontal flip of every target minibatch
            (the reference's CIFAR-10 training transform; off for MNIST).
    Example:
        >>> cfg = unrolled_config("cifar10", "sldd")
        >>> cfg.inner_steps, cfg.distill_lr, cfg.outer_epochs
        (30, 0.001, 350)
    """

    method: str = "dd"
    steps: int = 10
    epochs: int = 3
    images_per_class: int = 1
    distill_lr: float = 0.02
    outer_lr: float = 0.01
    betas: tuple[float, float] = (0.5, 0.999)
    decay_epochs: int = 40
    decay_factor: float = 0.5
    outer_epochs: int = 400
    batch_size: int = 1024
    init: str = "xavier"
    init_gain: float = 1.0
    image_std: float = 1.0
    augment: bool = False

    def __post_init__(self) -> None:
        check_choice("unrolled method", self.method, METHODS)
        check_choice("network initialisation", self.init, INITS)
        positive_ints = ("steps", "epochs", "images_per_class", "decay_epochs", "outer_epochs", "batch_size")
        for name in positive_ints:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"{name} must be a positive integer, got {v!r}.")
        if not (self.distill_lr > 0 and math.isfinite(self.distill_lr)):
            raise UserError(f"distill_lr must be positive (it is the softplus of the raw lr), got {self.distill_lr!r}.")
        if not self.outer_lr > 0 or not 0 < self.decay_factor <= 1:
            raise UserError(f"outer_lr must be positive and decay_factor in (0, 1], got {self.outer_lr!r}, {self.decay_factor!r}.")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"betas must be two numbers in [0, 1), got {self.betas!r}.")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @property
    def inner_steps(self) -> int:
        """T, the number of unrolled steps (``steps * epochs``)."""
        return self.steps * self.epochs

    @property
    def learns_labels(self) -> bool:
        return self.method == "sldd"

    def outer_lr_at(self, epoch: int) -> float:
        """The Adam learning rate during outer epoch ``epoch`` (0-based), as the reference's StepLR."""
        return self.outer_lr * self.decay_factor ** ((epoch + 1) // self.decay_epochs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UnrolledConfig:
        return from_dict(cls, d, what="unrolled setting", tuples=("betas",))


# Per-dataset values of the reference code (docs/DD-REFERENCE.md): CIFAR-10 starts its lrs at
# 0.001 and augments the target minibatches. SLDD's CIFAR-10 files: 350 epochs, halving every 35;
# its MNIST setting was not recorded, so SLDD MNIST takes the same 350 / 35 (the likeliest).
_DATASET = {"mnist": {}, "cifar10": {"distill_lr": 0.001, "augment": True}}
_METHOD = {"dd": {}, "sldd": {"outer_epochs": 350, "decay_epochs": 35}}


def unrolled_config(dataset: str = "mnist", method: str = "dd", **overrides) -> UnrolledConfig:
    """The reference settings for ``dataset`` (``"mnist"`` or ``"cifar10"``) and ``method``.

    Args:
        dataset: which reference setting; other datasets take MNIST's unless overridden.
        method: ``"dd"`` or ``"sldd"``.
        overrides: any :class:`UnrolledConfig` field.
    Example:
        >>> unrolled_config("mnist", "dd", outer_epochs=1).outer_epochs
        1
    """
    check_choice("unrolled method", method, METHODS)
    values = {"method": method, **_DATASET.get(dataset, {}), **_METHOD[method], **overrides}
    return UnrolledConfig.from_dict(values)
