"""``--label-init``: where learned labels start (uniform, onehot, teacher, another set's labels), on real MNIST images;
the temperature rule of teacher labels; resume keeps the start's record without recomputing it."""
from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch
import torch.nn.functional as F

import labeldistill
from labeldistill.cli import main
from labeldistill.distill import DistillConfig, Distiller, prepare
from labeldistill.distill.label_init import initial_labels
from labeldistill.errors import UserError
from labeldistill.teacher import TEMPERATURES, choose_temperature, grid_edge, parse_temperature, run_teacher


def _cfg(mnist_small, **kw) -> DistillConfig:
    base = dict(target=f"npz:{mnist_small}", base=20, method="ridge", epochs=2, val_every=1, test_models=2, reset_window=4,
                device="cpu", seed=3, teacher_epochs=1, teacher_patience=1)
    return DistillConfig(**{**base, **kw})


def test_choose_temperature_takes_the_best_score_and_the_lowest_on_ties():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    # Score = the label mass on class 0 rounded: sharper (lower T) scores higher.
    t, scores = choose_temperature(logits, lambda y: float(y[0, 0]))
    assert t == TEMPERATURES[0] and list(scores) == [str(v) for v in TEMPERATURES]
    assert scores["1.0"] == round(float(torch.softmax(logits, -1)[0, 0]), 4)
    t, _ = choose_temperature(logits, lambda y: 1.0 - float(y[0, 0]))  # flatter scores higher: the highest T
    assert t == TEMPERATURES[-1]
    t, _ = choose_temperature(logits, lambda y: 0.5)  # all tie: the lowest
    assert t == TEMPERATURES[0]
    assert parse_temperature("auto") == "auto" and parse_temperature("2") == 2.0
    for bad in ("0", "-1", "hot", None):
        with pytest.raises(UserError, match="positive number or auto"):
            parse_temperature(bad)


def test_a_choice_at_the_end_of_the_grid_is_flagged_with_the_next_temperature():
    # The field table's teacher chose 8, the top of 1 / 2 / 4 / 8, under both protocols: the record and a warning say
    # so and name 16; a choice inside the grid, or an end that only ties its neighbour, is not flagged.
    grid = TEMPERATURES
    top = {"1.0": 95.13, "2.0": 96.03, "4.0": 96.94, "8.0": 97.14}
    with pytest.warns(UserWarning, match="largest end .* a temperature of 16 may do better"):
        assert grid_edge(8.0, top, grid) == "largest"
    with pytest.warns(UserWarning, match="smallest end .* a temperature of 0.5 may do better"):
        assert grid_edge(1.0, {"1.0": 90.0, "2.0": 89.0, "4.0": 80.0, "8.0": 70.0}, grid) == "smallest"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert grid_edge(4.0, top, grid) is None
        assert grid_edge(1.0, {"1.0": 90.0, "2.0": 90.0, "4.0": 80.0, "8.0": 70.0}, grid) is None


def _start_labels_seen(monkeypatch) -> list[torch.Tensor]:
    """The labels each Distiller made from now on starts with, in order."""
    seen = []
    orig = Distiller.__init__

    def spy(self, *a, **k):
        orig(self, *a, **k)
        seen.append(self.labels.value.detach().clone())

    monkeypatch.setattr(Distiller, "__init__", spy)
    return seen


def test_uniform_and_onehot_starts(mnist_small):
    cfg, problem, _ = prepare(_cfg(mnist_small, label_init="onehot"))
    start, record = initial_labels(cfg, problem)
    assert record == {"label_init": "onehot"}
    d = Distiller(cfg, problem, progress=False, initial_labels=start)
    assert torch.equal(d.labels.value.detach(), F.one_hot(problem.base_y, 10).float())
    u = Distiller(dataclasses.replace(cfg, label_init="uniform"), problem, progress=False)
    assert torch.equal(u.labels.value.detach(), torch.full((20, 10), 0.1))  # the authors' start, unchanged


