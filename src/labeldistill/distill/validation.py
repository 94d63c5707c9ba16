"""Label selection on the validation split (early stopping for the labels).

After every ``val_every`` epochs the loop snapshots the labels and the current T. ``models``
fresh models per snapshot (``validation_models``, default 1 as in the paper) are trained for
T steps and measured on the validation split; the labels (and T) with the lowest mean
validation error so far are kept, ties going to the later snapshot. Selection never feeds
back into the loop, so the validation models of several snapshots are trained together, at
once, with the engine. Model j of snapshot k has a seed that depends only on (run seed, k, j)
-- model 0 keeps the one-model protocol's seed ``derive_seed(seed, "validation-models", k)``,
so ``models=1`` is exactly the paper's selection -- and grouping never changes a result.

When images are learned, a snapshot also holds its images (normalised, as models see them)
and its validation models train on those instead of the base images. The engine trains K
models on one shared image set, so such snapshots are validated one at a time (M models
each); a model's result depends only on its seed and its data, so this changes no result.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data.tensors import same_examples
from ..engine import Learner, accuracy, group_key, train_groups, train_models
from ..seeding import derive_seed

if TYPE_CHECKING:
    from ..protocols import ZCA, Protocol


@dataclass
class Snapshot:
    number: int  # 0, 1, 2, ... in the order taken
    epoch: int
    step: int
    steps_t: int  # T at the time of the snapshot
    labels: torch.Tensor
    images: torch.Tensor | None = None  # learned images (normalised); None: the run's fixed base images


def validation_seed(run_seed: int, number: int, model: int = 0) -> int:
    """The seed of validation model ``model`` of snapshot ``number``.

    Model 0 has the one-model protocol's seed (unchanged from before ``validation_models``);
    models 1, 2, ... take a sub-key, so adding models never changes model 0. (NumPy's
    SeedSequence ignores trailing zero words, so the sub-key 0 would give the same seed; the
    branch says so explicitly.)
    """
    if model == 0:
        return derive_seed(run_seed, "validation-models", number)
    return derive_seed(run_seed, "validation-models", number, model)


def snapshot_accuracies(learner: Learner, base_x: torch.Tensor, snaps: list[Snapshot], models: int, seed: int,
                        val_x: torch.Tensor, val_y: torch.Tensor, *, batch_size: int, lr: float) -> torch.Tensor:
    """Validation accuracy (fraction) of model j of each snapshot, flat: row ``i * models + j``.

    Snapshots of fixed base images are trained together in one engine call (labels stacked per
    model); snapshots with their own images one call each, since the engine shares one image set.
    """
    def train(group: list[Snapshot], images: torch.Tensor) -> torch.Tensor:
        seeds = [validation_seed(seed, s.number, j) for s in group for j in range(models)]
        labels = torch.stack([s.labels for s in group for _ in range(models)])
        steps = [s.steps_t for s in group for _ in range(models)]
        state = train_models(learner, images, labels, steps, seeds, batch_size=batch_size, lr=lr)
        return accuracy(learner, state, val_x, val_y)

    if all(s.images is None for s in snaps):
        return train(snaps, base_x)
    return torch.cat([train([s], base_x if s.images is None else s.images) for s in snaps])


Score = Callable[[list[Snapshot], int], torch.Tensor]  # (snapshots, models) -> accuracies (fractions), flat as above


@dataclass
class ValidationScore:
    """What every way of scoring snapshots holds: the models it trains (``learner``), the images, the validation split,
    the run's seed and the training settings a snapshot's models use."""

    learner: Learner
    base_x: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    seed: int
    batch_size: int
    lr: float

    def __call__(self, snaps: list[Snapshot], models: int) -> torch.Tensor:  # a :data:`Score`
        raise NotImplementedError


@dataclass
class PaperScore(ValidationScore):
    """The paper's selection (the default): ``models`` fresh models of the loop's own architecture and head per
    snapshot, each trained the snapshot's T steps as a test model is (:func:`snapshot_accuracies`)."""

    def __call__(self, snaps: list[Snapshot], models: int) -> torch.Tensor:
        return snapshot_accuracies(self.learner, self.base_x, snaps, models, self.seed, self.val_x, self.val_y,
                                   batch_size=self.batch_size, lr=self.lr)


