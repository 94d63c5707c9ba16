"""Shared shape of the per-class selectors that work in a learned feature space."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.selection import class_quota
from ..seeding import numpy_generator
from ._base import Selection, SelectionContext, Selector
from ._features import train_features


@dataclass
class PerClassInFeatures(Selector):
    """Train the feature model, split the class quota (``n // C`` each, the remainder to random
    classes), then let :meth:`pick` choose each class's images from its features.

    Sees: the training split only (images and labels; the feature model learns from it).
    """

    sees = "train"
    feature_steps: int = 2000  # Adam steps of the feature model (about 5 passes over MNIST's 50,000 at 256)
    feature_batch: int = 256
    feature_lr: float = 1e-3

    def pick(self, feats: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` distinct rows of one class's ``feats`` (positions within the class)."""
        raise NotImplementedError

    def select(self, ctx: SelectionContext) -> Selection:
        labels = ctx.labels
        rng = numpy_generator(ctx.seed, f"base-select:{self.name}")
        quota = class_quota(labels, ctx.n_base, num_classes=ctx.num_classes, generator=rng)
        feats = train_features(ctx, steps=self.feature_steps, batch_size=self.feature_batch, lr=self.feature_lr, key=self.name)
        chosen = []
        for c in range(ctx.num_classes):
            members = np.flatnonzero(labels == c)
            if quota[c]:
                chosen.append(members[self.pick(feats[members], int(quota[c]), rng)])
        return Selection(np.concatenate(chosen).astype(np.int64), {"feature_dim": int(feats.shape[1]), "arch": ctx.arch})