def test_teacher_start_end_to_end_and_resume_keeps_its_record(mnist_small, tmp_path, monkeypatch, short_step_search):
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(mnist_small, label_init="teacher", temperature="auto", checkpoint_minutes=0.0)
    resolved, problem, _ = prepare(cfg)
    start, record = initial_labels(resolved, problem)
    # Soft labels from a real teacher: distributions, mostly right on real digits, at the chosen temperature.
    assert start.shape == (20, 10) and torch.allclose(start.sum(-1), torch.ones(20), atol=1e-5)
    from labeldistill.engine import predict
    from labeldistill.teacher import TeacherConfig, train_teacher

    t_learner, t_state, rec = train_teacher(problem.target, TeacherConfig(arch="lenet", seed=3, epochs=1, patience=1))
    assert rec["cache"]["reused"]  # the start's teacher, from the cache
    logits = predict(t_learner, t_state, problem.base_x)[0].float()
    torch.testing.assert_close(start, torch.softmax(logits / record["temperature"], -1), rtol=0, atol=0)
    assert float((start.argmax(-1) == problem.base_y).float().mean()) > 0.3  # a real teacher: far above chance (0.1)
    choice = record["temperature_choice"]
    assert record["temperature"] == choice["chosen"] and choice["chosen"] in TEMPERATURES
    assert choice["val_accuracy"][str(choice["chosen"])] == max(choice["val_accuracy"].values())
    assert record["teacher"]["arch"] == "lenet" and 30 < record["teacher"]["val_accuracy"] <= 100
    # The run starts from exactly these labels (the teacher is cached; the choice is repeated the same).
    out = tmp_path / "run"
    seen = _start_labels_seen(monkeypatch)
    ds = labeldistill.distill(config=cfg, out=out, progress=False)
    assert torch.equal(seen[0], start)
    saved = json.loads((out / "config.json").read_text())["label_init"]
    assert saved["label_init"] == "teacher" and saved["temperature"] == record["temperature"]
    assert ds.provenance["label_init"]["temperature"] == record["temperature"]
    # The run's teacher for experiments on its images (studies/): the same cached teacher gives the same start.
    with run_teacher(out) as rt:
        assert rt.record["cache"]["reused"] and rt.temperature == record["temperature"] and rt.seed == 3
        torch.testing.assert_close(rt.labels(rt.run.images), start, rtol=0, atol=0)
        assert torch.equal(rt.data.train.y, problem.target.train.y)  # the run's own split
    # Resume: the labels come from the checkpoint and the record from config.json; no teacher work.
    (out / "result.json").unlink()
    import importlib

    run_mod = importlib.import_module("labeldistill.distill.run")  # (labeldistill.distill is also the function)

    monkeypatch.setattr(run_mod, "initial_labels", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed on resume")))
    again = labeldistill.distill(out=out, resume=True, progress=False)
    assert torch.equal(again.labels, ds.labels) and again.provenance["label_init"] == ds.provenance["label_init"]


def test_a_run_starts_from_another_sets_labels_on_the_same_images(mnist_small, tmp_path, monkeypatch):
    """``--label-init set --label-set FILE``: a finished run's labels (here a ridge run's) start another run on the same
    images exactly, its hash recorded and the start scored as a candidate; other images, or a missing file, are refused."""
    first = labeldistill.distill(config=_cfg(mnist_small), out=tmp_path / "first", progress=False)
    cfg = _cfg(mnist_small, label_init="set", label_set=str(tmp_path / "first"), method="second-order", epochs=1)
    resolved, problem, _ = prepare(cfg)
    assert resolved.start_candidate == "on"  # informative start labels: scored against the learned ones
    start, record = initial_labels(resolved, problem)
    assert torch.equal(start, first.labels) and not torch.equal(start, torch.full_like(start, 0.1))
    assert record == {"label_init": "set", "label_set": str(tmp_path / "first"), "label_set_sha256": first.content_sha256()}
    seen = _start_labels_seen(monkeypatch)
    ds = labeldistill.distill(config=cfg, out=tmp_path / "second", progress=False)
    torch.testing.assert_close(seen[0], first.labels, rtol=1e-6, atol=1e-7)  # the start, as the labels' parametrisation holds it
    assert ds.provenance["label_init"]["label_set_sha256"] == first.content_sha256()
    # The labels of other images (another seed's draw) never start a run.
    other = labeldistill.distill(config=_cfg(mnist_small, seed=4, epochs=1), out=tmp_path / "other", progress=False)
    with pytest.raises(UserError, match="labels other images than this run's base set"):
        initial_labels(*prepare(dataclasses.replace(cfg, label_set=str(tmp_path / "other")))[:2])
    assert not torch.equal(other.images, first.images)
    for bad in (dict(label_init="set"), dict(label_set=str(tmp_path / "first"))):  # one without the other
        with pytest.raises(UserError, match="give both or neither"):
            _cfg(mnist_small, **bad).validate()


def test_label_init_errors(mnist_small, shared_data, tmp_path, capsys):
    with pytest.raises(UserError, match="applies to learned labels"):
        _cfg(mnist_small, label_init="teacher", learn="images").validate()
    cfg, problem, _ = prepare(_cfg(mnist_small, label_init="onehot", source=f"npz:{shared_data / 'kmnist_test.npz'}"))
    assert problem.cross_dataset  # KMNIST images for an MNIST target: no classes to be one-hot in
    with pytest.raises(UserError, match="cross-dataset"):
        initial_labels(cfg, problem)
    assert main(["distill", "--target", f"npz:{mnist_small}", "--label-init", "teacher", "--temperature", "hot",
                 "--out", str(tmp_path / "x"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--temperature must be a positive number or auto" in err[0]


def test_run_teacher_refuses_a_run_without_a_teacher_start(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"config": {"seed": 0}, "label_init": {"label_init": "uniform"}}))
    with pytest.raises(UserError, match="did not start from teacher labels"):
        with run_teacher(tmp_path):
            pass
    (tmp_path / "config.json").write_text(json.dumps({"config": {"seed": 0}, "label_init": {
        "label_init": "teacher", "teacher": {"key": {"zca": {"eps": 0.1}}}, "temperature": 4.0}}))
    with pytest.raises(UserError, match="whitened"):
        with run_teacher(tmp_path):
            pass
