"""``--start-candidate``: the start labels compete with the learned snapshots on validation (distill/start.py).

Real MNIST images, tiny runs: a one-hot start against labels wrecked by a huge label lr (the start must win, with
its own T from the step search), the rule on ties, the settings that turn it on, resume, and old records."""
from __future__ import annotations

import importlib
import json

import pytest
import torch
import torch.nn.functional as F

import labeldistill
from labeldistill import paper_defaults
from labeldistill.cli import main
from labeldistill.distill import DistillConfig
from labeldistill.distill.start import START_FILE, StartCandidate, prefer_start, wanted
from labeldistill.errors import UserError
from labeldistill.experiments.plan import normalise_distill

run_mod = importlib.import_module("labeldistill.distill.run")  # (labeldistill.distill is also the function)


def _cfg(mnist_small, **kw) -> DistillConfig:
    base = dict(target=f"npz:{mnist_small}", base=20, method="ridge", epochs=2, val_every=1, test_models=2, reset_window=4,
                device="cpu", seed=5, checkpoint_minutes=0.0)
    return DistillConfig(**{**base, **kw})


def test_which_runs_have_a_start_candidate():
    assert wanted("auto", "teacher", "labels") and wanted("auto", "onehot", "labels")
    assert not wanted("auto", "uniform", "labels")  # the paper's runs are untouched
    assert not wanted("auto", "onehot", "images+labels")  # start labels made for other images
    assert not wanted("off", "teacher", "labels") and wanted("on", "onehot", "labels")
    with pytest.raises(UserError, match="teaches nothing"):
        wanted("on", "uniform", "labels")
    with pytest.raises(UserError, match="also learns images"):
        wanted("on", "teacher", "images+labels")
    with pytest.raises(UserError, match="must be one of auto, on, off"):
        wanted("sometimes", "teacher", "labels")


def test_the_start_wins_only_when_strictly_better():
    start = StartCandidate(torch.zeros(2, 3), steps=50, val_accuracy=80.0, curve={50: 80.0})
    assert prefer_start(start, selected_error=20.5)  # learned: 79.5 %
    assert not prefer_start(start, selected_error=20.0)  # a tie keeps the learned labels
    assert not prefer_start(start, selected_error=10.0)
    assert not prefer_start(None, selected_error=90.0)


def test_a_onehot_start_beats_wrecked_labels_and_resume_keeps_the_decision(mnist_small, tmp_path, monkeypatch, short_step_search):
    out = tmp_path / "run"
    # Label lr 30: two epochs of Adam steps scramble the labels; the one-hot start validates far better.
    ds = labeldistill.distill(config=_cfg(mnist_small, label_init="onehot", label_lr=30.0), out=out, progress=False)
    r = json.loads((out / "result.json").read_text())
    cand = r["start_candidate"]
    assert r["config"]["start_candidate"] == "on" and cand["selected"] == "start"
    assert cand["val_accuracy"] > cand["learned_val_accuracy"]
    curve = {int(k): v for k, v in cand["curve"].items()}
    assert sorted(curve) == paper_defaults.baseline_checkpoints(20)  # scored as a baseline's set: the step search's checkpoints
    best = max(curve.values())
    assert cand["T"] == min(s for s, v in curve.items() if v == best) and cand["val_accuracy"] == best
    # What is tested and saved is the start itself, at its own T.
    onehot = F.one_hot(ds_base_classes(out), 10).float()
    assert torch.equal(ds.labels, onehot) and ds.steps == cand["T"] == r["T"] and r["selected_epoch"] == 0
    assert labeldistill.load(out).labels.equal(onehot)
    assert StartCandidate.load(out, "cpu").steps == cand["T"] and (out / START_FILE).exists()
    # A resumed run reads its candidate back: nothing is scored again, the same decision.
    (out / "result.json").unlink()
    monkeypatch.setattr(run_mod, "score_start", lambda *a, **k: (_ for _ in ()).throw(AssertionError("scored again on resume")))
    again = labeldistill.distill(out=out, resume=True, progress=False)
    assert torch.equal(again.labels, ds.labels) and again.steps == ds.steps
    assert again.evaluation["accuracy_mean"] == ds.evaluation["accuracy_mean"]


def ds_base_classes(run_dir) -> torch.Tensor:
    """The base images' true classes, as the run recorded them."""
    from labeldistill.distill import prepare

    cfg = DistillConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"])
    _, problem, _ = prepare(cfg)
    return problem.base_y.to(torch.long)


def test_off_keeps_the_learned_snapshot(mnist_small, tmp_path):
    out = tmp_path / "off"
    ds = labeldistill.distill(config=_cfg(mnist_small, label_init="onehot", label_lr=30.0, start_candidate="off"), out=out, progress=False)
    r = json.loads((out / "result.json").read_text())
    assert "start_candidate" not in r and not (out / START_FILE).exists()
    assert not torch.equal(ds.labels, F.one_hot(ds_base_classes(out), 10).float())  # the wrecked labels, as asked


def test_records_from_before_the_setting_mean_off(mnist_small):
    d = _cfg(mnist_small, label_init="onehot").to_dict()
    del d["start_candidate"]
    assert DistillConfig.from_dict(d).start_candidate == "off"
    assert normalise_distill(d)["start_candidate"] == "off"


def test_impossible_choice_is_one_line_and_exit_2(mnist_small, tmp_path, capsys):
    assert main(["distill", "--target", f"npz:{mnist_small}", "--start-candidate", "on", "--out", str(tmp_path / "x"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "teaches nothing" in err[0]


def test_the_step_search_bar_changes_nothing(redrawing_bars, short_step_search):
    """The paper step search with its bar shown (here one that redraws, so tqdm's update returns True, at every checkpoint)
    measures the same curve and T as without it."""
    from labeldistill import stepsearch
    from labeldistill.engine import make_learner

    from test_distill_loop import TinyNet, blob_problem

    redrawing_bars(stepsearch)
    p = blob_problem()
    learner = make_learner(TinyNet, 1, 6, 2, head="linear")
    y = torch.softmax(torch.randn(6, 2, generator=torch.Generator().manual_seed(1)), -1)
    quiet, shown = (stepsearch.choose_steps(learner, p, y, seed=0, lr=1e-2, batch=4, progress=bar) for bar in (False, True))
    assert quiet == shown and sorted(shown[1]) == [10, 25, 50]
