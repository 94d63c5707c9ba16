"""The paper's baselines: the base images with their true labels (optionally smoothed).

The number of steps is chosen on the validation split by training one model and
measuring it at the reference code's checkpoints (10, 25, 50, ...), keeping the earliest
best; then K test models are trained for that many steps (section 4.2).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from . import protocol
from .engine import Learner, ModelState, accuracy, evaluate_labels, model_seeds, train_models
from .problem import Problem


@dataclass(frozen=True)
class BaselineConfig:
    smoothing: float = 0.0  # label smoothing epsilon (the paper's LS baseline: 0.1)
    models: int = 20
    batch_size: int | None = None  # N_i; None: the paper's rule for N
    lr: float = 1e-3
    seed: int = 0


def true_labels(y: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot labels, smoothed as ``(1 - eps) * onehot + eps / C``."""
    onehot = F.one_hot(y, num_classes).float()
    return onehot * (1.0 - smoothing) + smoothing / num_classes


def choose_steps(learner: Learner, problem: Problem, labels: torch.Tensor, cfg: BaselineConfig, batch: int) -> tuple[int, dict[int, float]]:
    """Earliest checkpoint with the best validation accuracy of one model."""
    checkpoints = protocol.baseline_checkpoints(problem.n_base)
    val = problem.target.val
    curve: dict[int, float] = {}

    def observe(step: int, state: ModelState) -> None:
        curve[step] = float(accuracy(learner, state, val.x, val.y)[0]) * 100

    seed = model_seeds(cfg.seed, "validation-models", 1)
    train_models(learner, problem.base_x, labels, max(checkpoints), seed, batch_size=batch, lr=cfg.lr, observe_at=checkpoints, observer=observe)
    best = max(curve.values())
    return next(s for s in checkpoints if curve[s] == best), curve


def run_baseline(learner: Learner, problem: Problem, cfg: BaselineConfig = BaselineConfig()) -> dict:
    """Run one baseline; returns the result dictionary (see :class:`~labeldistill.engine.Evaluation`)."""
    if problem.cross_dataset:
        raise ValueError("baselines need true labels: use a within-dataset problem")
    t0 = time.perf_counter()
    batch = cfg.batch_size or protocol.inner_batch_size(problem.n_base, problem.target.name)
    labels = true_labels(problem.base_y, problem.target.num_classes, cfg.smoothing)
    steps, curve = choose_steps(learner, problem, labels, cfg, batch)
    test = problem.target.test
    ev = evaluate_labels(learner, problem.base_x, labels, test.x, test.y, steps=steps, models=cfg.models, seed=cfg.seed, batch_size=batch, lr=cfg.lr)
    out = ev.to_dict()
    out.update(
        seconds=round(time.perf_counter() - t0, 3),
        validation_curve={str(k): round(v, 4) for k, v in curve.items()},
        batch_size=batch,
        config=asdict(cfg),
    )
    return out
