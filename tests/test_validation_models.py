"""Label selection with several validation models per snapshot (``validation_models``, M).

M = 1 is the paper's protocol, bit for bit the selection from before the setting existed;
M > 1 selects on the mean validation accuracy of M fresh models, whatever the grouping of
snapshots, and survives a checkpoint / resume.
"""
from __future__ import annotations

import math

import pytest
import torch

from labeldistill.cli import build_parser
from labeldistill.cli.distill import config_from_args
from labeldistill.distill import DistillConfig, Distiller
from labeldistill.distill import validation as validation_mod
from labeldistill.distill.validation import LabelSelector, PaperScore, validation_seed
from labeldistill.engine import Learner, accuracy, train_models
from labeldistill.errors import UserError
from labeldistill.runs import read_metrics
from labeldistill.seeding import derive_seed

from test_distill_loop import TinyNet, _capture_snapshots, _config, blob_problem


def _learner() -> Learner:
    return Learner(TinyNet)


def _random_labels(k: int, n: int = 6, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(3 * torch.randn(n, 2, generator=g), -1) for _ in range(k)]


def test_one_model_is_the_papers_selection_bit_for_bit():
    """M = 1: model 0's seed is today's, and the records / selection equal the one-model
    procedure written out against the engine (the code before validation_models)."""
    for seed in (0, 3, 17):
        for k in range(4):
            assert validation_seed(seed, k) == validation_seed(seed, k, 0) == derive_seed(seed, "validation-models", k)
            assert validation_seed(seed, k, 1) != validation_seed(seed, k, 0)
    problem = blob_problem()
    learner, val = _learner(), problem.target.val
    labels, steps = _random_labels(5, seed=1), [3, 9, 1, 6, 9]
    sel = LabelSelector(seed=3)
    assert sel.models == 1
    recs = []
    for group in ((0, 1), (2, 3, 4)):
        for i in group:
            sel.add(2 * (i + 1), 8 * (i + 1), steps[i], labels[i])
        recs += sel.flush(PaperScore(learner, problem.base_x, val.x, val.y, seed=3, batch_size=4, lr=1e-3))

    # The one-model procedure, written out: one model per snapshot, seed (run seed, k).
    best_err, best, expected = float("inf"), None, []
    for group in ((0, 1), (2, 3, 4)):
        st = train_models(learner, problem.base_x, torch.stack([labels[i] for i in group]), [steps[i] for i in group],
                          [derive_seed(3, "validation-models", i) for i in group], batch_size=4, lr=1e-3)
        for i, a in zip(group, accuracy(learner, st, val.x, val.y).tolist()):
            err = 100.0 * (1.0 - a)
            selected = err <= best_err
            if selected:
                best_err, best = err, i
            expected.append({"kind": "validation", "epoch": 2 * (i + 1), "step": 8 * (i + 1), "T": steps[i],
                             "val_accuracy": round(100 * a, 4), "selected": selected})
    assert recs == expected  # no per-model fields with one model
    assert sel.best.number == best and sel.best_error == best_err
    assert torch.equal(sel.best.labels, labels[best])


