"""``paper-table7``: the paper's optimised base examples (Appendix D, Table 7).

"Try 50 randomly selected sets of examples, train a model with each three times and measure the
validation accuracy ... every 50 steps up to 1000 steps (or 1700 steps when there are more than
100 base examples). Select the set with the largest mean validation accuracy at any point of
training (across the three runs)."
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import paper_defaults
from ..data.selection import select_base
from ..engine import make_learner, model_seeds
from ..seeding import numpy_generator
from ._base import Selection, SelectionContext, Selector, register_selector
from ._train import set_accuracy, train_sets


def checkpoints(n_base: int, every: int = 50, steps: int | None = None) -> list[int]:
    """Steps at which candidates are validated: every 50 up to 1,000 (1,700 for N > 100)."""
    last = steps if steps is not None else (1700 if n_base > 100 else 1000)
    return list(range(every, last + 1, every))


def candidate_sets(ctx: SelectionContext, count: int) -> np.ndarray:
    """``count`` x N random balanced sets (positions in the training split). Set 0 is the
    ``random`` selector's draw (stream ``(seed, "base")``); set j > 0 comes from ``(seed, "base", j)``."""
    draws = []
    for j in range(count):
        g = numpy_generator(ctx.seed, "base") if j == 0 else numpy_generator(ctx.seed, "base", j)
        draws.append(select_base(ctx.train.y, ctx.n_base, num_classes=ctx.num_classes, generator=g))
    return np.stack(draws)


def best_candidate(curves: np.ndarray) -> tuple[int, np.ndarray]:
    """(chosen candidate, score of each) for ``curves`` of shape candidates x repeats x checkpoints:
    the score is the best mean-over-repeats accuracy at any checkpoint; ties go to the lower index."""
    scores = np.asarray(curves, dtype=np.float64).mean(axis=1).max(axis=1)
    return int(np.argmax(scores)), scores


def rounded(values) -> list[float]:
    """Accuracies as recorded in a selection's details (4 decimals)."""
    return [round(float(v), 4) for v in values]


def chosen_record(chosen: int, score: float, curves: np.ndarray, marks: list[int], arch: str) -> dict:
    """What a selection records about the kept candidate: its index and score, and its models' mean
    curve (``curves``: repeats x checkpoints) with the step where that peaks."""
    mean = np.asarray(curves).mean(axis=0)
    return {"chosen_candidate": int(chosen), "chosen_score": round(float(score), 4),
            "chosen_best_step": int(marks[int(np.argmax(mean))]), "chosen_mean_curve": rounded(mean),
            "checkpoints": marks, "arch": arch}


@register_selector("paper-table7")
@dataclass
class PaperTable7(Selector):
    """The paper's strategy: 50 random balanced candidate sets, 3 models each trained with true
    labels (standard head, Adam 1e-3, the paper's N_i), validation accuracy every 50 steps; keep
    the candidate with the best mean curve. All candidates' models train at once (one batched job).

    Sees: the training split (candidates, their images and true labels) and the validation split
    (scoring), as in the paper; never the test split.
    """

    sees = "train + validation"
    candidates: int = 50
    repeats: int = 3
    every: int = 50
    steps: int | None = None  # None: 1,000 (1,700 for N > 100)
    batch_size: int | None = None  # N_i; None: the paper's rule for N
    lr: float = 1e-3
    mode: str = "auto"  # engine model batching ("vmap" on a GPU, "loop" on a CPU)

    def curves(self, ctx: SelectionContext, sets: np.ndarray) -> np.ndarray:
        """Validation accuracy (%) of every candidate's models: candidates x repeats x checkpoints."""
        return self.train_curves(ctx, sets, np.arange(len(sets)), checkpoints(ctx.n_base, self.every, self.steps),
                                 self.repeats, ctx.val.x, ctx.val.y)

    def train_curves(self, ctx: SelectionContext, sets: np.ndarray, ids: np.ndarray, marks: list[int], repeats: int,
                     val_x: torch.Tensor, val_y: torch.Tensor) -> np.ndarray:
        """Accuracy (%) on (val_x, val_y) at ``marks`` of ``repeats`` models per set: sets x repeats x marks.

        Set ``sets[i]`` is candidate ``ids[i]``; its r-th model (r < repeats) is the r-th of that
        candidate in the full paper strategy (seed ``model_seeds(seed, ..., candidates * self.repeats)``
        at ``ids[i] * self.repeats + r``), so a candidate's curves do not depend on which others train
        beside it (batched training equals training alone, bit for bit on the CPU).
        """
        c = len(sets)
        batch = self.batch_size or paper_defaults.inner_batch_size(ctx.n_base, ctx.target)
        learner = make_learner(ctx.arch, int(ctx.train.x.shape[1]), int(ctx.train.x.shape[-1]), ctx.num_classes)
        dev = ctx.device
        per_model = torch.as_tensor(np.repeat(sets, repeats, axis=0), device=dev)  # candidate-major
        onehot = F.one_hot(ctx.train.y[per_model], ctx.num_classes).to(ctx.train.x.dtype)
        every_seed = model_seeds(ctx.seed, "base-select-models", self.candidates * self.repeats)
        seeds = [every_seed[int(j) * self.repeats + r] for j in ids for r in range(repeats)]
        out = torch.zeros(c * repeats, len(marks), device=dev)
        column = {s: i for i, s in enumerate(marks)}

        def observe(step, state) -> None:
            out[:, column[step]] = set_accuracy(learner, state, ctx.train.x, per_model, val_x, val_y) * 100

        train_sets(learner, ctx.train.x, per_model, onehot, max(marks), seeds, batch_size=batch, lr=self.lr,
                   observe_at=marks, observer=observe, mode=self.mode)
        return out.double().cpu().numpy().reshape(c, repeats, len(marks))

    def select(self, ctx: SelectionContext) -> Selection:
        sets = candidate_sets(ctx, self.candidates)
        curves = self.curves(ctx, sets)
        chosen, scores = best_candidate(curves)
        details = {
            **chosen_record(chosen, scores[chosen], curves[chosen], checkpoints(ctx.n_base, self.every, self.steps), ctx.arch),
            "random_candidate_score": round(float(scores[0]), 4),  # candidate 0 is the `random` draw
            "scores": rounded(scores),
        }
        return Selection(sets[chosen], details)
