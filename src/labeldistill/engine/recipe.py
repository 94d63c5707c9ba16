"""How K models train when it is not the paper's way: optimiser, learning-rate schedule,
epochs of shuffled minibatches and augmentation (``train_models(..., recipe=...)``).

Without a recipe ``train_models`` runs exactly the paper's path (Adam, T random minibatches);
the evaluation protocols (``labeldistill.protocols``) turn into a recipe.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError
from .augment import DSAParams

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainRecipe:
    """Args:
        optimizer: ``"adam"`` or ``"sgd"`` (over the K stacked models: both are elementwise, so
            one optimiser over K models equals K optimisers).
        lr, momentum, weight_decay: as ``torch.optim.SGD`` / ``Adam`` take them.
        epochs: None: ``steps`` random minibatches drawn without replacement (the paper's);
            else this many passes over the set, each a fresh shuffle cut into minibatches of
            ``batch_size`` (the last one smaller, as a ``DataLoader(shuffle=True)`` gives).
        lr_decay_epochs, lr_decay_factor: the learning rate of epoch e is
            ``lr * factor ** #{d in lr_decay_epochs : d <= e}`` (:meth:`lr_at`); only with ``epochs``.
        reset_momentum_at_decay: clear the optimiser's state at a decay, as a new optimiser
            would (the DC / DSA / MTT code builds a new SGD there).
        augmentation: DSA parameters (per-sample, seeded per model), or None.
        order: None: model k's minibatches come from its own seed's stream (as without a recipe);
            an integer K draws them from stream K of that seed instead: the same initialisations
            seeing the set in another order (the flexibility table's "another data order").
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    epochs: int | None = None
    lr_decay_epochs: tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    reset_momentum_at_decay: bool = False
    augmentation: DSAParams | None = None
    order: int | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"Unknown optimizer '{self.optimizer}'. Known: {', '.join(OPTIMIZERS)}.")
        if not (self.lr > 0 and self.momentum >= 0 and self.weight_decay >= 0):
            raise UserError(f"lr must be positive and momentum / weight decay at least 0 (got {self.lr}, {self.momentum}, {self.weight_decay}).")
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"epochs must be at least 1 (got {self.epochs}).")
        if self.order is not None and self.order < 0:
            raise UserError(f"order takes a stream number >= 0 (got {self.order}).")
        if self.lr_decay_epochs and self.epochs is None:
            raise UserError("an lr decay by epoch needs epochs")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (0-based) ``epoch``."""
        return self.lr * self.lr_decay_factor ** sum(1 for d in self.lr_decay_epochs if d <= epoch)

    @staticmethod
    def steps_per_epoch(n: int, batch: int) -> int:
        return math.ceil(n / batch)

    def total_steps(self, n: int, batch: int, steps: int | None) -> int:
        """The training's steps: its fixed epochs', else ``steps`` (the set's T; a set without one has only fixed epochs)."""
        if self.epochs is not None:
            return self.epochs * self.steps_per_epoch(n, batch)
        if steps is None:
            raise ValueError("a recipe without fixed epochs trains for T steps: give steps")
        return int(steps)
