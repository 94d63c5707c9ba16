"""A recipe training checkpointed and resumed goes on exactly as without the interruption (``train_models(...,
checkpoint=, resume=)``), through a state file; and a teacher's training, cut after an epoch, resumes from its file."""
from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from labeldistill.baselines import TeacherConfig, train_teacher
from labeldistill.engine import Learner, RecipeCheckpoint, train_models
from labeldistill.engine.augment import DSAParams
from labeldistill.engine.recipe import TrainRecipe
from labeldistill.models import build_model
from labeldistill.runs.tensorstate import load_state, save_state


def _small64():
    return build_model("convnet3", 1, 8, 3).double()


def _data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(14, 1, 8, 8, dtype=torch.float64, generator=g)
    y = torch.softmax(2 * torch.randn(14, 3, dtype=torch.float64, generator=g), -1)
    return x, y


RECIPES = {
    # momentum restarted at the decay, the last minibatch of an epoch smaller (14 = 5 + 5 + 4), DSA per model
    "sgd-decay-dsa": TrainRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=4, lr_decay_epochs=(2,),
                                 reset_momentum_at_decay=True, augmentation=DSAParams().without("flip")),
    "adam": TrainRecipe(optimizer="adam", lr=1e-2, epochs=4),
    "random-minibatches": TrainRecipe(optimizer="sgd", lr=0.05, momentum=0.9),  # no epochs: T random minibatches
}


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.parametrize("cut", [6, 7])  # after epoch 2 (3 steps an epoch), and within epoch 3
def test_resumed_training_equals_the_uninterrupted_one(name, cut, tmp_path):
    recipe, (x, y) = RECIPES[name], _data()
    learner, seeds = Learner(_small64), [3, 4]
    whole = train_models(learner, x, y, 12, seeds, batch_size=5, recipe=recipe, mode="loop")
    taken: list[RecipeCheckpoint] = []

    def keep(ck: RecipeCheckpoint) -> None:  # saved at once, as a caller must: the tensors are the training's own
        save_state(tmp_path / f"at{ck.step}.safetensors", ck.to_dict())
        taken.append(ck)

    train_models(learner, x, y, 12, seeds, batch_size=5, recipe=recipe, mode="loop", observe_at=[cut], checkpoint=keep)
    assert [ck.step for ck in taken] == [cut]
    resume = RecipeCheckpoint.from_dict(load_state(tmp_path / f"at{cut}.safetensors"))
    resumed = train_models(learner, x, y, 12, seeds, batch_size=5, recipe=recipe, mode="loop", resume=resume)
    for part in ("params", "head"):
        for n, t in getattr(whole, part).items():
            torch.testing.assert_close(getattr(resumed, part)[n], t, rtol=0, atol=0)
    # Not vacuous: the checkpoint's models are not the finished ones.
    assert any(not torch.equal(resume.params[n], t) for n, t in whole.params.items())


def test_a_checkpoint_needs_a_recipe_and_the_same_augmentation(tmp_path):
    x, y = _data()
    learner = Learner(_small64)
    with pytest.raises(ValueError, match="recipe"):
        train_models(learner, x, y, 3, [0], batch_size=5, checkpoint=lambda ck: None)
    taken: list[RecipeCheckpoint] = []
    plain = TrainRecipe(optimizer="sgd", lr=0.05, epochs=2)
    train_models(learner, x, y, 1, [0], batch_size=5, recipe=plain, observe_at=[3], checkpoint=taken.append)
    with pytest.raises(ValueError, match="without augmentation"):
        train_models(learner, x, y, 1, [0], batch_size=5, recipe=dataclasses.replace(plain, augmentation=DSAParams()),
                     resume=taken[0])


def test_teacher_training_cut_after_an_epoch_resumes_to_the_same_teacher(mnist_small_target, tmp_path, cut_teacher_training):
    import labeldistill.teacher.cache as teacher_cache

    cfg = TeacherConfig(arch="lenet", seed=0, epochs=4, patience=4)
    _, whole, rec = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path / "whole")
    assert not list((tmp_path / "whole").glob("*.partial.*"))  # a finished training leaves no partial file
    cut_teacher_training(2)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(mnist_small_target, cfg, cache_dir=tmp_path / "cut")
    partial = list((tmp_path / "cut").glob("*.partial.safetensors"))
    assert len(partial) == 1 and load_state(partial[0])["training"]["step"] == 20
    cut_teacher_training.restore()
    _, resumed, rec2 = train_teacher(mnist_small_target, cfg, cache_dir=tmp_path / "cut")
    assert rec2["resumed_after_epoch"] == 2 and "resumed_after_epoch" not in rec
    for k in ("val_accuracy", "best_epoch", "epochs_trained", "test_accuracy", "validation_curve"):
        assert rec2[k] == rec[k], k
    for n, t in whole.params.items():
        torch.testing.assert_close(resumed.params[n], t, rtol=0, atol=0)
    assert not list((tmp_path / "cut").glob("*.partial.*"))
    # A partial file of another teacher (its key differs) is not used: that training starts afresh.
    other = dataclasses.replace(cfg, seed=1)
    cut_teacher_training(2)
    (tmp_path / "cut2").mkdir()
    with pytest.raises(KeyboardInterrupt):
        train_teacher(mnist_small_target, cfg, cache_dir=tmp_path / "cut2")
    cut_teacher_training.restore()
    stale = next((tmp_path / "cut2").glob("*.partial.safetensors"))
    target = teacher_cache._teacher_file(tmp_path / "cut2", mnist_small_target.name, other, teacher_cache._teacher_key(mnist_small_target, other, None))
    stale.rename(target.with_name(target.stem + ".partial.safetensors"))
    _, _, rec3 = train_teacher(mnist_small_target, other, cache_dir=tmp_path / "cut2")
    assert "resumed_after_epoch" not in rec3


