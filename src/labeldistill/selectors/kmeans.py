"""``kmeans``: per class, the real image nearest each k-means centre in a learned feature space."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import register_selector
from ._features import sq_distances
from ._geometric import PerClassInFeatures


def kmeans_prototypes(feats: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 50) -> np.ndarray:
    """k-means++ seeding from ``rng``, Lloyd iterations, then the nearest distinct image to each
    centre (largest cluster first)."""
    m = len(feats)
    centres = [int(rng.integers(m))]
    d2 = sq_distances(feats, feats[centres])[:, 0]
    for _ in range(k - 1):
        total = d2.sum()
        nxt = int(rng.choice(m, p=d2 / total)) if total > 0 else int(rng.integers(m))
        centres.append(nxt)
        d2 = np.minimum(d2, sq_distances(feats, feats[[nxt]])[:, 0])
    c = feats[centres].copy()
    assign = np.zeros(m, dtype=np.int64)
    for it in range(iterations):
        new = np.argmin(sq_distances(feats, c), axis=1)
        if it and np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            if np.any(assign == j):
                c[j] = feats[assign == j].mean(0)
    sizes = np.bincount(assign, minlength=k)
    dist = sq_distances(c, feats)
    taken: set[int] = set()
    out = []
    for j in np.argsort(-sizes, kind="stable"):
        for i in np.argsort(dist[j], kind="stable"):
            if int(i) not in taken:
                taken.add(int(i))
                out.append(int(i))
                break
    return np.asarray(out, dtype=np.int64)


@register_selector("kmeans")
@dataclass
class KMeans(PerClassInFeatures):
    """Each class's images are prototypes of its k-means clusters: typical images of the class's
    modes, weighted by how much of the class each mode holds. Sees: the training split only."""

    iterations: int = 50

    def pick(self, feats: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return kmeans_prototypes(feats, k, rng, self.iterations)
