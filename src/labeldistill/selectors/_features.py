"""A feature space for the geometric selectors: the penultimate layer of one model trained with
true labels on the target's training split (the target's default architecture, standard head)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..engine import make_learner, model_seeds, to_modules
from ..seeding import torch_generator
from ._base import SelectionContext


def train_features(ctx: SelectionContext, *, steps: int, batch_size: int, lr: float, key: str, chunk: int = 1024) -> np.ndarray:
    """float64 ``len(train) x F`` features of the training split under a model trained on it.

    One model, Adam, ``steps`` minibatches of ``batch_size`` drawn as shuffled passes over the
    split (stream ``(seed, "base-select:<key>")``; initialisation from the same seed's
    ``base-select-features`` model seed). Sees: the training split (images and labels) only.
    """
    x, y = ctx.train.x, ctx.train.y
    n = len(y)
    learner = make_learner(ctx.arch, int(x.shape[1]), int(x.shape[-1]), ctx.num_classes)
    seeds = model_seeds(ctx.seed, "base-select-features", 1)
    state = learner.init(seeds, device=x.device)
    opt = learner.optimizer(state, lr)
    g = torch_generator(ctx.seed, f"base-select:{key}")
    onehot = F.one_hot(y, ctx.num_classes).to(x.dtype)
    batch = min(batch_size, n)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch:
            order = torch.cat([order, torch.randperm(n, generator=g)])
        b, order = order[:batch].to(x.device), order[batch:]
        loss, _ = learner.train_loss(*learner.single(state), x[b], onehot[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    # Batch-norm models are exported with the statistics of (up to) 2,048 training images.
    state.reference = x[torch.randperm(n, generator=g)[: min(n, 2048)].to(x.device)]
    [module] = to_modules(learner, state, seeds)
    module.eval()
    with torch.no_grad():
        feats = torch.cat([module.features(x[i : i + chunk]).flatten(1) for i in range(0, n, chunk)])
    return feats.double().cpu().numpy()


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, ``len(a) x len(b)`` (float64, clipped at 0)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)
