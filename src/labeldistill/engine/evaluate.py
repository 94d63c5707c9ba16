"""The evaluation protocol: K fresh models trained for T steps, test accuracy mean / std."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..models import build_model
from ..seeding import derive_seed
from .learner import HeadConfig, Learner, ModelState
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
    acc = accuracy(learner, state, test_x, test_y)
    return _evaluation(acc, steps, models, time.perf_counter() - t0)


def _evaluation(acc: torch.Tensor, steps: int, models: int, seconds: float) -> Evaluation:
    """An :class:`Evaluation` from the models' accuracies (fractions)."""
    acc = acc.double().cpu() * 100
    return Evaluation(
        accuracy_mean=float(acc.mean()),
        accuracy_std=float(acc.std(unbiased=False)) if models > 1 else 0.0,
        accuracies=[round(float(a), 4) for a in acc],
        steps=int(steps),
        models=models,
        seconds=round(seconds, 3),
    )


@dataclass
class PaperTest:
    """One set's test under the paper's protocol: what :func:`evaluate_labels` takes, less the test split."""

    learner: Learner
    images: torch.Tensor
    labels: torch.Tensor
    steps: int
    models: int
    seed: int
    batch_size: int
    lr: float

    def key(self) -> tuple:
        """Tests with equal keys can train in one engine call."""
        return group_key(self.learner, self.images, self.batch_size, self.lr)


def group_key(learner: Learner, images: torch.Tensor, batch_size: int, lr: float) -> tuple:
    """Model groups with equal keys can train in one engine call (:func:`train_groups`)."""
    return (learner.signature(), tuple(images.shape), images.dtype, images.device, batch_size, lr)


def train_groups(learner: Learner, groups: list[tuple[torch.Tensor, list[torch.Tensor], list[int], list[int]]], *,
                 batch_size: int, lr: float) -> ModelState:
    """The models of several groups trained in one engine call, group by group in order: a group is (its images, and
    per model its labels, T and seed), and its models train on its own images (``train_models(images_per_model=True)``).
    A model's result depends on its seed, images, labels and T alone: the same as training each group by itself."""
    images = torch.stack([g[0] for g in groups for _ in g[3]])
    labels = torch.stack([y for g in groups for y in g[1]])
    steps = [t for g in groups for t in g[2]]
    seeds = [sd for g in groups for sd in g[3]]
    return train_models(learner, images, labels, steps, seeds, batch_size=batch_size, lr=lr, images_per_model=True)


def evaluate_together(tests: list[PaperTest], test_x: torch.Tensor, test_y: torch.Tensor) -> list[Evaluation]:
    """``[evaluate_labels(t.learner, t.images, t.labels, test_x, test_y, steps=t.steps, ...) for t in tests]``, with the
    tests that share their settings (:meth:`PaperTest.key`) trained in one engine call, each on its own images, labels,
    T and seeds. A model's result depends on those alone, so the numbers are the same (on a CPU bit for bit); the
    time is one call's (each evaluation's ``seconds`` is its share). The stacks of ``distill_many`` test so."""
    out: list[Evaluation | None] = [None] * len(tests)
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tests):
        groups.setdefault(t.key(), []).append(i)
    for members in groups.values():
        t0 = time.perf_counter()
        if len(members) == 1:
            t = tests[members[0]]
            out[members[0]] = evaluate_labels(t.learner, t.images, t.labels, test_x, test_y, steps=t.steps, models=t.models,
                                              seed=t.seed, batch_size=t.batch_size, lr=t.lr)
            continue
        first = tests[members[0]]
        per = [tests[i] for i in members]
        state = train_groups(first.learner, [(t.images, [t.labels] * t.models, [t.steps] * t.models,
                                              model_seeds(t.seed, "test-models", t.models)) for t in per],
                             batch_size=first.batch_size, lr=first.lr)
        acc = accuracy(first.learner, state, test_x, test_y)
        share = (time.perf_counter() - t0) / len(per)
        for i, t, part in zip(members, per, acc.split([t.models for t in per])):
            out[i] = _evaluation(part, t.steps, t.models, share)
    return out  # type: ignore[return-value]
