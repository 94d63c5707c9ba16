"""The evaluation protocol: K fresh models trained for T steps, test accuracy mean / std."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..models import build_model
from ..seeding import derive_seed
from .learner import HeadConfig, Learner
from .recipe import TrainRecipe
from .train import accuracy, train_models


@dataclass
class Evaluation:
    """Test accuracy (%) of ``models`` fresh models; std is the population std (numpy's default)."""

    accuracy_mean: float
    accuracy_std: float
    accuracies: list[float]
    steps: int
    models: int
    seconds: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def make_learner(
    arch: str | Callable[[], nn.Module], in_channels: int, image_size: int, num_classes: int,
    head: str = "linear", head_config: HeadConfig | None = None,
) -> Learner:
    """A :class:`Learner` for a registered architecture name or a user's module factory."""
    factory = arch if callable(arch) else (lambda: build_model(arch, in_channels, image_size, num_classes))
    return Learner(factory, head=head, head_config=head_config)


def model_seeds(seed: int, purpose: str, k: int) -> list[int]:
    """K model seeds for a purpose ("test-models", "validation-models", ...)."""
    return [derive_seed(seed, purpose, i) for i in range(k)]


def evaluate_labels(
    learner: Learner,
    images: torch.Tensor,
    labels: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    steps: int,
    models: int = 20,
    seed: int = 0,
    batch_size: int = 50,
    lr: float = 1e-3,
    recipe: TrainRecipe | None = None,
) -> Evaluation:
    """Train ``models`` fresh models on (images, labels) for ``steps`` steps, all at once,
    and measure their accuracy on (test_x, test_y). ``recipe``: another way to train them
    (:class:`~.recipe.TrainRecipe`, e.g. plain SGD; ``lr`` is then the recipe's); None: the paper's.

    Example:
        >>> ev = evaluate_labels(learner, base_x, labels, test.x, test.y, steps=300)
        >>> f"{ev.accuracy_mean:.2f} +- {ev.accuracy_std:.2f}"
    """
    t0 = time.perf_counter()
    state = train_models(learner, images, labels, steps, model_seeds(seed, "test-models", models), batch_size=batch_size, lr=lr,
                         recipe=recipe)
    acc = accuracy(learner, state, test_x, test_y).double().cpu() * 100
    return Evaluation(
        accuracy_mean=float(acc.mean()),
        accuracy_std=float(acc.std(unbiased=False)) if models > 1 else 0.0,
        accuracies=[round(float(a), 4) for a in acc],
        steps=int(steps),
        models=models,
        seconds=round(time.perf_counter() - t0, 3),
    )
