"""A softmax temperature for a label set, chosen on the validation split the way the final test trains.

Teacher labels get their temperature chosen this way (:mod:`labeldistill.teacher`, Qin et al.: 1 → 4 moves
MNIST-100 teacher labels from 91.89 to 95.49 under ``dc``). Learned labels were tuned for the loop's own
protocol (LeNet, Adam, T steps); under another one (ConvNet-3, SGD, 1,000 epochs) their scale may be wrong
in the same way, so ``distill --label-temperature auto`` gives them the same choice, on the same grid, scored the
same way: one student per temperature on the validation split, trained as the test trains; their grid also
sharpens (:data:`LABEL_TEMPERATURES`), since learned labels, unlike a teacher's logits, gained from it. A learned label
set holds distributions (rows sum to one, zeros allowed), so a temperature ``t`` gives
``softmax(log(labels) / t)`` (``labels ** (1/t)`` renormalised; zeros stay zero).

:func:`validation_scorer` is the one score both teacher and learned labels use.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from .engine import Learner, accuracy, model_seeds, train_models
from .errors import UserError

TEMPERATURES = (1.0, 2.0, 4.0, 8.0)  # the teacher's grid (temperature="auto"): its logits gain from softening
# Learned labels' grid (label_temperature="auto"): they can also gain from sharpening (MNIST-100 LD RR under dc:
# 89.25 / 89.26 at 1, 91.02 / 91.03 at 0.5, 86.29 / 86.38 at 2, same models; session 11, docs/results.md).
LABEL_TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def parse_temperature(value: object, flag: str = "--temperature") -> float | str:
    """A positive, finite temperature, or ``"auto"`` (chosen on the validation split)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        t = math.nan
    if not (t > 0 and math.isfinite(t)):
        raise UserError(f"{flag} must be a positive number or auto, got {value!r}.")
    return t


def choose_best(candidates, score: Callable) -> tuple:
    """The candidate that ``score`` rates best (the first on ties, so order ``candidates`` by preference), and every
    score by ``str(candidate)``, rounded to 4 places. The one rule of the temperature and teacher-epoch choices."""
    scores = {c: float(score(c)) for c in candidates}
    best = max(scores.values())
    return next(c for c in candidates if scores[c] == best), {str(c): round(v, 4) for c, v in scores.items()}


def choose_temperature(logits: torch.Tensor, score: Callable[[torch.Tensor], float],
                       grid: tuple[float, ...] = TEMPERATURES) -> tuple[float, dict[str, float]]:
    """The grid temperature whose labels ``softmax(logits / T)`` score best (the lowest on ties), and every score."""
    return choose_best(grid, lambda t: score(torch.softmax(logits / t, dim=-1)))


def grid_edge(chosen: float, scores: dict[str, float], grid: tuple[float, ...]) -> str | None:
    """``"largest"`` / ``"smallest"`` when ``chosen`` is an end of ``grid`` that scored strictly above its neighbour
    (the best temperature may lie beyond the grid), else None; warns, naming the next temperature to try."""
    if len(grid) < 2 or chosen not in (grid[0], grid[-1]):
        return None
    edge, neighbour = ("largest", grid[-2]) if chosen == grid[-1] else ("smallest", grid[1])
    if scores[str(chosen)] <= scores[str(neighbour)]:
        return None
    beyond = chosen * chosen / neighbour  # the grid's own ratio, one step further
    warnings.warn(f"temperature {chosen:g} was chosen at the {edge} end of the grid {list(grid)} (validation "
                  f"{scores[str(chosen)]:.2f} against {scores[str(neighbour)]:.2f} at {neighbour:g}): a temperature of "
                  f"{beyond:g} may do better; pass it explicitly to try it.", stacklevel=2)
    return edge


def temper(labels: torch.Tensor, t: float) -> torch.Tensor:
    """Label distributions at temperature ``t``: ``softmax(log(labels) / t)``."""
    return torch.softmax(torch.log(labels) / float(t), dim=-1)


def choose_label_temperature(labels: torch.Tensor, score: Callable[[torch.Tensor], float]) -> tuple[torch.Tensor, dict]:
    """Learned labels at the :data:`LABEL_TEMPERATURES` temperature that ``score`` rates best, and a record of the choice."""
    t0 = time.perf_counter()
    t, scores = choose_temperature(torch.log(labels.detach()), score, LABEL_TEMPERATURES)
    return temper(labels.detach(), t), {"temperature": t, "grid": list(LABEL_TEMPERATURES), "val_accuracy": scores,
                                        "at_grid_edge": grid_edge(t, scores, LABEL_TEMPERATURES),
                                        "seconds": round(time.perf_counter() - t0, 3),
                                        "how": "one student per temperature on the validation split, trained as the test trains"}


def validation_scorer(problem, *, proto, student: Learner, seed: int, batch: int, lr: float, zca=None,
                      steps: int | None = None, images: torch.Tensor | None = None, ledger: Path | None = None,
                      purpose: str = "validation-models", progress: bool = False) -> Callable[[torch.Tensor], float]:
    """``score(labels) -> validation accuracy (%)`` of one student trained on ``images`` (default ``problem.base_x``)
    as the test under ``proto`` trains: the paper protocol's step search (its best accuracy) when ``steps`` is None,
    else one model trained ``steps`` steps; a fixed-epoch protocol's own training (``ledger``: its finished models;
    ``progress``: a bar over each student's epochs)."""
    val = problem.target.val
    x = problem.base_x if images is None else images
    if proto.is_paper and steps is None:
        if images is not None:
            raise ValueError("the step search scores the problem's base images only")
        from .stepsearch import choose_steps

        return lambda labels: max(choose_steps(student, problem, labels, seed=seed, lr=lr, batch=batch)[1].values())
    if proto.is_paper:
        def at_steps(labels: torch.Tensor) -> float:
            state = train_models(student, x, labels, int(steps), model_seeds(seed, purpose, 1), batch_size=batch, lr=lr)
            return float(accuracy(student, state, val.x, val.y)[0]) * 100
        return at_steps
    from .protocols import evaluate_protocol

    return lambda labels: evaluate_protocol(proto, student, x, labels, val.x, val.y, steps=int(steps or 1), seed=seed,
                                            models=1, batch_size=batch, lr=lr, zca=zca, purpose=purpose, ledger=ledger,
                                            progress=progress).accuracy_mean
