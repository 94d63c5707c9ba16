"""``kcenter``: per class, greedy k-center (farthest-point) coverage in a learned feature space."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import register_selector
from ._features import sq_distances
from ._geometric import PerClassInFeatures


def greedy_k_center(feats: np.ndarray, k: int) -> np.ndarray:
    """Start at the image nearest the class mean, then repeatedly add the image farthest from
    those chosen (Gonzalez's 2-approximation of the k-center problem). Deterministic."""
    first = int(np.argmin(sq_distances(feats, feats.mean(0, keepdims=True))[:, 0]))
    chosen = [first]
    nearest = sq_distances(feats, feats[[first]])[:, 0]
    for _ in range(k - 1):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, sq_distances(feats, feats[[nxt]])[:, 0])
    return np.asarray(chosen, dtype=np.int64)


@register_selector("kcenter")
@dataclass
class KCenter(PerClassInFeatures):
    """Each class's images chosen so that every training image of the class lies close to one of
    them (coverage of the class, outliers included). Sees: the training split only."""

    def pick(self, feats: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return greedy_k_center(feats, k)
