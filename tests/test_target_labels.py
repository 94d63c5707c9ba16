"""``--target-labels teacher``: the loop's target loss against a teacher's probabilities on the target images.

The second-order label meta-gradient with probability-vector targets against finite differences of the loss
recomputed by hand (float64; ridge's: tests/test_strategies.py), the error counted against the targets' most probable class, one-hot targets giving the
class-index step; the run end to end on real MNIST (the teacher's record, a different set than with true classes, the
same set again on resume of the same settings), and the settings that do not combine with it.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from labeldistill.distill import DistillConfig, distill_many
from labeldistill.distill.batched import batchable
from labeldistill.distill.run import RunSession
from labeldistill.distill.strategies import STRATEGIES
from labeldistill.engine import Learner
from labeldistill.errors import UserError
from test_strategies import ALPHA, TinyMLP, _central_differences, _problem, _ridge_setup, _second_order_loss_by_hand


def _soft_targets(m: int, classes: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(m, classes, dtype=torch.float64, generator=g), -1)


@pytest.mark.parametrize("kind", ["jvp", "double-backward"])
def test_second_order_with_probability_targets_equals_finite_differences(kind):
    learner = Learner(lambda: TinyMLP().double())
    state = learner.init([4])
    xb, yb, xt, _ = _problem((1, 3, 4), 3, n=3, m=5, seed=1)
    yt = _soft_targets(5, 3, seed=2)
    params = {n: p[0].detach().clone() for n, p in state.params.items()}
    out = STRATEGIES.get("second-order")(inner_lr=ALPHA, meta_gradient=kind).step(learner, state, xb, yb, xt, yt)
    module = TinyMLP().double()
    fd = _central_differences(lambda y: _second_order_loss_by_hand(module, params, xb, y, xt, yt), yb)
    assert fd.abs().max() > 1e-6
    torch.testing.assert_close(out.label_grad, fd, rtol=1e-5, atol=1e-9)
    assert out.loss.item() == pytest.approx(_second_order_loss_by_hand(module, params, xb, yb, xt, yt), rel=1e-10)
    # the error counts against the targets' most probable class
    theta = {n: t.requires_grad_() for n, t in ((n, p.clone()) for n, p in params.items())}
    g = torch.autograd.grad(-(yb * torch.log_softmax(functional_call(module, theta, (xb,)), -1)).sum(-1).mean(), list(theta.values()))
    theta1 = {n: theta[n].detach() - ALPHA * gi for n, gi in zip(theta, g)}
    pred = functional_call(module, theta1, (xt,)).argmax(-1)
    assert out.error.item() == pytest.approx((pred != yt.argmax(-1)).double().mean().item())


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_one_hot_targets_give_the_class_index_step(method):
    """Probability vectors that are one-hot are the class indices: the same loss, label gradient and error."""
    outs = []
    for onehot in (False, True):
        learner, state, xb, yb, xt, yt = _ridge_setup(seed=2)
        if method == "second-order":
            learner = Learner(lambda: TinyMLP(12, 5, 3).double())
            state = learner.init([2])
        target = F.one_hot(yt, 3).double() if onehot else yt
        outs.append(STRATEGIES.get(method)().step(learner, state, xb, yb, xt, target))
    a, b = outs
    torch.testing.assert_close(b.label_grad, a.label_grad, rtol=1e-12, atol=1e-15)
    assert b.loss.item() == pytest.approx(a.loss.item(), rel=1e-12) and b.error.item() == a.error.item()


def _cfg(mnist_small, **kw) -> DistillConfig:
    base = dict(target=f"npz:{mnist_small}", base=20, method="ridge", epochs=2, val_every=1, test_models=2, target_batch=256,
                device="cpu", seed=3, teacher_epochs=2)
    return DistillConfig(**{**base, **kw})


def test_a_run_with_teacher_targets(mnist_small, tmp_path, monkeypatch):
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    true_run, teacher_run = distill_many([_cfg(mnist_small), _cfg(mnist_small, target_labels="teacher", target_temperature=2.0)],
                                         progress=False, outs=[tmp_path / "true", tmp_path / "teacher"])
    rec = teacher_run.provenance["target_labels"]
    assert rec["target_labels"] == "teacher" and rec["temperature"] == 2.0 and rec["teacher"]["arch"] == "lenet"
    assert 0.5 < rec["argmax_agrees_with_true_classes"] <= 1.0
    assert "target_labels" not in true_run.provenance
    assert not torch.equal(true_run.labels, teacher_run.labels)  # the target loss changed the labels learned
    # the same settings again (the teacher from the cache): the same set bit for bit
    again = distill_many([_cfg(mnist_small, target_labels="teacher", target_temperature=2.0)], progress=False)[0]
    assert torch.equal(again.labels, teacher_run.labels)


def test_what_does_not_combine_with_teacher_targets(mnist_small):
    with pytest.raises(UserError, match="target-scale fitted"):
        _cfg(mnist_small, target_labels="teacher", target_scale="fitted").validate()
    with pytest.raises(UserError, match="--target-labels must be one of"):
        _cfg(mnist_small, target_labels="soft").validate()
    with pytest.raises(UserError, match="--target-temperature"):
        _cfg(mnist_small, target_labels="teacher", target_temperature=0.0).validate()
    cfgs = [_cfg(mnist_small, target_labels="teacher", seed=s, meta_gradient="jvp") for s in (3, 4)]
    sessions = [RunSession(c, out=None, resume=False, progress=False) for c in cfgs]
    assert "target-labels" in batchable([s.distiller for s in sessions])


def test_one_teacher_for_the_start_and_the_targets_trained_once(mnist_small, monkeypatch):
    """--label-init teacher with --target-labels teacher asks twice for one teacher (the same key): with the disk cache
    off it is trained once per run (shared_teachers), and again by the next run, whose block is its own."""
    import labeldistill.teacher as teacher
    import labeldistill.teacher.train as teacher_train  # where the teacher's training calls train_models

    monkeypatch.setenv("LABELDISTILL_CACHE", "off")
    trained = []
    real = teacher_train.train_models
    monkeypatch.setattr(teacher_train, "train_models", lambda *a, **k: (trained.append(1), real(*a, **k))[1])
    cfg = _cfg(mnist_small, target_labels="teacher", label_init="teacher", temperature=2.0, epochs=1)
    session = RunSession(cfg, out=None, resume=False, progress=False)
    assert session.label_init["teacher"]["cache"]["file"] is None  # no disk cache was involved
    assert session.target_labels["teacher"]["val_accuracy"] == session.label_init["teacher"]["val_accuracy"]
    assert len(trained) == 1
    RunSession(cfg, out=None, resume=False, progress=False)
    assert len(trained) == 2
    with teacher.shared_teachers():  # a caller's block spans runs: their teacher once for all
        RunSession(cfg, out=None, resume=False, progress=False)
        RunSession(cfg, out=None, resume=False, progress=False)
    assert len(trained) == 3
