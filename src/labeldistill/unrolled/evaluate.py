"""Test a DD / SLDD set: train fresh networks by its schedule, many at once, and score them.

DD's test protocol: 200 fresh Xavier-initialised networks, each trained by exactly the
schedule's steps (plain SGD, no momentum), tested on the full test set; mean and sample std.
The K networks advance in lockstep (``vmap`` on a GPU, a loop on a CPU: engine/batching.py) and
are scored by the engine's :func:`~labeldistill.engine.accuracy`. Network k's initialisation
comes only from its own seed, so the result does not depend on how the K are grouped. Given a
ledger folder, each finished group of networks is recorded there and an interrupted test trains
only the networks it lacks (200 ConvNet-3s on one CPU core take hours).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..engine import Learner, ModelState, accuracy
from ..engine.batching import map_models, resolve_mode
from ..errors import UserError
from ..runs.ledger import ModelLedger, tensor_sha256
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
    from_ledger: int = 0  # networks read back from a ledger (an interrupted test), not trained by this call

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
                      group: int = 50, gain: float = 1.0, mode: str = "auto", ledger: str | Path | None = None,
                      progress: bool = False) -> ScheduleEvaluation:
    """DD's test: ``models`` fresh networks trained by ``schedule``, scored on (test_x, test_y).

    Args:
        net, images, labels, schedule: as :func:`train_on_schedule`.
        test_x, test_y: the full test split, on the same device.
        models: K (DD: 200).
        seed: the test run's seed; network k's seed is ``evaluation_seeds(seed, K)[k]``.
        group: networks trained at once (bounds memory; the result does not depend on it).
        ledger: a folder for a :class:`~labeldistill.runs.ledger.ModelLedger`: each finished network's accuracy is
            recorded as its group finishes, and networks already there are not trained again (on a CPU, groups of
            at most 10, so an interruption loses little).
        progress: a progress bar over the networks (a CIFAR-10 set's 200 take about an hour of one CPU thread).
    Example:
        >>> ev = evaluate_schedule(net, *dist.distilled(), first_steps(dist.schedule(), 20), data.test.x, data.test.y)
        >>> print(f"{100 * ev.mean:.2f} +- {100 * ev.std:.2f}")
    """
    if models < 1 or group < 1:
        raise UserError(f"models and group must be at least 1, got {models}, {group}.")
    learner = Learner(lambda: net.module)
    seeds = evaluation_seeds(seed, models)
    book = None if ledger is None else ModelLedger(ledger, _ledger_key(net, images, labels, schedule, test_x, test_y, seed, gain),
                                                   prefix="schedule")
    done = {} if book is None else {i: float(r["accuracy"]) for i, r in book.done().items() if i < models}
    todo = [i for i in range(models) if i not in done]
    if book is not None and resolve_mode(mode, images.device) == "loop":
        group = min(group, 10)
    with tqdm(total=models, initial=models - len(todo), disable=not progress or not todo, unit="net", leave=False,
              desc=f"test: {len(todo)} of {models} network(s) to train") as bar:
        for start in range(0, len(todo), group):
            chunk = todo[start : start + group]
            params = train_on_schedule(net, images, labels, schedule, [seeds[i] for i in chunk], gain=gain, mode=mode)
            buffers = {n: b.expand(len(chunk), *b.shape) for n, b in net.buffers.items()}
            for i, a in zip(chunk, accuracy(learner, ModelState(params, buffers, {}), test_x, test_y, mode=mode).tolist()):
                done[i] = float(a)
                if book is not None:
                    book.record(i, seed=seeds[i], accuracy=float(a))
            bar.update(len(chunk))
    return ScheduleEvaluation(tuple(done[i] for i in range(models)), from_ledger=models - len(todo))


def _ledger_key(net: FunctionalNet, images: torch.Tensor, labels: torch.Tensor, schedule: Schedule, test_x: torch.Tensor,
                test_y: torch.Tensor, seed: int, gain: float) -> dict:
    """Everything that decides a test network's accuracy (the number of networks does not)."""
    from ..numerics import NUMERICS_VERSION, float_settings

    return {"model": type(net.module).__name__, "parameters": {n: list(p.shape) for n, p in net.module.named_parameters()},
            "set": tensor_sha256(images, labels), "test": tensor_sha256(test_x, test_y), "steps": [list(s) for s in schedule.steps],
            "lrs": list(schedule.lrs), "seed": int(seed), "gain": float(gain), "device": images.device.type,
            "numerics_version": NUMERICS_VERSION, "float_settings": float_settings()}


# -- a saved DD / SLDD set, tested its own way or by one of the paper's variants ------------
def schedule_labels(ds) -> torch.Tensor:
    """The labels a schedule trains with: DD's fixed one-hot rows as class indices (the plain
    cross-entropy DD trains with), SLDD's learned label vectors as they are."""
    if ds.learned != "images":
        return ds.labels
    idx = ds.labels.argmax(1)
    if not torch.equal(torch.nn.functional.one_hot(idx, ds.num_classes).to(ds.labels.dtype), ds.labels):
        raise UserError("The set learned only images, but its labels are not one-hot rows.")
    return idx


def test_arch(ds, arch: str | None) -> str:
    """The architecture to test ``ds`` on (default: the one it was distilled with), checked
    against the set's image size (Table 15 tests an AlexCifarNet set on LeNet: both take 32 px)."""
    from ..models import MODELS, input_size_for

    arch = MODELS.canonical(arch or ds.recipe.get("arch", "lenet"))
    size = int(ds.images.shape[-1])
    need = input_size_for(arch, size)
    if need is not None and need != size:
        raise UserError(f"{arch} needs {need}-pixel images; this set's images are {size} px.")
    return arch


def evaluate_set(ds, data, *, variant: str | None = None, arch: str | None = None, models: int = 200, seed: int = 0,
                 group: int = 50, steps: int | None = None, ledger: str | Path | None = None, progress: bool = False) -> dict:
    """Test a DD / SLDD set (:class:`~labeldistill.DistilledSet` with a schedule) on ``data``'s test split.

    Args:
        ds: the set, on the device of ``data``'s tensors.
        data: the target (``TargetData``): its test split scores, its validation split chooses
            the steps of ``like-ld``.
        variant: ``learned`` (default: DD's own test: the schedule's steps, lrs and order, plain
            SGD), ``first-steps:N``, ``extended:K``, ``average-lr``, ``shuffle-within``,
            ``shuffle-across`` (Tables 10-12), ``shuffle-steps-within`` / ``shuffle-steps-across`` (whole
            steps permuted: a milder reading of Table 12), or ``like-ld`` (trained as a label set is: Adam lr
            1e-3, random minibatches of 10, T chosen on validation from the baselines' step grid).
        arch: test architecture (default: the distilling one; Table 15).
        models: K test networks; network k's initialisation depends only on (seed, k).
        steps: ``like-ld`` only: train for this T instead of choosing it on validation.
        ledger: the schedule variants: a folder where each finished network is recorded, so an interrupted
            test resumes (:func:`evaluate_schedule`).
        progress: a progress bar over the schedule variants' networks.
    Returns:
        accuracy_mean / accuracy_std (%, sample std over the K for the schedule variants as DD
        reports; the engine's population std for ``like-ld``), accuracies, models, steps,
        seconds, variant, arch, and per variant the schedule's lrs or the chosen T.
    """
    import time

    from .schedule import apply_variant, from_file_schedule, parse_variant, variant_name

    if ds.schedule is None:
        raise UserError("This set has no step schedule (a label set): --variant applies only to DD / SLDD sets.")
    name, arg = parse_variant(variant)
    if steps is not None and name != "like-ld":
        raise UserError("--steps applies to DD / SLDD sets only with --variant like-ld; use first-steps:N or extended:K.")
    arch = test_arch(ds, arch)
    size, channels = int(ds.images.shape[-1]), int(ds.images.shape[1])
    test = data.test
    t0 = time.perf_counter()
    out: dict = {"variant": variant_name(name, arg), "arch": arch}
    if name == "like-ld":
        out.update(_like_ld(ds, data, arch, models=models, seed=seed, steps=steps))
    else:
        schedule = apply_variant(from_file_schedule(ds.schedule), name, arg, seed)
        net = FunctionalNet.from_arch(arch, channels, size, ds.num_classes, device=ds.images.device)
        ev = evaluate_schedule(net, ds.images, schedule_labels(ds), schedule, test.x, test.y, models=models, seed=seed,
                               group=group, ledger=ledger, gain=float(ds.recipe.get("init_gain", 1.0)), progress=progress)
        out.update(accuracy_mean=100 * ev.mean, accuracy_std=100 * ev.std, std="sample",
                   accuracies=[round(100 * a, 4) for a in ev.accuracies], models=models, steps=len(schedule),
                   moving_steps=sum(lr > 0 for lr in schedule.lrs), lrs=list(schedule.lrs), optimizer="sgd")
        if ledger is not None:
            out["models_from_ledger"] = ev.from_ledger  # "seconds" below timed only the others
        if schedule.steps != from_file_schedule(ds.schedule).steps:
            out["order"] = [list(s) for s in schedule.steps]
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _like_ld(ds, data, arch: str, *, models: int, seed: int, steps: int | None) -> dict:
    """Train like a label set: the baselines' step choice on validation, then the engine's test."""
    from types import SimpleNamespace

    from ..stepsearch import choose_steps
    from ..engine import evaluate_labels, make_learner

    batch, lr = min(10, len(ds)), 1e-3
    learner = make_learner(arch, int(ds.images.shape[1]), int(ds.images.shape[-1]), ds.num_classes)
    labels = ds.labels.to(ds.images.dtype)
    curve = None
    if steps is None:
        problem = SimpleNamespace(base_x=ds.images, target=data, n_base=len(ds))  # what choose_steps reads
        steps, curve = choose_steps(learner, problem, labels, seed=seed, lr=lr, batch=batch)
    ev = evaluate_labels(learner, ds.images, labels, data.test.x, data.test.y, steps=int(steps), models=models, seed=seed,
                         batch_size=batch, lr=lr)
    out = {**ev.to_dict(), "std": "population", "optimizer": "adam", "lr": lr, "batch_size": batch, "head": "linear"}
    out["validation_curve"] = None if curve is None else {str(k): round(v, 4) for k, v in curve.items()}
    return out
