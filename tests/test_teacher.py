"""Teacher soft labels (``baseline --labels teacher``) and baselines under another protocol, on real MNIST images."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from labeldistill.baselines import BaselineSettings, TeacherConfig, baseline, teacher_labels, train_teacher
from labeldistill.teacher import FINAL, trained_epochs
from labeldistill.protocols import _base as protocol_base


def test_teacher_labels_are_probability_vectors_and_cached(mnist_small_target, tmp_path):
    cfg = TeacherConfig(arch="lenet", seed=0, epochs=2, patience=1)
    learner, state, rec = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path)
    assert not rec["cache"]["reused"] and rec["best_epoch"] in (1, 2) and rec["epochs_trained"] <= 2
    assert 30 < rec["val_accuracy"] <= 100 and 30 < rec["test_accuracy"] <= 100  # chance is 10 %
    x = mnist_small_target.train.x[:40]
    y = teacher_labels(learner, state, x)
    assert y.shape == (40, 10) and (y >= 0).all()
    torch.testing.assert_close(y.sum(-1), torch.ones(40), rtol=0, atol=1e-5)
    # The temperature divides the logits: higher T, flatter labels; the same argmax.
    logits = learner.logits(*learner.single(state), x)
    hot = teacher_labels(learner, state, x, temperature=4.0)
    torch.testing.assert_close(hot, torch.softmax(logits / 4.0, -1), rtol=1e-5, atol=1e-6)
    entropy = lambda p: -(p * p.clamp_min(1e-12).log()).sum(-1)  # noqa: E731
    assert (entropy(hot) > entropy(y)).all() and torch.equal(hot.argmax(-1), y.argmax(-1))
    # Cached: the same key reuses the stored teacher, with its record.
    files = [f for f in tmp_path.iterdir() if not f.name.endswith(FINAL)]  # (FINAL: its last training state, if it ran all)
    assert len(files) == 1 and files[0].name.startswith("mnist3k.npz-lenet-seed0-")
    learner2, state2, rec2 = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path)
    assert rec2["cache"]["reused"] and rec2["val_accuracy"] == rec["val_accuracy"] and rec2["test_accuracy"] == rec["test_accuracy"]
    torch.testing.assert_close(teacher_labels(learner2, state2, x), y, rtol=0, atol=0)
    # Another seed is another teacher.
    _, _, rec3 = train_teacher(mnist_small_target, dataclasses.replace(cfg, seed=1), cache_dir=tmp_path)
    assert not rec3["cache"]["reused"] and len([f for f in tmp_path.iterdir() if not f.name.endswith(FINAL)]) == 2


def test_what_the_cache_holds_of_a_teacher_is_what_its_training_finds(mnist_small_target, tmp_path, cut_teacher_training):
    """``trained_epochs`` (the dry run's view, from the files' headers alone) says what the teacher's own training then
    finds: nothing, an interrupted training's epochs, a finished teacher, a shorter teacher a longer one goes on from."""
    cfg, name = TeacherConfig(arch="lenet", seed=0, epochs=3, patience=3), mnist_small_target.name
    assert trained_epochs(tmp_path, name, cfg) == (False, 0) and trained_epochs(None, name, cfg) == (False, 0)
    cut_teacher_training(2)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(mnist_small_target, cfg, cache_dir=tmp_path)
    assert trained_epochs(tmp_path, name, cfg) == (False, 2)
    cut_teacher_training.restore()
    _, _, rec = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path)
    assert rec["resumed_after_epoch"] == 2 and trained_epochs(tmp_path, name, cfg) == (True, 3)
    longer = dataclasses.replace(cfg, epochs=5, patience=5)
    assert trained_epochs(tmp_path, name, longer) == (False, 3)
    _, _, rec = train_teacher(mnist_small_target, longer, cache_dir=tmp_path)
    assert rec["extended_from"]["epochs"] == 3 and trained_epochs(tmp_path, name, longer) == (True, 5)
    # Another seed, lr, target or numerics version is another teacher.
    for other in (dataclasses.replace(cfg, seed=1), dataclasses.replace(cfg, lr=3e-3)):
        assert trained_epochs(tmp_path, name, other) == (False, 0)
    assert trained_epochs(tmp_path, name + "-other", cfg) == (False, 0)
    import labeldistill.teacher.cache as teacher_cache
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(teacher_cache, "NUMERICS_VERSION", teacher_cache.NUMERICS_VERSION + 1)
        assert trained_epochs(tmp_path, name, cfg) == (False, 0)


