"""The teacher epoch that labels (``--teacher-epoch best | auto | N``): the weights of the epochs asked for kept beside
the cached teacher, equal to the teacher trained without them, resumable; ``auto`` chooses the epoch whose labels train the best
validation student (Qin et al.'s early-stopped expert), on real MNIST images."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from labeldistill.baselines import BaselineSettings, TeacherConfig, baseline, train_teacher
from labeldistill.engine import accuracy, predict
from labeldistill.errors import UserError
from labeldistill.protocols import _base as protocol_base
from labeldistill.runs.tensorstate import load_state
from labeldistill.teacher import cache as teacher_cache
from labeldistill.teacher import config as teacher_config_module  # TEACHER_EPOCHS: read there at call time
from labeldistill.teacher import labels as teacher_labels_module
from labeldistill.teacher import train as teacher_train


def test_epochs_kept_equal_the_teacher_and_its_cache(mnist_small_target, tmp_path):
    import labeldistill.teacher as teacher_mod

    cfg = TeacherConfig(arch="lenet", seed=0, epochs=3, patience=3)
    _, best, rec = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path)
    learner, epochs, rec_e = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path, epochs=(1, 2, 3))
    # The cached teacher had no epochs file: it trained again, the same way, and wrote one beside it.
    assert not rec_e["cache"]["reused"] and sorted(epochs) == [1, 2, 3] == sorted(int(e) for e in rec["validation_curve"])
    assert len(list(tmp_path.glob("*.epochs.safetensors"))) == 1 and rec_e["same_as_cached"] is True
    for n, t in best.params.items():  # the best epoch's weights are the teacher's, bit for bit
        torch.testing.assert_close(epochs[rec["best_epoch"]].params[n], t, rtol=0, atol=0)
    # Each epoch's weights score what the validation curve recorded for that epoch.
    for e, st in epochs.items():
        acc = float(accuracy(learner, st, mnist_small_target.val.x, mnist_small_target.val.y)[0]) * 100
        assert acc == pytest.approx(rec["validation_curve"][str(e)], abs=1e-3)
    assert any(not torch.equal(epochs[1].params[n], t) for n, t in epochs[3].params.items())  # epochs differ
    # Now both files are there: reused, the same weights.
    _, again, rec_a = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path, epochs=(1, 2, 3))
    assert rec_a["cache"]["reused"]
    for e in epochs:
        for n, t in epochs[e].params.items():
            torch.testing.assert_close(again[e].params[n], t, rtol=0, atol=0)
    # The plain teacher still reads its own file (the epochs are a request, not another teacher).
    _, _, rec_b = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path)
    assert rec_b["cache"]["reused"] and len(list(tmp_path.glob("*.safetensors"))) == 3  # + its last training state
    assert len(list(tmp_path.glob("*" + teacher_mod.FINAL))) == 1


def test_only_the_epochs_asked_for_are_kept_and_a_later_request_adds_its_own(mnist_small_target, tmp_path,
                                                                              cut_teacher_training):
    """By default the grid ``auto`` scores (TEACHER_EPOCHS: 1, 2, 4, ...) and the best epoch, not every epoch: the
    partial and epochs files hold those only; an epoch asked for later trains the teacher again (the same weights) and
    the file then holds both requests' epochs; a partial file holding more epochs resumes, thinned."""
    import labeldistill.teacher as teacher_mod

    cfg = TeacherConfig(arch="lenet", seed=0, epochs=3, patience=3)
    _, every, rec = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "every", epochs=(1, 2, 3))
    best = rec["best_epoch"]
    cut_teacher_training(2)
    with pytest.raises(KeyboardInterrupt):  # a partial file of every epoch so far (as teachers wrote them until session 45)
        teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "grid", epochs=(1, 2, 3))
    cut_teacher_training.restore()
    _, grid, rec_g = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "grid")
    assert rec_g["resumed_after_epoch"] == 2 and sorted(grid) == sorted({1, 2, best})
    epochs_file = next((tmp_path / "grid").glob("*.epochs.safetensors"))
    assert sorted(load_state(epochs_file)["epochs"]) == [1, 2]  # 3 is not on the grid (the best is in the teacher's file)
    for e, st in grid.items():
        for n, t in st.params.items():
            assert torch.equal(every[e].params[n], t), (e, n)
    # Epoch 3 by number: not kept, so the teacher trains again and keeps it beside the grid's epochs.
    _, third, rec_3 = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "grid", epochs=(3,))
    assert not rec_3["cache"]["reused"] and rec_3["same_as_cached"] and sorted(third) == sorted({3, best})
    assert sorted(load_state(epochs_file)["epochs"]) == [1, 2, 3]
    for n, t in third[3].params.items():
        assert torch.equal(every[3].params[n], t), n
    _, again, rec_a = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "grid", epochs=(1, 3))
    assert rec_a["cache"]["reused"] and sorted(again) == sorted({1, 3, best})


