"""The paper's choice of T for a fixed set: the step search on the validation split (section 4.2).

One model (the validation-model seed stream) trains on the set and is measured at the reference
code's checkpoints (10, 25, 50, ...); the earliest checkpoint with the best validation accuracy
is T. Baselines use it for their T; teacher labels score a temperature by its best accuracy;
DD / SLDD sets use it for their "like LD" variant.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from . import paper_defaults
from .engine import Learner, ModelState, accuracy, model_seeds, train_models


def choose_steps(learner: Learner, problem, labels: torch.Tensor, *, seed: int, lr: float, batch: int,
                 progress: bool = False) -> tuple[int, dict[int, float]]:
    """(T, validation accuracy (%) at every checkpoint) for ``problem.base_x`` with ``labels``.

    ``problem``: anything with ``base_x``, ``n_base`` and ``target.val`` (a :class:`~labeldistill.problem.Problem`);
    ``progress``: a bar over the steps (minutes with a ConvNet-3 on a CPU), advanced at each checkpoint."""
    checkpoints = paper_defaults.baseline_checkpoints(problem.n_base)
    val = problem.target.val
    curve: dict[int, float] = {}
    with tqdm(total=max(checkpoints), disable=not progress, unit="step", leave=False, desc="paper step search") as bar:
        def observe(step: int, state: ModelState) -> None:  # None, never tqdm's True: an observer's True stops the training
            curve[step] = float(accuracy(learner, state, val.x, val.y)[0]) * 100
            bar.update(step - bar.n)

        train_models(learner, problem.base_x, labels, max(checkpoints), model_seeds(seed, "validation-models", 1), batch_size=batch,
                     lr=lr, observe_at=checkpoints, observer=observe)
    best = max(curve.values())
    return next(s for s in checkpoints if curve[s] == best), curve