def test_baseline_with_teacher_labels_end_to_end(mnist_small, tmp_path, monkeypatch, capsys, short_step_search):
    from labeldistill.cli import main

    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    args = ["baseline", "--target", f"npz:{mnist_small}", "--base", "20", "--labels", "teacher", "--teacher-epochs", "2",
            "--teacher-patience", "1", "--models", "2", "--device", "cpu", "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    r = json.loads(out[-1])
    assert r["labels"] == "teacher" and r["protocol"] == "paper" and r["temperature"] == 1.0 and r["models"] == 2
    assert f"labels of epoch {r['teacher']['best_epoch']} at temperature 1" in out[0]  # the summary says which labels
    assert r["teacher"]["arch"] == "lenet" and not r["teacher"]["cache"]["reused"] and r["accuracy_mean"] > 20
    assert main(args) == 0  # the same seed's second run shares the teacher
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["teacher"]["cache"]["reused"] and again["accuracies"] == r["accuracies"]


def test_baseline_under_a_dc_dsa_protocol_runs(mnist_small, tmp_path, monkeypatch):
    """dc-dsa's recipe (SGD, epochs, lr decay, DSA without flips for digits) on a short schedule."""
    short = dataclasses.replace(protocol_base.PROTOCOLS.get("dc-dsa"), epochs=4, arch="lenet")
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    monkeypatch.setenv("LABELDISTILL_CACHE", "off")
    s = BaselineSettings(target=f"npz:{mnist_small}", base=20, protocol="dc-dsa", models=2, device="cpu")
    r = baseline(s)
    assert r["protocol"] == "dc-dsa" and r["labels"] == "true" and r["arch"] == "lenet" and r["models"] == 2
    assert r["train_epochs"] == 4 and r["steps"] == 4 and r["batch_size"] == 20 and r["zca"] is None
    assert r["augmentation"]["strategy"] == "color_crop_cutout_scale_rotate"  # no flip for digits
    assert len(r["accuracies"]) == 2 and 0 <= r["accuracy_mean"] <= 100


def test_teacher_temperature_auto_under_a_dc_protocol(mnist_small, tmp_path, monkeypatch):
    """--temperature auto under dc-dsa: one student per grid temperature trained the protocol's way on the
    validation split (the validation-model seed stream); the best is used and every score recorded."""
    short = dataclasses.replace(protocol_base.PROTOCOLS.get("dc-dsa"), epochs=3, arch="lenet")
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path))
    from labeldistill import protocols
    from labeldistill.teacher import TEMPERATURES

    calls = []
    real = protocols.evaluate_protocol
    monkeypatch.setattr(protocols, "evaluate_protocol", lambda *a, **k: calls.append(k.get("purpose", "test-models")) or real(*a, **k))
    s = BaselineSettings(target=f"npz:{mnist_small}", base=20, protocol="dc-dsa", models=2, device="cpu", labels="teacher",
                         temperature="auto", teacher_arch="lenet", teacher_epochs=1, teacher_patience=1)
    r = baseline(s)
    choice = r["temperature_choice"]
    assert calls == ["validation-models"] * len(TEMPERATURES) + ["test-models"]  # a student per temperature, then the test
    assert r["temperature"] == choice["chosen"] and choice["val_accuracy"][str(r["temperature"])] == max(choice["val_accuracy"].values())
    assert r["labels"] == "teacher" and r["models"] == 2



