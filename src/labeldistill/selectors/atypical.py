"""``atypical``: per class, a random draw from the images far from the class's mean feature, outliers left out."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import register_selector
from ._features import sq_distances
from ._geometric import PerClassInFeatures


def band(feats: np.ndarray, low: float, high: float) -> np.ndarray:
    """Positions of the rows whose distance to the mean of ``feats`` ranks in the quantile band [low, high)
    (nearest first; at least one row)."""
    order = np.argsort(sq_distances(feats, feats.mean(0, keepdims=True))[:, 0], kind="stable")
    a = min(int(low * len(order)), len(order) - 1)
    return order[a: max(a + 1, int(high * len(order)))]


@register_selector("atypical")
@dataclass
class Atypical(PerClassInFeatures):
    """Each class's images drawn at random from the band of its images between the ``low`` and
    ``high`` quantiles of distance to the class's mean feature: the spread of the class without its
    typical half and without its farthest outliers. Sees: the training split only."""

    low: float = 0.5
    high: float = 0.98

    def pick(self, feats: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        pool = band(feats, self.low, self.high)
        if len(pool) < k:  # a tiny class: widen to all its images
            pool = np.arange(len(feats))
        return np.sort(rng.choice(pool, size=k, replace=False))
