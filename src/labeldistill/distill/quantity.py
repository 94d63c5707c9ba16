"""One part of the synthetic set (its images or its labels), learned or fixed.

The loop never asks which parts are learned: it takes each step's minibatch as models see
it from every part, hands the strategy's meta-gradients back to every part (a fixed part
ignores them), and checkpoints and snapshots whatever the parts report. Which parts are
learned in a run is the registry entry of ``--learn`` (:mod:`.learned`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch


class Quantity(ABC):
    """A part of the synthetic set. ``key`` names it in checkpoints ("images" or "labels")."""

    key: ClassVar[str]
    learned: ClassVar[bool]

    @abstractmethod
    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        """The given rows as models see them (no autograd history)."""

    @abstractmethod
    def seen(self) -> torch.Tensor:
        """The whole set as models see it (a detached copy)."""

    def step(self, rows: torch.Tensor, grad: torch.Tensor | None) -> None:
        """One optimiser step from the meta-gradient of the given rows (a fixed part ignores it)."""

    def snapshot(self) -> torch.Tensor | None:
        """What a validation snapshot keeps of this part: the set as seen, or None when fixed."""
        return self.seen() if self.learned else None

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return []

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries (a fixed part is rebuilt from the config and keeps none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from checkpoint entries written by :meth:`state_dict`."""