def test_teacher_training_shows_its_epochs(mnist_small_target, tmp_path, capsys, cut_teacher_training):
    cfg = TeacherConfig(arch="lenet", seed=0, epochs=3, patience=3)
    cut_teacher_training(2)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(mnist_small_target, cfg, cache_dir=tmp_path, progress=True)
    cut_teacher_training.restore()
    first = capsys.readouterr().err
    assert "teacher lenet on " in first and "2/3" in first and "val=" in first
    _, _, rec = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path, progress=True)
    resumed = capsys.readouterr().err  # the bar goes on from the epoch the cut training checkpointed
    assert rec["resumed_after_epoch"] == 2 and "3/3" in resumed and "0/3" not in resumed and "1/3" not in resumed
    train_teacher(mnist_small_target, cfg, cache_dir=tmp_path, progress=True)
    assert "teacher lenet" not in capsys.readouterr().err  # a cached teacher trains nothing: no bar
    train_teacher(mnist_small_target, cfg, cache_dir=tmp_path / "quiet")
    assert "teacher lenet" not in capsys.readouterr().err  # the default is quiet


def test_epochs_resume_from_a_cut_training(mnist_small_target, tmp_path, cut_teacher_training):
    import labeldistill.teacher as teacher_mod

    cfg = TeacherConfig(arch="lenet", seed=0, epochs=3, patience=3)
    _, whole, _ = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "whole", epochs=(1, 2, 3))
    # A partial file without the epochs (a plain teacher's) cannot give them: the training starts afresh.
    cut_teacher_training(2)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(mnist_small_target, cfg, cache_dir=tmp_path / "cut")
    partial = next((tmp_path / "cut").glob("*.partial.safetensors"))
    assert "epochs" not in load_state(partial)
    with pytest.raises(KeyboardInterrupt):
        teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "cut", epochs=(1, 2, 3))
    assert sorted(load_state(partial)["epochs"]) == [1, 2]
    cut_teacher_training.restore()
    _, resumed, rec = teacher_mod.train_teacher_epochs(mnist_small_target, cfg, cache_dir=tmp_path / "cut", epochs=(1, 2, 3))
    assert rec["resumed_after_epoch"] == 2 and sorted(resumed) == [1, 2, 3]
    for e in whole:
        for n, t in whole[e].params.items():
            torch.testing.assert_close(resumed[e].params[n], t, rtol=0, atol=0)


