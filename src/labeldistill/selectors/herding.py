"""``herding``: per class, greedy herding of the class's mean feature (Welling 2009; iCaRL's exemplars)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import register_selector
from ._features import sq_distances
from ._geometric import PerClassInFeatures


def herd(feats: np.ndarray, k: int) -> np.ndarray:
    """Add, one at a time, the image that brings the chosen images' mean feature closest to the class mean."""
    mu = feats.mean(0)
    total = np.zeros_like(mu)
    free = np.ones(len(feats), dtype=bool)
    out = []
    for t in range(1, k + 1):
        d = sq_distances((total[None, :] + feats) / t, mu[None, :])[:, 0]
        d[~free] = np.inf
        i = int(np.argmin(d))
        out.append(i)
        free[i] = False
        total += feats[i]
    return np.asarray(out, dtype=np.int64)


@register_selector("herding")
@dataclass
class Herding(PerClassInFeatures):
    """Each class's images chosen so that their mean feature matches the class's mean feature:
    a small set whose average looks like the class. Sees: the training split only."""

    def pick(self, feats: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return herd(feats, k)