@pytest.mark.parametrize("recipe", ["adam", "expert"])  # expert: SGD on DSA views (the augmenter's streams go on too)
def test_a_longer_teacher_goes_on_from_a_shorter_one_and_equals_its_own_training(mnist_small_target, tmp_path, recipe):
    from labeldistill.teacher import FINAL, teacher_config, train_teacher_epochs

    cfg = lambda epochs, patience: teacher_config("lenet", seed=0, epochs=epochs, patience=patience, recipe=recipe)  # noqa: E731
    _, fresh, rec = train_teacher_epochs(mnist_small_target, cfg(4, 4), cache_dir=tmp_path / "fresh", epochs=range(1, 5))
    _, _, short = train_teacher_epochs(mnist_small_target, cfg(2, 2), cache_dir=tmp_path / "shared", epochs=range(1, 5))
    assert len(list((tmp_path / "shared").glob("*" + FINAL))) == 1 and "extended_from" not in short
    _, went_on, rec2 = train_teacher_epochs(mnist_small_target, cfg(4, 4), cache_dir=tmp_path / "shared", epochs=range(1, 5))
    assert rec2["extended_from"]["epochs"] == 2 and "resumed_after_epoch" not in rec2
    for k in ("val_accuracy", "best_epoch", "epochs_trained", "test_accuracy", "validation_curve"):
        assert rec2[k] == rec[k], k
    assert sorted(went_on) == sorted(fresh) == [1, 2, 3, 4]
    for e, st in fresh.items():
        for n, t in st.params.items():
            assert torch.equal(went_on[e].params[n], t), (e, n)
    assert len(list((tmp_path / "shared").glob("*" + FINAL))) == 2  # the longer one can be continued in turn


def test_a_teacher_stops_where_the_shared_rule_says(mnist_small_target, tmp_path, monkeypatch):
    """The training's early stop is ``_stops_by``'s: a scripted validation curve (a tie with the best is no
    improvement) stops a 6-epoch teacher of patience 2 at epoch 4, its best epoch 2."""
    import labeldistill.teacher.train as teacher_train
    from labeldistill.teacher import teacher_config, train_teacher
    from labeldistill.teacher.config import _stops_by

    script = iter([0.50, 0.60, 0.60, 0.59, 0.70, 0.71])
    real = teacher_train.accuracy
    monkeypatch.setattr(teacher_train, "accuracy",
                        lambda learner, st, x, y: (next(script),) if x is mnist_small_target.val.x else real(learner, st, x, y))
    _, _, rec = train_teacher(mnist_small_target, teacher_config("lenet", seed=0, epochs=6, patience=2), cache_dir=None)
    curve = {int(e): v for e, v in rec["validation_curve"].items()}
    assert rec["epochs_trained"] == 4 == _stops_by(curve, 2) and rec["best_epoch"] == 2 and sorted(curve) == [1, 2, 3, 4]


def test_a_longer_teacher_whose_patience_would_have_stopped_it_earlier_trains_afresh(mnist_small_target, tmp_path):
    from labeldistill.teacher import FINAL, teacher_config, train_teacher
    from labeldistill.teacher.config import _stops_by

    assert _stops_by({1: 50.0, 2: 60.0, 3: 59.0, 4: 58.0}, 2) == 4 and _stops_by({1: 50.0, 2: 60.0, 3: 59.0}, 2) is None
    assert _stops_by({1: 60.0, 2: 60.0}, 1) == 2  # a tie is no improvement (the observer's strict >)
    cfg = lambda epochs, patience, **kw: teacher_config("lenet", seed=0, epochs=epochs, patience=patience, **kw)  # noqa: E731
    train_teacher(mnist_small_target, cfg(3, 3), cache_dir=tmp_path / "a")
    # The shorter teacher's record, as if its epoch 3 had not improved on epoch 2: a patience of 1 would have stopped
    # a longer training there, so that one trains afresh; with a patience of 2 it goes on.
    for patience, goes_on in ((1, False), (2, True)):
        folder = tmp_path / f"p{patience}"
        shutil.copytree(tmp_path / "a", folder)
        final = next(folder.glob("*" + FINAL))
        saved = load_state(final)
        saved["curve"] = {"1": 50.0, "2": 60.0, "3": 59.0}
        save_state(final, saved)
        _, _, rec = train_teacher(mnist_small_target, cfg(5, patience), cache_dir=folder)
        assert ("extended_from" in rec) == goes_on, patience
    # Another setting (here the lr) is another teacher: never continued from this one.
    _, _, other = train_teacher(mnist_small_target, cfg(5, 5, lr=3e-3), cache_dir=tmp_path / "a")
    assert "extended_from" not in other