def test_teacher_temperature_grid_scores_the_given_temperatures_as_auto_does(mnist_small, tmp_path, monkeypatch):
    """``grid=`` (the check beyond the default grid's end, studies/temperature_beyond_grid.py) scores just those
    temperatures, each as ``auto`` scores it: a temperature both grids hold scores the same, and the record names the grid."""
    short = dataclasses.replace(protocol_base.PROTOCOLS.get("dc-dsa"), epochs=3, arch="lenet")
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path))
    from labeldistill import paper_defaults
    from labeldistill.data import load_for_arch
    from labeldistill.engine import make_learner
    from labeldistill.problem import build_problem
    from labeldistill.teacher import TEMPERATURES, teacher_soft_labels

    s = BaselineSettings(target=f"npz:{mnist_small}", base=20, protocol="dc-dsa", models=1, device="cpu", labels="teacher",
                         temperature="auto", teacher_arch="lenet", teacher_epochs=1, teacher_patience=1)
    auto = baseline(s)["temperature_choice"]
    target = load_for_arch(s.target, "lenet", seed=0, device="cpu")
    problem = build_problem(target, 20, 0)
    learner = make_learner("lenet", 1, 28, 10)
    _, rec = teacher_soft_labels(problem, proto=short, zca=None, student=learner, seed=0, arch="lenet", epochs=1, patience=1,
                                 temperature="auto", batch=paper_defaults.inner_batch_size(20, target.name), lr=1e-3,
                                 grid=(0.5, 1.0, 16.0))
    choice = rec["temperature_choice"]
    assert auto["grid"] == list(TEMPERATURES) and choice["grid"] == [0.5, 1.0, 16.0]
    assert sorted(choice["val_accuracy"]) == ["0.5", "1.0", "16.0"]
    assert choice["val_accuracy"]["1.0"] == auto["val_accuracy"]["1.0"]  # the same student, from the same seeds
    assert rec["temperature"] == choice["chosen"] and choice["val_accuracy"][str(choice["chosen"])] == max(choice["val_accuracy"].values())

def test_default_teacher_is_the_datasets_cheap_architecture_where_it_fits():
    from labeldistill.teacher import default_teacher_arch

    assert default_teacher_arch("mnist", 1, 28) == "lenet"  # under every protocol (ConvNet-3 costs ~60x more per epoch here)
    assert default_teacher_arch("cifar10", 3, 32) == "alexnet"
    assert default_teacher_arch("digits", 1, 8) == "convnet3"  # 8 px images as a dc protocol loads them: LeNet cannot take them


