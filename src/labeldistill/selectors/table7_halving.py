"""``table7-halving``: the paper's Table 7 objective at a fraction of its cost, by successive halving.

``paper-table7`` trains 3 models on each of 50 candidate sets and validates all 150 on the whole
validation split every 50 steps; on a CPU the validation passes cost more than the training. Most
candidates are clearly not the best after one model, so this screens first and spends the paper's
full scoring only on the few that survive (successive halving, Jamieson & Talwalkar 2016):

1. Screen: one model per candidate (the paper's first model of that candidate, same seed), scored
   every ``screen_every`` steps on a stratified subset of ``screen_images`` validation images;
   a candidate's screen score is its best accuracy at any checkpoint.
2. Keep the ``keep`` best (ties to the lower index) and score them exactly as ``paper-table7`` does:
   its 3 models each, every 50 steps, on the whole validation split.

The candidates are ``paper-table7``'s (set 0 is the ``random`` draw) and a kept candidate's curves
are the ones ``paper-table7`` computes for it, so whenever the paper's winner survives the screen
this keeps the same set (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.splits import stratified_subset
from ..seeding import numpy_generator
from ._base import Selection, SelectionContext, register_selector
from .paper_table7 import PaperTable7, best_candidate, candidate_sets, checkpoints, chosen_record, rounded


@register_selector("table7-halving")
@dataclass
class Table7Halving(PaperTable7):
    """Successive halving over ``paper-table7``'s candidates: screen all with one model on a
    validation subset, then score the ``keep`` best with the paper's full procedure.

    Sees: the training split (candidates) and the validation split (screening and scoring), like
    ``paper-table7``; never the test split.
    """

    sees = "train + validation"
    keep: int = 10
    screen_every: int = 100
    screen_images: int = 2000

    def screen(self, ctx: SelectionContext, sets: np.ndarray) -> np.ndarray:
        """Each candidate's screen score: the best accuracy (%) of its first model on the subset."""
        val_y = ctx.val.y.detach().cpu().numpy()
        m = min(self.screen_images, len(val_y))
        rows = np.sort(stratified_subset(val_y, np.arange(len(val_y)), m, numpy_generator(ctx.seed, "base-select-screen")))
        t = torch.as_tensor(rows, device=ctx.val.x.device)
        marks = checkpoints(ctx.n_base, self.screen_every, self.steps)
        curves = self.train_curves(ctx, sets, np.arange(len(sets)), marks, 1, ctx.val.x[t], ctx.val.y[t])
        return curves[:, 0, :].max(axis=1)

    def select(self, ctx: SelectionContext) -> Selection:
        sets = candidate_sets(ctx, self.candidates)
        screened = self.screen(ctx, sets)
        kept = np.sort(np.argsort(-screened, kind="stable")[: max(1, min(self.keep, len(sets)))])
        marks = checkpoints(ctx.n_base, self.every, self.steps)
        curves = self.train_curves(ctx, sets[kept], kept, marks, self.repeats, ctx.val.x, ctx.val.y)
        best, scores = best_candidate(curves)
        chosen = int(kept[best])
        details = {
            **chosen_record(chosen, scores[best], curves[best], marks, ctx.arch),
            "screen_scores": rounded(screened),
            "kept": [int(j) for j in kept],
            "kept_scores": rounded(scores),
            "random_candidate_kept": bool(0 in kept),
        }
        return Selection(sets[chosen], details)
