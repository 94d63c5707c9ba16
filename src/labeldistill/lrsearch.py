"""The learning rate of another optimiser for a fixed set, chosen on the validation split.

The paper's flexibility claim (Section 4.4) is that a label-distilled set trains with an
off-the-shelf optimiser, where DD's images need their step-wise learned learning rates (its
Table 11 averages them and loses 15 points). To put that side by side, a label set is trained
with plain SGD (no momentum, no decay) at ONE constant learning rate; which one is chosen here,
as a user would choose it: the grid's value whose models score best on the validation split.
Validation models have their own seed stream, so the chosen lr never saw the test models.
"""
from __future__ import annotations

import torch

from .engine import Learner, TrainRecipe, accuracy, model_seeds, train_models

SGD_LRS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # half-decades around DD's learned lrs
SEARCH_MODELS = 3  # models per candidate: one model's validation accuracy moves by points between seeds


def choose_lr(
    learner: Learner, images: torch.Tensor, labels: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, *,
    steps: int, seed: int, batch: int, optimizer: str = "sgd", grid: tuple[float, ...] = SGD_LRS,
    models: int = SEARCH_MODELS, order: int | None = None,
) -> tuple[float, dict[float, float]]:
    """(the chosen lr, mean validation accuracy (%) of ``models`` models for every lr of ``grid``).

    Every candidate trains the same ``models`` initialisations for ``steps`` steps on random
    minibatches of ``batch`` (stream ``order``); ties go to the smaller lr.

    Example:
        >>> lr, scores = choose_lr(learner, ds.images, ds.labels, data.val.x, data.val.y, steps=ds.steps, seed=0, batch=50)
    """
    if not grid:
        raise ValueError("an lr grid needs at least one value")
    seeds = model_seeds(seed, "lr-search-models", models)
    scores: dict[float, float] = {}
    grid = tuple(sorted(grid))
    for lr in grid:
        state = train_models(learner, images, labels, steps, seeds, batch_size=batch,
                             recipe=TrainRecipe(optimizer=optimizer, lr=lr, order=order))
        scores[lr] = round(float(accuracy(learner, state, val_x, val_y).double().mean()) * 100, 4)
    best = max(scores.values())
    return next(lr for lr in grid if scores[lr] == best), scores
