"""``evaluate --snapshot``: test a run's validated snapshot (its number, or the loop's choice among the learned ones)."""
from __future__ import annotations

import json

import pytest
import torch

import labeldistill
from labeldistill.distill import DistillConfig
from labeldistill.distill.validation import load_snapshots
from labeldistill.errors import UserError
from labeldistill.evaluation import evaluate
from labeldistill.runs import read_metrics


def _cfg(mnist_small, **kw) -> DistillConfig:
    base = dict(target=f"npz:{mnist_small}", base=20, method="ridge", epochs=3, val_every=1, test_models=2, reset_window=4,
                device="cpu", seed=5, checkpoint_minutes=0.0)
    return DistillConfig(**{**base, **kw})


def test_best_learned_is_the_runs_own_selection_and_is_saved_apart(mnist_small, tmp_path):
    out = tmp_path / "run"
    ds = labeldistill.distill(config=_cfg(mnist_small), out=out, progress=False)  # uniform start: no start candidate
    own = evaluate(out, models=2)
    best = evaluate(out, models=2, snapshot="best-learned")
    vals = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "validation"]
    k = max(range(len(vals)), key=lambda i: (vals[i]["val_accuracy"], i))
    assert best["snapshot"]["number"] == k and best["snapshot"]["epoch"] == json.loads((out / "result.json").read_text())["selected_epoch"]
    assert best["accuracies"] == own["accuracies"] and best["steps"] == own["steps"] == ds.steps
    files = sorted(p.name for p in (out / "evaluations").glob("*.json"))
    assert files == [f"lenet-ridge-T{ds.steps}-K2-snap{k}.json", f"lenet-ridge-T{ds.steps}-K2.json"]
    # Another snapshot: its own labels and T.
    other = (k + 1) % len(vals)
    r = evaluate(out, models=2, snapshot=other, save=False)
    snap = load_snapshots(out)[other]
    assert r["snapshot"] == {"number": other, "epoch": snap.epoch, "T": snap.steps_t, "val_accuracy": vals[other]["val_accuracy"],
                             "asked": str(other)}
    assert r["steps"] == snap.steps_t


def test_best_learned_when_the_start_won(mnist_small, tmp_path, short_step_search):
    out = tmp_path / "start"
    ds = labeldistill.distill(config=_cfg(mnist_small, label_init="onehot", label_lr=30.0), out=out, progress=False)
    assert json.loads((out / "result.json").read_text())["start_candidate"]["selected"] == "start"
    r = evaluate(out, models=2, snapshot="best-learned", save=False)
    snap = load_snapshots(out)[r["snapshot"]["number"]]
    assert not torch.equal(snap.labels, ds.labels)  # the learned labels, not the kept start
    assert r["steps"] == snap.steps_t


def test_bad_snapshots_are_one_line_errors(mnist_small, tmp_path):
    out = tmp_path / "run"
    labeldistill.distill(config=_cfg(mnist_small, epochs=1), out=out, progress=False)
    with pytest.raises(UserError, match="snapshots 0 to 0; --snapshot 7"):
        evaluate(out, snapshot=7, save=False)
    with pytest.raises(UserError, match="a snapshot number .* or best-learned"):
        evaluate(out, snapshot="last", save=False)
    with pytest.raises(UserError, match="label-distillation run directory"):
        evaluate(out / "distilled.safetensors", snapshot=0, target=f"npz:{mnist_small}", save=False)
