"""Does label selection with several validation models raise or steady test accuracy? (issue 14, item 5)

Usage:
    python studies/selection_noise.py RUN_DIR [RUN_DIR ...] [--models 1 3 5] [--data-root DIR] [--json]

For each finished run (made with snapshots kept, i.e. from commit 93a4928 on), the validated
label snapshots in ``RUN_DIR/snapshots/`` are re-selected with M = 1, 3, 5 validation models
per snapshot (the mean of their validation accuracies; distill/reselect.py). Selection never
feeds back into the loop, so this is exactly what ``labeldistill distill --validation-models M``
with the same seed would select, without distilling again. Each selected snapshot is then
tested with the run's own protocol (20 fresh models, T steps, the run's seed). M = 1 must give
the run's own selection and test accuracy: the script checks it and stops otherwise.

Cost: selection with M models trains M x (number of snapshots) validation models; the script
reports the seconds of the validation models per M (measured for max M, scaled per model).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from labeldistill.distill.reselect import reselect
from labeldistill.engine import evaluate_labels
from labeldistill.runs import read_json
from labeldistill.runs.provenance import versions


def study(run_dir: Path, models: list[int], data_root: str | None) -> dict:
    result = read_json(run_dir / "result.json")
    t0 = time.perf_counter()
    distiller, picks = reselect(run_dir, models, data_root=data_root)
    val_seconds = time.perf_counter() - t0
    p, cfg = distiller.problem, distiller.cfg
    rows, tested = [], {}
    for r in picks:
        key = r.selected.number
        if key not in tested:
            ev = evaluate_labels(distiller.learner, p.base_x, r.selected.labels, p.target.test.x, p.target.test.y,
                                 steps=r.selected.steps_t, models=cfg.test_models, seed=cfg.seed, batch_size=cfg.inner_batch, lr=cfg.model_lr)
            tested[key] = ev
        ev = tested[key]
        rows.append({"M": r.models, "selected_epoch": r.selected.epoch, "T": r.selected.steps_t, "val_accuracy": round(r.val_accuracy, 4),
                     "test_mean": round(ev.accuracy_mean, 4), "test_std": round(ev.accuracy_std, 4),
                     "validation_model_trainings": r.models * len(r.curve)})
    one = next(r for r in picks if r.models == 1) if 1 in models else None
    if one is not None and (one.selected.epoch != result["selected_epoch"] or tested[one.selected.number].accuracy_mean != result["accuracy_mean"]):
        raise SystemExit(f"{run_dir}: M=1 re-selection (epoch {one.selected.epoch}) differs from the run's own "
                         f"(epoch {result['selected_epoch']}, {result['accuracy_mean']}): not the same code or data")
    per_model = val_seconds / (max(models) * len(picks[0].curve))
    return {"run": str(run_dir), "method": result["method"], "seed": result["seed"], "rows": rows,
            "seconds_per_validation_model": round(per_model, 3), "run_distill_seconds": result.get("distill_seconds")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--models", nargs="+", type=int, default=[1, 3, 5])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {"versions": versions(), "threads": torch.get_num_threads(), "studies": []}
    for run in args.runs:
        s = study(run, sorted(set(args.models)), args.data_root)
        out["studies"].append(s)
        for r in s["rows"]:
            print(f"{run.name}  M={r['M']}  epoch {r['selected_epoch']:>3}  T {r['T']:>4}  val {r['val_accuracy']:.2f}  "
                  f"test {r['test_mean']:.2f} +- {r['test_std']:.2f}", flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
