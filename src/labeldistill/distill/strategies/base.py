"""The interface between the one online loop and a meta-gradient strategy.

A strategy computes, for one step, the meta-gradient of the target loss with respect to
what is learned about the inner minibatch (its labels, its images, or both: ``wrt``), and
leaves the persistent model's gradients in its parameters' ``.grad`` (the loop then steps
the optimisers, watches for over-fitting and resets). Adding a method is one new file with
``@register_strategy``; what is learned is a separate choice (:mod:`..learned`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...engine import Learner, ModelState
from ...registry import Registry


@dataclass(frozen=True)
class Wrt:
    """Which inputs of the inner minibatch the meta-gradient is taken with respect to."""

    images: bool = False  # the (normalised) images the model sees
    labels: bool = True

    def pick(self, labels: torch.Tensor, images: torch.Tensor) -> list[torch.Tensor]:
        """The tensors to differentiate with respect to, labels first (the order :func:`split_grads` reads)."""
        return [t for t, on in ((labels, self.labels), (images, self.images)) if on]


LABELS = Wrt(images=False, labels=True)


@dataclass
class StepOutput:
    label_grad: torch.Tensor | None  # n_i x C: d(target loss) / d(labels of the inner minibatch); None unless wrt.labels
    error: torch.Tensor  # 0-dim: fraction of the target minibatch the current model gets wrong
    loss: torch.Tensor  # 0-dim: the target loss
    # n_i x C x H x W: d(target loss) / d(normalised images of the inner minibatch); None unless wrt.images
    image_grad: torch.Tensor | None = None

    def grads(self) -> list[torch.Tensor]:
        """The meta-gradients computed (labels first)."""
        return [g for g in (self.label_grad, self.image_grad) if g is not None]


def leaf(t: torch.Tensor, wanted: bool) -> torch.Tensor:
    """``t`` as a fresh leaf that autograd differentiates with respect to, when wanted."""
    return t.detach().clone().requires_grad_() if wanted else t


def split_grads(grads: tuple[torch.Tensor, ...], wrt: Wrt) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(label gradient, image gradient) from gradients taken w.r.t. [labels?, images?] in that order."""
    it = iter(grads)
    label_grad = next(it) if wrt.labels else None
    image_grad = next(it) if wrt.images else None
    return label_grad, image_grad


class Strategy(ABC):
    name: ClassVar[str]
    head: ClassVar[str]  # head of the persistent, validation and test models: "linear" or "ridge"
    # How the target loss scales the model's logits (DistillConfig.target_scale): "shared" (the paper's) for every
    # strategy; a strategy that offers more names them here.
    target_scales: ClassVar[tuple[str, ...]] = ("shared",)
    # Whether the strategy looks more than one virtual step ahead (DistillConfig.horizon > 1); only one that does says so.
    takes_horizon: ClassVar[bool] = False
    # How the loop's persistent model trains: "adam" (the paper's: one young model, an Adam step per loop step from the
    # gradients the strategy leaves in it, reset on over-fitting) or "protocol" (students trained the test protocol's
    # way, never reset: distill/students.py; the strategy then leaves no gradient in them).
    persistent: ClassVar[str] = "adam"
    # The strategy's own defaults for settings that are None in a config (config.METHOD_DEFAULTS: the paper's otherwise).
    defaults: ClassVar[dict[str, object]] = {}
    # A "protocol" strategy's inner minibatch: this many augmented views of each image (distill/students.py).
    views: int = 1

    def __init__(self, *, inner_lr: float = 0.01, meta_gradient: str = "jvp", target_scale: str = "shared",
                 horizon: int = 1) -> None:
        if target_scale not in self.target_scales:
            raise ValueError(f"method {self.name} has no target scale {target_scale!r} (it has: {', '.join(self.target_scales)})")
        if horizon != 1 and not self.takes_horizon:
            raise ValueError(f"method {self.name} looks one step ahead (horizon 1, got {horizon})")
        self.inner_lr = inner_lr
        self.meta_gradient = meta_gradient
        self.target_scale = target_scale
        self.horizon = horizon

    @classmethod
    def from_config(cls, cfg, **common) -> Strategy:
        """The strategy for a resolved :class:`~labeldistill.distill.config.DistillConfig`; ``common``: the settings every
        strategy takes (inner_lr, meta_gradient, target_scale, horizon). A strategy with settings of its own reads them here."""
        return cls(**common)

    @abstractmethod
    def step(self, learner: Learner, model: ModelState, xb: torch.Tensor, yb: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor,
             wrt: Wrt = LABELS) -> StepOutput:
        """One step: (xb, yb) the inner minibatch as the model sees it, (xt, yt) a target minibatch."""


STRATEGIES: Registry[type[Strategy]] = Registry("method", others="or dd, sldd (original DD and soft-label DD, their own trainer)")


def register_strategy(name: str, aliases: tuple[str, ...] = ()):
    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.register(name, aliases=aliases)(cls)

    return deco


def target_classes(y: torch.Tensor) -> torch.Tensor:
    """The classes of a target minibatch's labels: class indices as they are, probability vectors (``--target-labels
    teacher``) by their most probable class; what a step's error counts against (the reset rule reads it)."""
    return y.argmax(-1) if y.is_floating_point() else y


def step_error(out: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
    """A step's error (:attr:`StepOutput.error`): the fraction of the target minibatch whose logits ``out`` pick
    another class than :func:`target_classes` (no graph: argmax has none)."""
    return (out.argmax(-1) != target_classes(yt)).float().mean()