def test_teacher_epoch_auto_chooses_the_epoch_its_students_score_best(mnist_small, mnist_small_target, tmp_path, monkeypatch):
    """One validation student per candidate epoch (the grid's epochs that were trained, and the best), at the given
    temperature; the best-scoring epoch labels (the earliest on ties), and the test trains on its labels."""
    short = dataclasses.replace(protocol_base.PROTOCOLS.get("dc-dsa"), epochs=3, arch="lenet")
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path))
    import labeldistill.teacher as teacher_mod
    from labeldistill import protocols

    scored: list[torch.Tensor] = []
    real = protocols.evaluate_protocol

    def spy(proto, learner, x, labels, *a, **k):
        if k.get("purpose") == "validation-models":
            scored.append(labels.clone())
        return real(proto, learner, x, labels, *a, **k)

    monkeypatch.setattr(protocols, "evaluate_protocol", spy)
    monkeypatch.setattr(teacher_config_module, "TEACHER_EPOCHS", (1, 2))  # with the best epoch (the teacher trains 3 epochs here)
    s = BaselineSettings(target=f"npz:{mnist_small}", base=20, protocol="dc-dsa", models=1, device="cpu", labels="teacher",
                         temperature=2.0, teacher_arch="lenet", teacher_epochs=3, teacher_patience=3, teacher_epoch="auto")
    r = baseline(s)
    choice = r["epoch_choice"]
    best = r["teacher"]["best_epoch"]
    assert choice["grid"] == sorted({1, 2, best}) and choice["temperature"] == 2.0 and r["temperature"] == 2.0
    assert len(scored) == len(choice["grid"])  # one student per candidate, none for the temperature (given)
    top = max(choice["val_accuracy"].values())
    assert r["epoch"] == choice["chosen"] == min(e for e in choice["grid"] if choice["val_accuracy"][str(e)] == top)
    # Each candidate's student trained on that epoch's labels at T = 2; the chosen one's labels are the test's.
    target = mnist_small_target
    learner, epochs, _ = teacher_mod.train_teacher_epochs(target, TeacherConfig(arch="lenet", seed=0, epochs=3, patience=3))
    from labeldistill.problem import build_problem

    problem = build_problem(target, 20, 0)
    assert [int(i) for i in problem.base_index] == r["base_indices"]
    bx = problem.base_x
    for e, y in zip(choice["grid"], scored):
        torch.testing.assert_close(y, torch.softmax(predict(learner, epochs[e], bx)[0].float() / 2.0, -1))
    # A given epoch: those weights, no student; an epoch the teacher never reached: a clear error.
    r2 = baseline(dataclasses.replace(s, teacher_epoch=1))
    assert r2["epoch"] == 1 and "epoch_choice" not in r2 and len(scored) == len(choice["grid"])
    if r["epoch"] == 1:
        assert r2["accuracies"] == r["accuracies"]
    with pytest.raises(UserError, match="trained 3 epochs"):
        baseline(dataclasses.replace(s, teacher_epoch=9))
    with pytest.raises(UserError, match="best, auto or a positive epoch"):
        baseline(dataclasses.replace(s, teacher_epoch="early"))
    # The default keeps today's record: the best epoch labels, no epoch fields.
    r3 = baseline(dataclasses.replace(s, teacher_epoch="best"))
    assert "epoch" not in r3 and "epoch_choice" not in r3
    if r["epoch"] == best:
        assert r3["accuracies"] == r["accuracies"]


def test_epoch_and_temperature_both_auto_take_one_coordinate_step_each(mnist_small_target, tmp_path, monkeypatch):
    """Temperature at the best epoch, then the epoch at that temperature, then the temperature again at the epoch
    chosen: each step's scores recorded; a scripted scorer (a score per (epoch, temperature)) decides."""
    import labeldistill.teacher as teacher_mod
    from labeldistill.engine import make_learner
    from labeldistill.problem import build_problem

    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(teacher_config_module, "TEACHER_EPOCHS", (1, 2))
    cfg = TeacherConfig(arch="lenet", seed=0, epochs=3, patience=3)
    learner, epochs, rec = teacher_mod.train_teacher_epochs(mnist_small_target, cfg)
    best = rec["best_epoch"]
    problem = build_problem(mnist_small_target, 20, 0)
    early = min(e for e in (1, 2) if e != best)
    table = {(e, t): 50.0 for e in epochs for t in teacher_mod.TEMPERATURES}
    table[(best, 1.0)] = 60.0  # at the best epoch, T 1 wins ...
    table[(early, 1.0)] = 70.0  # ... at T 1 the early epoch beats it ...
    table[(early, 4.0)] = 80.0  # ... and at that epoch T 4 wins
    logits = {e: predict(learner, st, problem.base_x)[0].float() for e, st in epochs.items()}

    def scripted(*a, **k):
        def score(y):
            found = [(e, t) for (e, t) in table if torch.allclose(y, torch.softmax(logits[e] / t, -1), atol=1e-6)]
            assert len(found) == 1
            return table[found[0]]
        return score

    monkeypatch.setattr(teacher_labels_module, "validation_scorer", scripted)
    student = make_learner("lenet", 1, 28, 10)
    labels, r = teacher_mod.teacher_soft_labels(problem, proto=None, zca=None, student=student, seed=0, arch="lenet", epochs=3,
                                                patience=3, temperature="auto", batch=10, lr=1e-3, epoch="auto")
    assert r["temperature_choice_at_best_epoch"]["chosen"] == 1.0 and r["temperature_choice_at_best_epoch"]["epoch"] == best
    assert r["epoch_choice"]["chosen"] == early and r["epoch_choice"]["temperature"] == 1.0
    assert r["epoch_choice"]["val_accuracy"][str(early)] == 70.0
    assert r["temperature_choice"]["epoch"] == early and r["temperature"] == 4.0 == r["temperature_choice"]["chosen"]
    assert r["epoch"] == early
    torch.testing.assert_close(labels, torch.softmax(logits[early] / 4.0, -1))


