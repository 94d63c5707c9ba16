"""Label selection on the validation split (early stopping for the labels).

After every ``val_every`` epochs the loop snapshots the labels and the current T. ``models``
fresh models per snapshot (``validation_models``, default 1 as in the paper) are trained for
T steps and measured on the validation split; the labels (and T) with the lowest mean
validation error so far are kept, ties going to the later snapshot. Selection never feeds
back into the loop, so the validation models of several snapshots are trained together, at
once, with the engine. Model j of snapshot k has a seed that depends only on (run seed, k, j)
-- model 0 keeps the one-model protocol's seed ``derive_seed(seed, "validation-models", k)``,
so ``models=1`` is exactly the paper's selection -- and grouping never changes a result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..engine import Learner, accuracy, train_models
from ..seeding import derive_seed


@dataclass
class Snapshot:
    number: int  # 0, 1, 2, ... in the order taken
    epoch: int
    step: int
    steps_t: int  # T at the time of the snapshot
    labels: torch.Tensor


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

    def add(self, epoch: int, step: int, steps_t: int, labels: torch.Tensor) -> None:
        self.pending.append(Snapshot(self.taken, epoch, step, steps_t, labels.detach().clone()))
        self.taken += 1

    def flush(self, learner: Learner, base_x: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, *, batch_size: int, lr: float) -> list[dict]:
        """Validate every pending snapshot at once; returns their records (in order)."""
        if not self.pending:
            return []
        snaps, self.pending = self.pending, []
        m = self.models
        # Model j of snapshot i is row i * m + j.
        seeds = [validation_seed(self.seed, s.number, j) for s in snaps for j in range(m)]
        labels = torch.stack([s.labels for s in snaps for _ in range(m)])
        steps = [s.steps_t for s in snaps for _ in range(m)]
        state = train_models(learner, base_x, labels, steps, seeds, batch_size=batch_size, lr=lr)
        acc = accuracy(learner, state, val_x, val_y).cpu().tolist()
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
        snap = lambda s: None if s is None else {"number": s.number, "epoch": s.epoch, "step": s.step, "steps_t": s.steps_t, "labels": s.labels}  # noqa: E731
        return {"seed": self.seed, "models": self.models, "pending": [snap(s) for s in self.pending], "taken": self.taken,
                "best_error": None if self.best is None else self.best_error, "best": snap(self.best), "history": self.history}

    @classmethod
    def from_state(cls, d: dict, device: str | torch.device) -> LabelSelector:
        """Restore a selector; checkpoints from before ``validation_models`` had one model."""
        snap = lambda s: None if s is None else Snapshot(s["number"], s["epoch"], s["step"], s["steps_t"], s["labels"].to(device))  # noqa: E731
        return cls(seed=d["seed"], pending=[snap(s) for s in d["pending"]], taken=d["taken"],
                   best_error=float("inf") if d["best_error"] is None else d["best_error"], best=snap(d["best"]), history=list(d["history"]),
                   models=int(d.get("models", 1)))


# -- the run directory's record of every validated snapshot ------------------------------
SNAPSHOT_DIR = "snapshots"


def save_snapshot(run_dir: str | Path, snap: Snapshot) -> Path:
    """Write one validated snapshot (labels, T, epoch, step) to ``RUN_DIR/snapshots/NNNN.safetensors``.

    Selection never feeds back into the loop, so these files are all it takes to ask later
    which snapshot another selection rule (e.g. more validation models) would have picked."""
    from ..runs import save_state

    path = Path(run_dir) / SNAPSHOT_DIR / f"{snap.number:04d}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_state(path, {"number": snap.number, "epoch": snap.epoch, "step": snap.step, "steps_t": snap.steps_t, "labels": snap.labels})
    return path


def load_snapshots(run_dir: str | Path, device: str | torch.device = "cpu") -> list[Snapshot]:
    """Every snapshot a run validated, in the order taken."""
    from ..runs import load_state

    out = []
    for path in sorted((Path(run_dir) / SNAPSHOT_DIR).glob("*.safetensors")):
        d = load_state(path)
        out.append(Snapshot(int(d["number"]), int(d["epoch"]), int(d["step"]), int(d["steps_t"]), d["labels"].to(device)))
    return out
