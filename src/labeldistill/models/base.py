"""The common surface of every model: ``features`` + ``head`` and their sizes.

The ridge-regression head, ``torch.func.functional_call`` and ``vmap`` only rely on this
surface, so any ``nn.Module`` a user brings works if it has ``features`` (images ->
N x num_features) and ``head`` (a linear layer num_features -> num_classes).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..registry import Registry


class Classifier(nn.Module):
    """``head(features(x))``; subclasses only build the two parts."""

    features: nn.Module
    head: nn.Linear

    def __init__(self, features: nn.Module, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.num_features = num_features
        self.num_classes = num_classes
        self.head = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about an architecture."""

    name: str
    build: Callable[[int, int, int], nn.Module]  # (in_channels, image_size, num_classes) -> module
    required_size: int | None  # input side the architecture was designed for (None: any)
    description: str
    min_size: int = 1  # smaller images are resized up to this side (e.g. 8x8 digits for LeNet)


MODELS: Registry[ModelInfo] = Registry("model")


def register_model(name: str, *, required_size: int | None = None, min_size: int = 1, aliases: tuple[str, ...] = (), description: str = ""):
    """Decorator for a factory ``(in_channels, image_size, num_classes) -> nn.Module``."""

    def deco(fn: Callable[[int, int, int], nn.Module]) -> Callable[[int, int, int], nn.Module]:
        MODELS.register(name, aliases=aliases)(ModelInfo(name, fn, required_size, description or (fn.__doc__ or "").strip(), min_size))
        return fn

    return deco


def list_models() -> list[str]:
    return MODELS.names()


def get_model_info(name: str) -> ModelInfo:
    return MODELS.get(name)


def input_size_for(name: str, stored_size: int | None) -> int | None:
    """The side images must be resized to for this architecture (None: keep ``stored_size``)."""
    info = MODELS.get(name)
    if info.required_size is not None:
        return info.required_size
    if stored_size is not None and stored_size < info.min_size:
        return info.min_size
    return None


def build_model(name: str, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """Build a registered architecture with default PyTorch initialisation.

    Example:
        >>> net = build_model("lenet", 1, 28, 10)
        >>> net.num_features, net.num_classes
        (84, 10)
    """
    info = MODELS.get(name)
    try:
        return info.build(in_channels, image_size, num_classes)
    except RuntimeError as e:  # e.g. images too small for the architecture's pooling
        raise UserError(f"Model '{name}' cannot take {in_channels}x{image_size}x{image_size} images: {e}") from None


def check_surface(model: nn.Module) -> None:
    """Raise a UserError unless ``model`` has the features + head surface."""
    missing = [a for a in ("features", "head") if not hasattr(model, a)]
    if missing:
        raise UserError(
            f"{type(model).__name__} lacks {', '.join(missing)}: a model needs .features (images -> N x F) and .head (nn.Linear F -> C)."
        )
    if not isinstance(model.head, nn.Linear):
        raise UserError(f"{type(model).__name__}.head must be an nn.Linear, got {type(model.head).__name__}.")

