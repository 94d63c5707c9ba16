"""``label-span``: the images whose learned labels could say the most about the target.

The typical-image selectors (``kmeans``, ``herding``) and the coverage one (``kcenter``) choose images
for what they look like; none of them asks what a *learned* label on an image can do. Under a kernel
``k`` (an RBF on a trained model's features) a base set ``B`` with free labels ``Y_B`` predicts a target
image ``x`` as ``k(x, B) A`` for some coefficients ``A`` built from ``Y_B``: whatever labels are learned,
the predictions on a probe set ``X`` lie in the span of the columns ``k(X, b)``, ``b`` in ``B``. So a base
set is good for label learning when that span holds the probe's true labels: this selector chooses,
greedily (orthogonal matching pursuit over kernel columns, within each class's quota), the image whose
column explains most of what the chosen ones leave unexplained of the probe's one-hot labels.
The first picks are a class's typical images; later ones sit where the chosen ones confuse classes.
It only chooses images: the labels themselves are then learned by the run as usual.

Sees: the training split only (a disjoint random probe and candidate pool drawn from it; the feature
model learns from it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.selection import class_quota
from ..seeding import numpy_generator
from ._base import Selection, SelectionContext, Selector, by_class, register_selector
from ._features import sq_distances, train_features


def greedy_label_span(kernel: np.ndarray, targets: np.ndarray, pool_class: np.ndarray, quota: np.ndarray,
                      ridge: float = 1e-6) -> tuple[np.ndarray, list[float]]:
    """Orthogonal matching pursuit of ``targets`` (``M x C``) by the columns of ``kernel`` (``M x P``).

    Each step adds the column ``j`` (of a class ``pool_class[j]`` whose ``quota`` is not yet used) that
    maximises ``|R^T k~_j|^2 / (|k~_j|^2 + ridge * mean|k|^2)``: the share of the residual ``R`` it
    explains, ``k~_j`` being the column with the chosen columns' span projected out. Returns the chosen
    columns in order and the fraction of ``|targets|^2`` still unexplained after each pick.
    """
    k = np.array(kernel, dtype=np.float64, copy=True)  # deflated in place
    r = np.array(targets, dtype=np.float64, copy=True)
    total = float((r * r).sum())
    eps = ridge * float((k * k).sum(0).mean())
    left = np.asarray(quota, dtype=np.int64).copy()
    free = np.ones(k.shape[1], dtype=bool)
    chosen: list[int] = []
    unexplained: list[float] = []
    for _ in range(int(left.sum())):
        norms = (k * k).sum(0)
        score = ((r.T @ k) ** 2).sum(0) / (norms + eps)
        score[~(free & (left[pool_class] > 0))] = -np.inf
        j = int(np.argmax(score))
        q = k[:, j] / np.sqrt(norms[j] + eps)
        r -= np.outer(q, q @ r)
        k -= np.outer(q, q @ k)
        free[j] = False
        left[pool_class[j]] -= 1
        chosen.append(j)
        unexplained.append(float((r * r).sum()) / total)
    return np.asarray(chosen, dtype=np.int64), unexplained


@register_selector("label-span")
@dataclass
class LabelSpan(Selector):
    """Greedy choice of the images whose kernel columns best span the target's labels (module doc).

    Settings: ``probe`` training images whose labels are to be spanned; ``pool_per_class`` candidates
    per class (drawn at random; the rest of the split is not scored, to keep the kernel matrix small);
    the RBF's width is the median squared distance between probe and pool features (a scale-free choice).
    """

    sees = "train"
    probe: int = 5000
    pool_per_class: int = 1000
    feature_steps: int = 2000  # the feature model: as the geometric selectors' (``_geometric.py``)
    feature_batch: int = 256
    feature_lr: float = 1e-3

    def select(self, ctx: SelectionContext) -> Selection:
        labels = ctx.labels
        rng = numpy_generator(ctx.seed, f"base-select:{self.name}")
        quota = class_quota(labels, ctx.n_base, num_classes=ctx.num_classes, generator=rng)
        feats = train_features(ctx, steps=self.feature_steps, batch_size=self.feature_batch, lr=self.feature_lr, key=self.name)
        order = rng.permutation(len(labels))
        probe = np.sort(order[: min(self.probe, len(labels) // 2)])
        rest = order[len(probe):]
        pool = np.concatenate([rest[labels[rest] == c][: max(self.pool_per_class, int(quota[c]))] for c in range(ctx.num_classes)])
        if np.any(np.bincount(labels[pool], minlength=ctx.num_classes) < quota):
            pool = rest  # a class too small for its quota outside the probe: score all of its images
        d2 = sq_distances(feats[probe], feats[pool])
        width = float(np.median(d2)) or 1.0
        kernel = np.exp(-d2 / width)
        kernel -= kernel.mean(0, keepdims=True)  # centred columns and targets: the labels' mean is free
        targets = np.eye(ctx.num_classes)[labels[probe]]
        targets -= targets.mean(0, keepdims=True)
        chosen, unexplained = greedy_label_span(kernel, targets, labels[pool], quota)
        return Selection(by_class(pool[chosen], labels),  # each class's images in the order chosen
                         {"feature_dim": int(feats.shape[1]), "arch": ctx.arch, "probe": int(len(probe)),
                          "pool": int(len(pool)), "rbf_width": width, "unexplained": [round(u, 6) for u in unexplained]})
