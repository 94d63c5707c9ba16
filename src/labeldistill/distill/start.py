"""The start labels as a candidate of the label selection (``--start-candidate``).

A run that starts from informative labels (``--label-init teacher`` or ``onehot``) should never end
with labels that do worse on the validation split than the ones it was given: the loop's objective
is not the final test's, and refining a teacher's labels can lose accuracy (MNIST-100, LD RR from
teacher labels at label lr 1e-3: 88.52 against the teacher labels' own 91.65 under the paper's
protocol; docs/results.md). So the start labels are scored once, when the run starts, as the
baselines score a fixed set (:func:`labeldistill.stepsearch.choose_steps`: one fresh model measured on
the validation split at the reference code's checkpoints, T = the earliest best), and at the end
they replace the selected snapshot when their validation accuracy is strictly higher; the run's T is
then theirs. Snapshots are scored one model at their own T each, so the two accuracies are maxima of
noisy measurements alike (the snapshots' over more candidates, which if anything favours them).

``auto`` (the default) turns it on for any start but ``uniform`` (1/C everywhere teaches nothing, and
the paper's runs stay bit for bit as they were); only label-only runs (``--learn labels``) have it.
The candidate is kept in ``RUN_DIR/start.safetensors`` (labels, T, validation curve), so a resumed
run decides as an uninterrupted one does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..engine import Learner
from ..errors import UserError
from ..seeding import derive_seed
from ..stepsearch import choose_steps

from .validation import ProtocolScore, Score

CHOICES = ("auto", "on", "off")
START_FILE = "start.safetensors"


def wanted(choice: str, label_init: str, learn: str) -> bool:
    """Whether a run with these settings scores its start labels (``choice``: auto, on or off)."""
    if choice not in CHOICES:
        raise UserError(f"--start-candidate must be one of {', '.join(CHOICES)}, got {choice!r}.")
    if choice == "off":
        return False
    possible = label_init != "uniform" and learn == "labels"
    if choice == "on" and not possible:
        why = ("the uniform start (1/C for every class) teaches nothing" if label_init == "uniform"
               else f"--learn {learn} also learns images, which the start labels were not made for")
        raise UserError(f"--start-candidate on needs informative start labels on fixed images: {why}.")
    return possible


@dataclass
class StartCandidate:
    labels: torch.Tensor  # N x C, the run's start
    steps: int  # T chosen by the step search
    val_accuracy: float  # % at T (the best of the curve)
    curve: dict[int, float]  # validation accuracy (%) at each checkpoint

    def record(self) -> dict:
        return {"T": self.steps, "val_accuracy": round(self.val_accuracy, 4), "curve": {str(k): round(v, 4) for k, v in self.curve.items()}}

    def save(self, run_dir: str | Path) -> None:
        from ..runs import save_state

        save_state(Path(run_dir) / START_FILE, {"labels": self.labels.detach().cpu(), "steps": self.steps,
                                                 "val_accuracy": self.val_accuracy, "curve": self.record()["curve"]})

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device) -> StartCandidate:
        from ..runs import load_state

        d = load_state(Path(run_dir) / START_FILE)
        return cls(d["labels"].to(device), int(d["steps"]), float(d["val_accuracy"]), {int(k): float(v) for k, v in d["curve"].items()})


def score_start(learner: Learner, problem, labels: torch.Tensor, *, seed: int, batch: int, lr: float,
                score: Score | None = None, models: int = 1, progress: bool = False, steps: int | None = None) -> StartCandidate:
    """Score the start labels on the validation split as a baseline's set is scored (its own model seed). ``score``:
    the loop's way of scoring snapshots; under a fixed-epoch protocol (``select_protocol``,
    :class:`.validation.ProtocolScore`) it gives the accuracy the snapshots are compared with: the mean of ``models`` students (the snapshots' number),
    seeded from ``(seed, "start-candidate")``; the step search still gives the start its T. ``progress``: its bar.
    ``steps``: a run whose labels carry no paper T (students trained the test's way, scored by the protocol: ``score``
    must be a :class:`ProtocolScore`) skips the step search and gives the start this T, its snapshots' placeholder."""
    if steps is not None:
        if not isinstance(score, ProtocolScore):
            raise ValueError("a start without the step search is scored by a fixed-epoch protocol (a ProtocolScore)")
        start = StartCandidate(labels.detach().clone(), steps, float("nan"), {})
    else:
        steps, curve = choose_steps(learner, problem, labels, seed=derive_seed(seed, "start-candidate"), lr=lr, batch=batch,
                                    progress=progress)
        start = StartCandidate(labels.detach().clone(), steps, curve[steps], curve)
    if isinstance(score, ProtocolScore):
        acc = score.labels(start.labels, None, steps, seed=derive_seed(seed, "start-candidate"), models=models)
        start.val_accuracy = 100.0 * math.fsum(acc) / len(acc)
    return start


def prefer_start(start: StartCandidate | None, selected_error: float) -> bool:
    """True when the start labels beat the selected snapshot on validation (strictly: ties keep the learned labels)."""
    return start is not None and start.val_accuracy > 100.0 - selected_error