def test_default_teacher_keeps_its_cache_key_and_the_expert_recipe_trains_with_sgd_on_dsa_views(mnist_small_target, tmp_path,
                                                                                               monkeypatch, cut_teacher_training):
    """The fields of session 38 (optimizer, momentum, augment) enter a teacher's key only where not the default: a
    teacher trained the one way there was keeps its key and cache file. ``teacher_config(recipe="expert")`` trains
    by plain SGD on DSA views (no flips for digits), cached apart, resumable bit for bit (the views' draws included)."""
    import labeldistill.teacher as teacher_mod
    from labeldistill.errors import UserError

    cheap = teacher_mod.teacher_config("lenet", seed=0, epochs=2, patience=2)
    assert cheap == TeacherConfig(arch="lenet", seed=0, epochs=2, patience=2)
    key = teacher_cache._teacher_key(mnist_small_target, cheap, None)
    assert sorted(key["teacher"]) == ["arch", "batch_size", "epochs", "lr", "patience", "seed"]  # as before session 38
    expert = teacher_mod.teacher_config("lenet", seed=0, epochs=2, patience=2, recipe="expert")
    assert (expert.optimizer, expert.lr, expert.momentum, expert.augment) == ("sgd", 1e-3, 0.0, "dsa")
    assert teacher_mod.teacher_config("lenet", seed=0, epochs=2, patience=2, recipe="expert", lr=0.01).lr == 0.01
    e_key = teacher_cache._teacher_key(mnist_small_target, expert, None)["teacher"]
    assert (e_key["optimizer"], e_key["augment"]) == ("sgd", "dsa") and "momentum" not in e_key  # 0.0 is the default
    with pytest.raises(UserError, match="Unknown teacher recipe"):
        teacher_mod.teacher_config("lenet", seed=0, epochs=2, patience=2, recipe="sgd")

    recipes = []
    real = teacher_train.train_models
    monkeypatch.setattr(teacher_train, "train_models", lambda *a, **k: recipes.append(k["recipe"]) or real(*a, **k))
    _, whole, rec = train_teacher(mnist_small_target, expert, cache_dir=tmp_path / "whole")
    r = recipes[-1]
    assert (r.optimizer, r.lr, r.momentum, r.weight_decay) == ("sgd", 1e-3, 0.0, 0.0)
    assert r.augmentation is not None and "flip" not in r.augmentation.strategy and "rotate" in r.augmentation.strategy
    assert rec["config"]["augment"] == "dsa"
    _, plain, _ = train_teacher(mnist_small_target, cheap, cache_dir=tmp_path / "whole")
    assert recipes[-1].optimizer == "adam" and recipes[-1].augmentation is None
    assert len(list((tmp_path / "whole").glob("*.safetensors"))) == 4  # two teachers, each with its last training state
    monkeypatch.setattr(teacher_train, "train_models", real)
    cut_teacher_training(1)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(mnist_small_target, expert, cache_dir=tmp_path / "cut")
    cut_teacher_training.restore()
    _, resumed, rec_r = train_teacher(mnist_small_target, expert, cache_dir=tmp_path / "cut")
    assert rec_r["resumed_after_epoch"] == 1 and rec_r["validation_curve"] == rec["validation_curve"]
    for n, t in whole.params.items():
        torch.testing.assert_close(resumed.params[n], t, rtol=0, atol=0)