def test_baseline_saves_its_labelled_set_which_evaluates_to_its_numbers(mnist_small, tmp_path, monkeypatch, capsys,
                                                                         short_step_search):
    """``baseline --save-set FILE``: the base images with the labels the baseline tested, as a distilled-set file;
    evaluating it under the same protocol and seed trains the same models: the baseline's accuracies, exactly."""
    from labeldistill.artifact import load
    from labeldistill.cli import main
    from labeldistill.data import load_for_arch
    from labeldistill.problem import build_problem

    short = dataclasses.replace(protocol_base.PROTOCOLS.get("dc-dsa"), epochs=2, arch="lenet")
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    target = f"npz:{mnist_small}"
    common = ["--target", target, "--base", "20", "--models", "2", "--device", "cpu", "--json"]

    def last_json() -> dict:
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert main(["baseline", *common, "--labels", "teacher", "--temperature", "2", "--teacher-epochs", "2",
                 "--teacher-patience", "1", "--protocol", "dc-dsa", "--save-set", str(tmp_path / "teacher.safetensors")]) == 0
    r = last_json()
    ds = load(tmp_path / "teacher.safetensors")
    problem = build_problem(load_for_arch(target, "lenet", seed=0, device="cpu"), 20, 0)
    torch.testing.assert_close(ds.images, problem.base_x, rtol=0, atol=0)
    learner, state, _ = train_teacher(problem.target, TeacherConfig(arch="lenet", seed=0, epochs=2, patience=1))  # the cached one
    torch.testing.assert_close(ds.labels, teacher_labels(learner, state, problem.base_x, 2.0), rtol=0, atol=0)
    assert ds.steps is None and ds.recipe["test_protocol"] == "dc-dsa" and ds.recipe["method"] == "baseline"
    assert ds.provenance["labels"]["kind"] == "teacher" and ds.provenance["labels"]["temperature"] == 2.0
    assert ds.provenance["base_indices"] == r["base_indices"] and r["saved_set"] == str(tmp_path / "teacher.safetensors")
    assert main(["evaluate", str(tmp_path / "teacher.safetensors"), "--target", target, "--models", "2", "--device", "cpu",
                 "--json"]) == 0
    assert last_json()["accuracies"] == r["accuracies"]  # its own protocol, the same seeds: the same models
    assert main(["export", str(tmp_path / "teacher.safetensors"), "--out", str(tmp_path / "shared.safetensors")]) == 0
    assert "a baseline's labels (not learned), no T (trains by dc-dsa)" in capsys.readouterr().out
    torch.testing.assert_close(load(tmp_path / "shared.safetensors").labels, ds.labels, rtol=0, atol=0)

    # The paper protocol's set carries the T its step search chose; true labels, smoothed as asked.
    assert main(["baseline", *common, "--smoothing", "0.1", "--save-set", str(tmp_path / "ls.safetensors")]) == 0
    r = last_json()
    ds = load(tmp_path / "ls.safetensors")
    assert ds.steps == r["steps"] and ds.recipe.get("test_protocol") is None and ds.provenance["labels"]["kind"] == "true"
    torch.testing.assert_close(ds.labels.max(-1).values, torch.full((20,), 0.91), rtol=0, atol=1e-6)
    assert main(["evaluate", str(tmp_path / "ls.safetensors"), "--target", target, "--models", "2", "--device", "cpu",
                 "--json"]) == 0
    assert last_json()["accuracies"] == r["accuracies"]

    # A folder that is not there is said before any training, in one line.
    assert main(["baseline", *common, "--save-set", str(tmp_path / "nowhere" / "x.safetensors")]) != 0
    assert "does not exist" in capsys.readouterr().err


def test_public_baseline_is_the_baselines_run(mnist_small, short_step_search):
    import labeldistill
    from labeldistill.errors import UserError

    s = BaselineSettings(target=f"npz:{mnist_small}", base=20, models=2, device="cpu", smoothing=0.1)
    r = labeldistill.baseline(s.target, base=20, models=2, device="cpu", smoothing=0.1)
    direct = baseline(s)
    assert r["accuracies"] == direct["accuracies"] and r["steps"] == direct["steps"]
    with pytest.raises(UserError, match="Unknown baseline setting"):
        labeldistill.baseline(s.target, bases=20)


def test_teacher_recipe_reaches_the_teacher_from_both_commands(mnist_small, tmp_path, monkeypatch, capsys, short_step_search):
    from labeldistill.cli import main
    from labeldistill.distill import DistillConfig
    from labeldistill.errors import UserError

    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    assert main(["baseline", "--target", f"npz:{mnist_small}", "--base", "20", "--labels", "teacher", "--teacher-recipe", "expert",
                 "--teacher-lr", "0.01", "--teacher-epochs", "1", "--teacher-patience", "1", "--models", "2", "--device", "cpu",
                 "--json"]) == 0
    config = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["teacher"]["config"]
    assert (config["optimizer"], config["lr"], config["augment"]) == ("sgd", 0.01, "dsa")
    with pytest.raises(SystemExit):  # argparse names the two
        main(["baseline", "--target", f"npz:{mnist_small}", "--teacher-recipe", "sgd"])
    assert "invalid choice: 'sgd' (choose from 'adam', 'expert')" in capsys.readouterr().err
    with pytest.raises(UserError, match="Unknown teacher recipe"):
        DistillConfig(target="mnist", label_init="teacher", teacher_recipe="fast").validate()
