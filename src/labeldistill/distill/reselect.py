"""Which snapshot would another selection rule have picked? Re-selection from a run's snapshots.

The loop writes every validated label snapshot to ``RUN_DIR/snapshots/`` and selection never
feeds back into the loop, so selecting with M validation models per snapshot afterwards gives
exactly what a run with ``validation_models = M`` would have selected, at the cost of the
validation models alone (no second distillation). Used by ``studies/selection_noise.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..runs import read_json
from .config import DistillConfig
from .loop import Distiller
from .run import prepare
from .validation import Snapshot, load_snapshots


@dataclass
class Reselection:
    models: int  # M validation models per snapshot
    selected: Snapshot
    val_accuracy: float  # the selected snapshot's mean validation accuracy (%)
    curve: list[float]  # mean validation accuracy (%) of every snapshot, in order


def validation_accuracies(distiller: Distiller, snapshots: list[Snapshot], models: int, group: int = 16) -> torch.Tensor:
    """Accuracy (fraction) of validation model j of every snapshot: S x M, the loop's seeds and rule."""
    rows = []
    for i in range(0, len(snapshots), group):  # grouping never changes a result (tested for the loop)
        snaps = snapshots[i : i + group]
        acc = distiller.score(snaps, models)  # the paper's selection (reselect refuses runs selected otherwise)
        rows.append(acc.cpu().double().view(len(snaps), models))
    return torch.cat(rows)


def select(snapshots: list[Snapshot], acc: torch.Tensor, models: int) -> Reselection:
    """The loop's rule with the first ``models`` columns of ``acc``: lowest mean error, ties to the later snapshot."""
    best, best_err, curve = None, float("inf"), []
    for s, row in zip(snapshots, acc[:, :models].tolist()):
        a = math.fsum(row) / models
        err = 100.0 * (1.0 - a)
        curve.append(100 * a)
        if err <= best_err:
            best, best_err = s, err
    assert best is not None
    return Reselection(models, best, 100.0 - best_err, curve)


def reselect(run_dir: str | Path, models: list[int], *, data_root: str | Path | None = None, device: str = "cpu") -> tuple[Distiller, list[Reselection]]:
    """Re-select a finished run's labels with each M in ``models`` (validation models computed once, for max M)."""
    record = read_json(Path(run_dir) / "config.json")
    cfg = DistillConfig.from_dict({**record["config"], "device": device})
    if cfg.select_protocol != "paper":
        from ..errors import UserError

        raise UserError(f"{run_dir} selected its labels under {cfg.select_protocol}; re-selection repeats the paper's rule only.")
    resolved, problem, _ = prepare(cfg, data_root=data_root if data_root is not None else record.get("data_root"))
    distiller = Distiller(resolved, problem, progress=False)
    snapshots = load_snapshots(run_dir, problem.base_x.device)
    if not snapshots:
        from ..errors import UserError

        raise UserError(f"{run_dir} has no snapshots/ (runs made before snapshots were kept cannot be re-selected).")
    acc = validation_accuracies(distiller, snapshots, max(models))
    return distiller, [select(snapshots, acc, m) for m in models]
