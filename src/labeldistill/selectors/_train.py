"""Train many models at once when each trains on its own image set (candidate base sets).

The engine's :func:`~labeldistill.engine.train_models` takes one image tensor shared by all K
models (and one label set per model). Candidate sets differ in their images, so this module
passes the engine the one per-model input it has, the labels: each model's K x N x (C + 1)
labels carry the training-split position of its n-th image in the last column, and a learner
wrapper turns that column back into the image (``pool[position]``) inside the per-model loss.
The engine's minibatches, initialisation and optimiser are untouched, so model k trains
exactly as ``train_models`` trains it on its own set's images (tested bit for bit).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..engine import Learner, ModelState, accuracy, train_models
from ..errors import UserError

_EXACT = 2**24  # float32 holds every integer position below this exactly


class _OwnImages:
    """A :class:`Learner` whose per-model loss reads its images from ``pool`` at the positions in the labels' last column."""

    def __init__(self, learner: Learner, pool: torch.Tensor) -> None:
        self._learner, self._pool = learner, pool

    def __getattr__(self, name: str):
        return getattr(self._learner, name)

    def train_loss(self, params, buffers, head, x, y):
        where = y[:, -1].long()
        return self._learner.train_loss(params, buffers, head, self._pool.index_select(0, where), y[:, :-1])


def train_sets(
    learner: Learner,
    pool: torch.Tensor,
    sets: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    seeds: Sequence[int],
    *,
    batch_size: int,
    lr: float = 1e-3,
    observe_at: Sequence[int] = (),
    observer: Callable[[int, ModelState], None] | None = None,
    mode: str = "auto",
) -> ModelState:
    """Train ``len(seeds)`` fresh models at once, model k on the images ``pool[sets[k]]``.

    Args:
        learner: architecture + head.
        pool: P x C x H x W images (e.g. the training split), on the training device.
        sets: K x N int64 positions in ``pool``: model k's base set.
        labels: K x N x C label distributions (model k's labels of its set).
        steps, seeds, batch_size, lr, observe_at, observer, mode: as for ``train_models``; model
            k's initialisation and minibatches come from ``seeds[k]`` alone.
    Returns:
        The K trained models. Their ``reference`` is not the images (it differs per model): set
        it per model before scoring a batch-norm model (see :func:`set_accuracy`).
    """
    k, n = sets.shape
    if labels.shape[:2] != (k, n) or len(seeds) != k:
        raise ValueError("one set, one label set and one seed per model expected")
    if len(pool) >= _EXACT:
        raise UserError(f"A pool of {len(pool)} images is too large to index through float32 labels (at most {_EXACT - 1}).")
    where = sets.to(device=labels.device, dtype=labels.dtype).unsqueeze(-1)
    tagged = torch.cat([labels, where], dim=-1)
    placeholder = torch.zeros(n, 1, device=pool.device, dtype=pool.dtype)  # only its length matters to the engine
    return train_models(_OwnImages(learner, pool), placeholder, tagged, steps, list(seeds), batch_size=batch_size, lr=lr,
                        observe_at=observe_at, observer=observer, mode=mode)  # type: ignore[arg-type]


@torch.no_grad()
def set_accuracy(learner: Learner, state: ModelState, pool: torch.Tensor, sets: torch.Tensor, x: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
    """Accuracy (a K-vector) of models trained by :func:`train_sets` on (x, y).

    Without batch norm all K models are scored in one call; with batch norm, each group of
    models sharing a set is scored with that set's images as its reference statistics.
    """
    if not learner.has_batch_norm:
        return accuracy(learner, state, x, y)
    out = torch.empty(state.k, device=x.device)
    groups: dict[bytes, list[int]] = {}
    for i, s in enumerate(sets.cpu().numpy()):
        groups.setdefault(s.tobytes(), []).append(i)
    for members in groups.values():
        ix = torch.tensor(members, device=x.device)
        sub = state.select(ix)
        sub.reference = pool[sets[members[0]].to(pool.device)]
        out[ix] = accuracy(learner, sub, x, y)
    return out