def score_together(scores: list[Score], groups: list[list[Snapshot]], models: list[int]) -> list[torch.Tensor]:
    """``[scores[i](groups[i], models[i]) for i ...]``, with the runs whose scoring can share one engine call trained
    together (the runs of a stack, :mod:`.stack`: one call of every run's validation models, each on its run's base
    images, instead of one call per run).

    Runs share a call when each is a :class:`PaperScore` with the same architecture, head and settings, the same
    validation split, and snapshots of fixed base images; any other run is scored alone. A model's result depends
    only on its seed, its images and its labels, so this changes no result (on a CPU bit for bit; on a GPU up to the
    rounding of larger batched kernels).
    """
    out: list[torch.Tensor | None] = [None] * len(scores)
    shared: dict[tuple, list[int]] = {}
    for i, (sc, snaps) in enumerate(zip(scores, groups)):
        if type(sc) is PaperScore and snaps and all(s.images is None for s in snaps):
            shared.setdefault(_sharing_key(sc), []).append(i)
        else:
            out[i] = sc(snaps, models[i]) if snaps else torch.zeros(0, dtype=torch.float64)
    for members in shared.values():
        members = _same_validation_split(scores, members, out, groups, models)
        if len(members) == 1:  # alone: its own call, on its shared images
            out[members[0]] = scores[members[0]](groups[members[0]], models[members[0]])
            continue
        first: PaperScore = scores[members[0]]  # type: ignore[assignment]
        parts = [(scores[i].base_x, [s.labels for s in groups[i] for _ in range(models[i])],  # type: ignore[attr-defined]
                  [s.steps_t for s in groups[i] for _ in range(models[i])],
                  [validation_seed(scores[i].seed, s.number, j) for s in groups[i] for j in range(models[i])])  # type: ignore[attr-defined]
                 for i in members]
        state = train_groups(first.learner, parts, batch_size=first.batch_size, lr=first.lr)
        acc = accuracy(first.learner, state, first.val_x, first.val_y)
        for i, part in zip(members, acc.split([len(p[3]) for p in parts])):
            out[i] = part
    return out  # type: ignore[return-value]


def _sharing_key(sc: PaperScore) -> tuple:
    return (group_key(sc.learner, sc.base_x, sc.batch_size, sc.lr), tuple(sc.val_x.shape))


def _same_validation_split(scores, members, out, groups, models) -> list[int]:
    """The members whose validation split equals the first's (scored together); the others are scored alone."""
    ref = scores[members[0]]
    keep = [members[0]]
    for i in members[1:]:
        sc = scores[i]
        if same_examples(sc.val_x, sc.val_y, ref.val_x, ref.val_y):
            keep.append(i)
        else:
            out[i] = sc(groups[i], models[i])
    return keep


@dataclass
class ProtocolScore(ValidationScore):
    """Selection under a fixed-epoch protocol (``select_protocol``): ``models`` students of ``protocol`` per snapshot
    (``learner``: its architecture, linear head), trained as its test trains them (``zca``: its whitening), measured on
    the validation split. Snapshot k's students take the seeds of ``evaluate_protocol(seed=validation_seed(seed, k),
    purpose="validation-models")``, so they depend on the snapshot's number alone, never on the grouping; ``ledger``
    keeps each finished student, so a run stopped during a validation resumes student by student."""

    protocol: Protocol = field(kw_only=True)
    zca: ZCA | None = field(default=None, kw_only=True)
    ledger: Path | None = field(default=None, kw_only=True)
    # a bar over each snapshot's students (a dc-dsa validation is minutes of a CPU's time)
    progress: bool = field(default=False, kw_only=True)

    def labels(self, labels: torch.Tensor, images: torch.Tensor | None, steps: int, *, seed: int, models: int) -> list[float]:
        """Validation accuracies (fractions) of ``models`` students trained on (images or the base images, labels)."""
        from ..protocols import evaluate_protocol

        ev = evaluate_protocol(self.protocol, self.learner, self.base_x if images is None else images, labels, self.val_x, self.val_y,
                               steps=steps, seed=seed, models=models, batch_size=self.batch_size, lr=self.lr, zca=self.zca,
                               purpose="validation-models", ledger=self.ledger, progress=self.progress)
        return [a / 100.0 for a in ev.accuracies]

    def __call__(self, snaps: list[Snapshot], models: int) -> torch.Tensor:
        acc = [a for s in snaps for a in self.labels(s.labels, s.images, s.steps_t, seed=validation_seed(self.seed, s.number), models=models)]
        return torch.tensor(acc, dtype=torch.float64)


