"""Test a DD / SLDD set: train fresh networks by its schedule, many at once, and score them.

DD's test protocol: 200 fresh Xavier-initialised networks, each trained by exactly the
schedule's steps (plain SGD, no momentum), tested on the full test set; mean and sample std.
The K networks advance in lockstep (``vmap`` on a GPU, a loop on a CPU: engine/batching.py) and
are scored by the engine's :func:`~labeldistill.engine.accuracy`. Network k's initialisation
comes only from its own seed, so the result does not depend on how the K are grouped.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..engine import Learner, ModelState, accuracy
from ..engine.batching import map_models, resolve_mode
from ..errors import UserError
from ..seeding import derive_seed
from .network import FunctionalNet, Params, inner_loss
from .schedule import Schedule


def _stack(dicts: Sequence[Params]) -> Params:
    return {n: torch.stack([d[n] for d in dicts]) for n in dicts[0]}


def train_on_schedule(net: FunctionalNet, images: torch.Tensor, labels: torch.Tensor, schedule: Schedule,
                      seeds: Sequence[int], *, gain: float = 1.0, mode: str = "auto") -> Params:
    """Train ``len(seeds)`` fresh networks by ``schedule``; returns their stacked parameters (K x ...).

    Args:
        net: the architecture (may differ from the one the set was distilled with, Table 15).
        images: the flat distilled images (``UnrolledDistiller.distilled()``), on the device.
        labels: their class indices (DD) or label vectors (SLDD).
        schedule: which images and lr at each step; lr-0 steps are skipped (they change nothing).
        seeds: network k starts from Xavier-normal weights drawn from a generator seeded ``seeds[k]``.
    """
    if not len(seeds):
        raise UserError("train_on_schedule needs at least one seed.")
    if schedule.steps and max(max(s) for s in schedule.steps) >= images.shape[0]:
        raise UserError(f"The schedule uses image indices beyond the {images.shape[0]} distilled images.")
    device = images.device

    def fresh(seed: int) -> Params:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        return net.init(g, gain)

    params = _stack([fresh(s) for s in seeds])
    index = schedule.index(device)
    step_loss = map_models(lambda p, x, y: inner_loss(net(p, x), y), (0, None, None), resolve_mode(mode, device))
    for t, lr in enumerate(schedule.lrs):
        if lr == 0.0:
            continue
        leaves = {n: p.requires_grad_() for n, p in params.items()}
        losses = step_loss(leaves, images[index[t]], labels[index[t]])
        # The K losses are independent, so the gradient of their sum is each network's own gradient.
        grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
        with torch.no_grad():
            params = {n: p - lr * g for (n, p), g in zip(leaves.items(), grads)}
    return {n: p.detach() for n, p in params.items()}


@dataclass(frozen=True)
class ScheduleEvaluation:
    """Test accuracy of K networks trained by a schedule (fractions in [0, 1])."""

    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def std(self) -> float:
        """Sample standard deviation (0 for one network), as the reference reports."""
        k = len(self.accuracies)
        if k < 2:
            return 0.0
        m = self.mean
        return (sum((a - m) ** 2 for a in self.accuracies) / (k - 1)) ** 0.5


def evaluation_seeds(seed: int, models: int) -> list[int]:
    """The initialisation seeds of the K test networks of a run (independent of grouping)."""
    return [derive_seed(seed, "unrolled-test-models", k) for k in range(models)]


def evaluate_schedule(net: FunctionalNet, images: torch.Tensor, labels: torch.Tensor, schedule: Schedule,
                      test_x: torch.Tensor, test_y: torch.Tensor, *, models: int = 200, seed: int = 0,
                      group: int = 50, gain: float = 1.0, mode: str = "auto") -> ScheduleEvaluation:
    """DD's test: ``models`` fresh networks trained by ``schedule``, scored on (test_x, test_y).

    Args:
        net, images, labels, schedule: as :func:`train_on_schedule`.
        test_x, test_y: the full test split, on the same device.
        models: K (DD: 200).
        seed: the test run's seed; network k's seed is ``evaluation_seeds(seed, K)[k]``.
        group: networks trained at once (bounds memory; the result does not depend on it).
    Example:
        >>> ev = evaluate_schedule(net, *dist.distilled(), first_steps(dist.schedule(), 20), data.test.x, data.test.y)
        >>> print(f"{100 * ev.mean:.2f} +- {100 * ev.std:.2f}")
    """
    if models < 1 or group < 1:
        raise UserError(f"models and group must be at least 1, got {models}, {group}.")
    learner = Learner(lambda: net.module)
    seeds = evaluation_seeds(seed, models)
    accs: list[float] = []
    for start in range(0, models, group):
        chunk = seeds[start : start + group]
        params = train_on_schedule(net, images, labels, schedule, chunk, gain=gain, mode=mode)
        buffers = {n: b.expand(len(chunk), *b.shape) for n, b in net.buffers.items()}
        accs += accuracy(learner, ModelState(params, buffers, {}), test_x, test_y, mode=mode).tolist()
    return ScheduleEvaluation(tuple(accs))
