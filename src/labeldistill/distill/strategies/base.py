"""The interface between the one online loop and a meta-gradient strategy.

A strategy computes, for one step, the meta-gradient of the target loss with respect
to the labels of the inner minibatch, and leaves the persistent model's gradients in
its parameters' ``.grad`` (the loop then steps the optimisers, watches for over-fitting
and resets). Adding a method is one new file with ``@register_strategy``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...engine import Learner, ModelState
from ...registry import Registry


@dataclass
class StepOutput:
    label_grad: torch.Tensor  # n_i x C: d(target loss) / d(labels of the inner minibatch)
    error: torch.Tensor  # 0-dim: fraction of the target minibatch the current model gets wrong
    loss: torch.Tensor  # 0-dim: the target loss


class Strategy(ABC):
    name: ClassVar[str]
    head: ClassVar[str]  # head of the persistent, validation and test models: "linear" or "ridge"

    def __init__(self, *, inner_lr: float = 0.01, meta_gradient: str = "jvp") -> None:
        self.inner_lr = inner_lr
        self.meta_gradient = meta_gradient

    @abstractmethod
    def step(self, learner: Learner, model: ModelState, xb: torch.Tensor, yb: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor) -> StepOutput:
        """One step: (xb, yb) the inner minibatch and its current labels, (xt, yt) a target minibatch."""


STRATEGIES: Registry[type[Strategy]] = Registry("method")


def register_strategy(name: str, aliases: tuple[str, ...] = ()):
    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.register(name, aliases=aliases)(cls)

    return deco