def test_several_models_select_on_the_mean(monkeypatch):
    """Snapshot 0 has the best single model (and the best model 0) but the worse mean:
    with M = 3 snapshot 1 is selected; the engine gets row i * M + j = model j of snapshot i."""
    calls = []

    def fake_train(learner, images, labels, steps, seeds, **kw):
        calls.append((labels.clone(), list(steps), list(seeds)))

    scripted = torch.tensor([0.9, 0.5, 0.5, 0.7, 0.7, 0.7])
    monkeypatch.setattr(validation_mod, "train_models", fake_train)
    monkeypatch.setattr(validation_mod, "accuracy", lambda *a, **k: scripted)
    labels = _random_labels(2)
    sel = LabelSelector(seed=11, models=3)
    sel.add(5, 50, 7, labels[0])
    sel.add(10, 100, 8, labels[1])
    recs = sel.flush(PaperScore(None, None, None, None, seed=11, batch_size=1, lr=0.1))

    (lab, steps, seeds), = calls
    assert steps == [7, 7, 7, 8, 8, 8]
    assert seeds == [validation_seed(11, k, j) for k in (0, 1) for j in range(3)]
    assert len(set(seeds)) == 6 and seeds[0] == derive_seed(11, "validation-models", 0) and seeds[3] == derive_seed(11, "validation-models", 1)
    for row in range(6):
        assert torch.equal(lab[row], labels[row // 3])

    assert [r["selected"] for r in recs] == [True, True]
    assert sel.best.number == 1 and sel.best.steps_t == 8 and torch.equal(sel.best.labels, labels[1])
    assert sel.best_error == pytest.approx(30.0)
    r0, r1 = recs
    assert r0["val_accuracy"] == pytest.approx(100 * 1.9 / 3, abs=1e-4) and r1["val_accuracy"] == pytest.approx(70.0)
    assert r0["val_models"] == 3 and r0["val_accuracies"] == pytest.approx([90.0, 50.0, 50.0])
    assert r0["val_std"] == pytest.approx(100 * float(scripted[:3].double().std(unbiased=False)), abs=1e-4)
    assert r1["val_std"] == pytest.approx(0.0, abs=1e-4)

    # A later snapshot whose model 0 beats everything but whose mean is worse is not selected.
    scripted = torch.tensor([1.0, 0.3, 0.3])
    monkeypatch.setattr(validation_mod, "accuracy", lambda *a, **k: scripted)
    sel.add(15, 150, 9, labels[0])
    (r2,) = sel.flush(PaperScore(None, None, None, None, seed=11, batch_size=1, lr=0.1))
    assert r2["selected"] is False and sel.best.number == 1


def _run(cfg: DistillConfig, run_dir=None, on_epoch=None):
    d = Distiller(cfg, blob_problem(), model_factory=TinyNet, run_dir=run_dir, progress=False)
    snapshots = _capture_snapshots(d)
    if run_dir is not None:
        d.open_log(resume=False)
    try:
        result = d.run(on_epoch=on_epoch)
    finally:
        d.close()
    return d, result, snapshots


def test_grouping_never_changes_a_result_with_several_models():
    """M = 2, val_every = 1: validated one snapshot at a time, or three at once, gives the same
    records, per-model accuracies and selection; each model's accuracy is the engine's on its own."""
    runs = {g: _run(_config("second-order", epochs=5, val_every=1, val_group=g, validation_models=2)) for g in (1, 3)}
    (d1, res1, snaps), (d3, res3, _) = runs[1], runs[3]
    assert len(d1.selector.history) == 5
    assert d1.selector.history == d3.selector.history
    assert torch.equal(res1.labels, res3.labels) and res1.steps == res3.steps and res1.selected.number == res3.selected.number
    problem, cfg = blob_problem(), d1.cfg
    for k, rec in enumerate(d1.selector.history):
        assert rec["val_models"] == 2 and len(rec["val_accuracies"]) == 2
        accs = []
        for j in range(2):
            st = train_models(d1.learner, problem.base_x, snaps[rec["epoch"]], rec["T"], [validation_seed(cfg.seed, k, j)],
                              batch_size=cfg.inner_batch, lr=cfg.model_lr)
            accs.append(accuracy(d1.learner, st, problem.target.val.x, problem.target.val.y).item())
        assert rec["val_accuracies"] == [round(100 * a, 4) for a in accs]
        assert rec["val_accuracy"] == round(100 * math.fsum(accs) / 2, 4)
    # Selection on the mean (ties to the later snapshot).
    means = [100 * (1 - math.fsum(r["val_accuracies"]) / 200) for r in d1.selector.history]
    best = max(i for i, e in enumerate(means) if e == pytest.approx(min(means), abs=1e-9))
    assert res1.selected.number == best


def test_resume_mid_run_with_several_models(tmp_path):
    """Stopped after epoch 2 with two snapshots still waiting for validation (val_group 3),
    then resumed: the same metrics log, validations and selected labels as a straight run."""
    cfg = _config("ridge", epochs=5, val_every=1, val_group=3, validation_models=2)
    straight, res_a, _ = _run(cfg, tmp_path / "a")

    class Stop(Exception):
        pass

    def stop_after_two(d):
        if d.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        _run(cfg, tmp_path / "b", on_epoch=stop_after_two)
    second = Distiller(cfg, blob_problem(), model_factory=TinyNet, run_dir=tmp_path / "b", progress=False)
    second.open_log(resume=True)
    assert second.step == 8 and len(second.selector.pending) == 2 and second.selector.models == 2
    res_b = second.run()
    second.close()

    ra, rb = read_metrics(tmp_path / "a" / "metrics.jsonl"), read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert ra == rb
    vals = [r for r in ra if r["kind"] == "validation"]
    assert len(vals) == 5 and all(len(v["val_accuracies"]) == 2 for v in vals)
    assert torch.equal(res_a.labels, res_b.labels) and res_a.steps == res_b.steps and res_a.selected.number == res_b.selected.number

    # The checkpoint records M; resuming it with another M is refused rather than mixing selections.
    other = Distiller(DistillConfig(**{**cfg.to_dict(), "validation_models": 1}), blob_problem(), model_factory=TinyNet,
                      run_dir=tmp_path / "b", progress=False)
    with pytest.raises(UserError, match="validation_models = 2"):
        other.open_log(resume=True)
    other.close()


def test_old_checkpoints_and_configs_default_to_one_model():
    """State and configs written before validation_models existed load with M = 1."""
    sel = LabelSelector(seed=4, models=3)
    sel.add(5, 40, 6, torch.full((6, 2), 0.5))
    state = sel.state_dict()
    assert state["models"] == 3
    assert LabelSelector.from_state(state, "cpu").models == 3
    old = {k: v for k, v in state.items() if k != "models"}
    restored = LabelSelector.from_state(old, "cpu")
    assert restored.models == 1 and restored.pending[0].steps_t == 6

    d = DistillConfig(base=12, seed=4, validation_models=3).to_dict()
    assert d["validation_models"] == 3 and DistillConfig.from_dict(d).validation_models == 3
    legacy = {k: v for k, v in d.items() if k != "validation_models"}
    assert DistillConfig.from_dict(legacy).validation_models == 1


def test_validation_models_setting_cli_and_checks():
    args = build_parser().parse_args(["distill", "--out", "x", "--validation-models", "4"])
    assert config_from_args(args).validation_models == 4
    args = build_parser().parse_args(["distill", "--out", "x"])
    assert config_from_args(args).validation_models == 1  # the paper's protocol by default
    for bad in (0, -2, 1.5):
        with pytest.raises(UserError, match="validation-models"):
            DistillConfig(validation_models=bad).validate()
    with pytest.raises(ValueError):
        LabelSelector(seed=0, models=0)
    # It changes results, so it is part of the run's identity (not one of the ignored settings).
    from labeldistill.experiments.plan import config_diff, normalise_distill

    a = normalise_distill(DistillConfig(target="mnist", validation_models=1).resolve("mnist", 1).to_dict())
    b = normalise_distill(DistillConfig(target="mnist", validation_models=3).resolve("mnist", 1).to_dict())
    assert config_diff(a, b) == ["validation_models: 3 (wanted 1)"]


def test_runs_scored_together_equal_each_run_alone_in_one_engine_call(monkeypatch):
    """The validations of a stack's runs (each with its own seed, base images and M) are trained in one engine call
    and give each run exactly its own scores; a run of another kind (a different lr here) is scored alone."""
    from labeldistill.distill.validation import Snapshot, score_together

    problem = blob_problem(n_base=6)
    val = problem.target.val
    g = torch.Generator().manual_seed(4)
    learner = _learner()

    def score(seed, lr=1e-3):
        base = torch.randn(6, *problem.base_x.shape[1:], generator=g)  # each run its own base images
        return PaperScore(learner, base, val.x, val.y, seed=seed, batch_size=4, lr=lr)

    scores = [score(3), score(8), score(8), score(5, lr=2e-3)]
    groups = [[Snapshot(n, 5 * (n + 1), 10 * (n + 1), 3 + n, lab) for n, lab in enumerate(_random_labels(k, seed=i))]
              for i, k in enumerate((2, 1, 3, 2))]
    models = [1, 2, 1, 1]
    alone = [sc(snaps, m) for sc, snaps, m in zip(scores, groups, models)]
    from labeldistill.engine import evaluate as engine_evaluate

    calls = []
    real = validation_mod.train_models
    spy = lambda *a, **k: calls.append(len(a[4])) or real(*a, **k)  # noqa: E731  (a call and its number of models)
    monkeypatch.setattr(validation_mod, "train_models", spy)  # a run scored alone
    monkeypatch.setattr(engine_evaluate, "train_models", spy)  # runs scored together (engine.train_groups)
    together = score_together(scores, groups, models)
    for a, b in zip(alone, together):
        assert torch.equal(a.double(), b.double())
    assert calls == [2 + 2 + 3, 2]  # the first three runs' 7 models in one call; the fourth run (another lr) alone
