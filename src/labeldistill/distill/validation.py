"""Label selection on the validation split (early stopping for the labels).

After every ``val_every`` epochs the loop snapshots the labels and the current T. One
fresh model per snapshot is trained for T steps and measured on the validation split;
the labels (and T) with the lowest validation error so far are kept, ties going to the
later snapshot. Selection never feeds back into the loop, so the validation models of
several snapshots are trained together, at once, with the engine. Snapshot k's model
seed depends only on (run seed, k), so grouping never changes a result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class LabelSelector:
    seed: int
    pending: list[Snapshot] = field(default_factory=list)
    taken: int = 0
    best_error: float = float("inf")
    best: Snapshot | None = None
    history: list[dict] = field(default_factory=list)

    def add(self, epoch: int, step: int, steps_t: int, labels: torch.Tensor) -> None:
        self.pending.append(Snapshot(self.taken, epoch, step, steps_t, labels.detach().clone()))
        self.taken += 1

    def flush(self, learner: Learner, base_x: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, *, batch_size: int, lr: float) -> list[dict]:
        """Validate every pending snapshot at once; returns their records (in order)."""
        if not self.pending:
            return []
        snaps, self.pending = self.pending, []
        seeds = [derive_seed(self.seed, "validation-models", s.number) for s in snaps]
        labels = torch.stack([s.labels for s in snaps])
        state = train_models(learner, base_x, labels, [s.steps_t for s in snaps], seeds, batch_size=batch_size, lr=lr)
        acc = accuracy(learner, state, val_x, val_y).cpu()
        records = []
        for s, a in zip(snaps, acc.tolist()):
            err = 100.0 * (1.0 - a)
            selected = err <= self.best_error
            if selected:
                self.best_error, self.best = err, s
            rec = {"kind": "validation", "epoch": s.epoch, "step": s.step, "T": s.steps_t, "val_accuracy": round(100 * a, 4), "selected": selected}
            self.history.append(rec)
            records.append(rec)
        return records

    # -- checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict:
        snap = lambda s: None if s is None else {"number": s.number, "epoch": s.epoch, "step": s.step, "steps_t": s.steps_t, "labels": s.labels}  # noqa: E731
        return {"seed": self.seed, "pending": [snap(s) for s in self.pending], "taken": self.taken,
                "best_error": None if self.best is None else self.best_error, "best": snap(self.best), "history": self.history}

    @classmethod
    def from_state(cls, d: dict, device: str | torch.device) -> LabelSelector:
        snap = lambda s: None if s is None else Snapshot(s["number"], s["epoch"], s["step"], s["steps_t"], s["labels"].to(device))  # noqa: E731
        return cls(seed=d["seed"], pending=[snap(s) for s in d["pending"]], taken=d["taken"],
                   best_error=float("inf") if d["best_error"] is None else d["best_error"], best=snap(d["best"]), history=list(d["history"]))