@dataclass
class LabelSelector:
    seed: int
    pending: list[Snapshot] = field(default_factory=list)
    taken: int = 0
    best_error: float = float("inf")
    best: Snapshot | None = None
    history: list[dict] = field(default_factory=list)
    models: int = 1  # fresh validation models per snapshot; selection on their mean accuracy

    def __post_init__(self) -> None:
        if int(self.models) < 1:
            raise ValueError(f"validation models must be at least 1 (got {self.models})")
        self.models = int(self.models)

    def add(self, epoch: int, step: int, steps_t: int, labels: torch.Tensor, images: torch.Tensor | None = None) -> None:
        kept = None if images is None else images.detach().clone()
        self.pending.append(Snapshot(self.taken, epoch, step, steps_t, labels.detach().clone(), kept))
        self.taken += 1

    def flush(self, score: Score) -> list[dict]:
        """Validate every pending snapshot at once with ``score`` (:class:`PaperScore`, the paper's; or
        :class:`ProtocolScore`); returns their records (in order)."""
        if not self.pending:
            return []
        snaps, m = self.pending, self.models
        acc = score(snaps, m).cpu().tolist()
        self.pending = []  # after scoring: an interrupted validation leaves its snapshots pending (a checkpoint keeps them)
        records = []
        for i, s in enumerate(snaps):
            accs = acc[i * m : (i + 1) * m]
            a = math.fsum(accs) / m  # m = 1: exactly the one model's accuracy
            err = 100.0 * (1.0 - a)
            selected = err <= self.best_error
            if selected:
                self.best_error, self.best = err, s
            rec = {"kind": "validation", "epoch": s.epoch, "step": s.step, "T": s.steps_t, "val_accuracy": round(100 * a, 4), "selected": selected}
            if m > 1:  # population std, as the test protocol's accuracy_std
                rec["val_models"] = m
                rec["val_accuracies"] = [round(100 * v, 4) for v in accs]
                rec["val_std"] = round(100 * math.sqrt(math.fsum((v - a) ** 2 for v in accs) / m), 4)
            self.history.append(rec)
            records.append(rec)
        return records

    # -- checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict:
        snap = lambda s: None if s is None else _snapshot_record(s)  # noqa: E731
        return {"seed": self.seed, "models": self.models, "pending": [snap(s) for s in self.pending], "taken": self.taken,
                "best_error": None if self.best is None else self.best_error, "best": snap(self.best), "history": self.history}

    @classmethod
    def from_state(cls, d: dict, device: str | torch.device) -> LabelSelector:
        """Restore a selector; checkpoints from before ``validation_models`` had one model."""
        snap = lambda s: None if s is None else _snapshot_from(s, device)  # noqa: E731
        return cls(seed=d["seed"], pending=[snap(s) for s in d["pending"]], taken=d["taken"],
                   best_error=float("inf") if d["best_error"] is None else d["best_error"], best=snap(d["best"]), history=list(d["history"]),
                   models=int(d.get("models", 1)))


# -- the run directory's record of every validated snapshot ------------------------------
SNAPSHOT_DIR = "snapshots"


def _snapshot_record(s: Snapshot) -> dict:
    rec = {"number": s.number, "epoch": s.epoch, "step": s.step, "steps_t": s.steps_t, "labels": s.labels}
    if s.images is not None:  # label-only snapshots keep their earlier layout
        rec["images"] = s.images
    return rec


def _snapshot_from(d: dict, device: str | torch.device) -> Snapshot:
    images = d.get("images")
    return Snapshot(int(d["number"]), int(d["epoch"]), int(d["step"]), int(d["steps_t"]), d["labels"].to(device),
                    None if images is None else images.to(device))


def save_snapshot(run_dir: str | Path, snap: Snapshot) -> Path:
    """Write one validated snapshot (labels, learned images if any, T, epoch, step) to ``RUN_DIR/snapshots/NNNN.safetensors``.

    Selection never feeds back into the loop, so these files are all it takes to ask later
    which snapshot another selection rule (e.g. more validation models) would have picked."""
    from ..runs import save_state

    path = Path(run_dir) / SNAPSHOT_DIR / f"{snap.number:04d}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_state(path, _snapshot_record(snap))
    return path


def load_snapshots(run_dir: str | Path, device: str | torch.device = "cpu") -> list[Snapshot]:
    """Every snapshot a run validated, in the order taken."""
    from ..runs import load_state

    out = []
    for path in sorted((Path(run_dir) / SNAPSHOT_DIR).glob("*.safetensors")):
        out.append(_snapshot_from(load_state(path), device))
    return out


def pick_snapshot(run_dir: str | Path, which: str | int, device: str | torch.device = "cpu") -> tuple[Snapshot, dict]:
    """A run's validated snapshot ``which`` (its number, or ``"best-learned"``: the one the loop's rule selected among
    the learned snapshots, the start candidate left out) and its validation record. ``evaluate --snapshot`` tests it:
    what the loop learned when a start candidate won, or any point of its trajectory."""
    import json

    from ..errors import UserError
    from ..runs.metrics import metrics_path, read_metrics_lines

    run_dir = Path(run_dir)
    snaps = load_snapshots(run_dir, device)
    log = metrics_path(run_dir)
    if not snaps or log is None:
        raise UserError(f"{run_dir} has no kept snapshots (snapshots/) and validation log to pick from.")
    records = [r for r in (json.loads(line) for line in read_metrics_lines(log) if '"validation"' in line) if r.get("kind") == "validation"]
    if str(which) == "best-learned":
        # The loop marked each record that became its choice (its own rule on unrounded means): the last such one.
        k = max(i for i, r in enumerate(records) if r["selected"])
    else:
        try:
            k = int(which)
        except ValueError:
            raise UserError(f"--snapshot takes a snapshot number (0 to {len(snaps) - 1}) or best-learned, got {which!r}.") from None
        if not 0 <= k < min(len(snaps), len(records)):
            raise UserError(f"{run_dir} has snapshots 0 to {min(len(snaps), len(records)) - 1}; --snapshot {k} is not one of them.")
    snap, rec = snaps[k], records[k]
    if snap.number != k or snap.epoch != rec["epoch"] or snap.steps_t != rec["T"]:
        raise UserError(f"{run_dir}: snapshot {k} does not match validation record {k} of its log (a damaged run directory).")
    return snap, rec
