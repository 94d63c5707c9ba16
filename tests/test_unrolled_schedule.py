"""DD's step schedule and the paper's sensitivity edits of it (Tables 10-12) on scripted
examples, and the evaluation helper that trains fresh networks by a schedule."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labeldistill.errors import UserError
from labeldistill.models import Classifier
from labeldistill.unrolled import (
    FunctionalNet, Schedule, UnrolledDistiller, average_lr, evaluate_schedule, extended, first_steps, inner_loss,
    learned_schedule, shuffled_across_epochs, shuffled_steps, shuffled_within_epochs, train_on_schedule, unrolled_config,
)

LRS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def scripted() -> Schedule:
    """3 step-tensors of 2 images, 2 epochs: 6 steps."""
    return learned_schedule(LRS, num_batches=3, batch_size=2)


def test_learned_schedule_cycles_the_step_tensors_in_order():
    s = scripted()
    assert s.steps == ((0, 1), (2, 3), (4, 5), (0, 1), (2, 3), (4, 5))
    assert s.lrs == LRS and s.epoch_length == 3 and s.order == (0, 1, 2, 0, 1, 2)
    assert s.index().tolist() == [list(p) for p in s.steps]


def test_dd_reference_layout():
    """10 step-tensors of 10 images, 3 epochs: step t uses tensor t mod 10."""
    s = learned_schedule([0.01 * (t + 1) for t in range(30)], 10, 10)
    assert len(s) == 30 and s.order == tuple(t % 10 for t in range(30))
    assert s.steps[13] == tuple(range(30, 40))


def test_first_n_steps():
    assert first_steps(scripted(), 4).lrs == (0.1, 0.2, 0.3, 0.4, 0.0, 0.0)
    assert first_steps(scripted(), 4).steps == scripted().steps
    assert first_steps(scripted(), 6) == scripted()
    assert first_steps(scripted(), 0).lrs == (0.0,) * 6
    with pytest.raises(UserError):
        first_steps(scripted(), 7)


def test_extended_by_steps_at_the_mean_lr():
    s = extended(scripted(), 2)
    mean = sum(LRS) / 6
    # Two more steps on tensors 0 and 1 at the mean lr, then lr 0 to the end of the third epoch.
    assert s.steps == scripted().steps + ((0, 1), (2, 3), (4, 5))
    assert s.lrs[:6] == LRS and s.lrs[6:] == (mean, mean, 0.0)
    # Table 10's "35" on DD's layout: 40 steps, learned 1-30, mean 31-35 on tensors A1-A5, then 0.
    dd = learned_schedule([0.01 * (t + 1) for t in range(30)], 10, 10)
    e = extended(dd, 5)
    assert len(e) == 40 and e.order[30:35] == (0, 1, 2, 3, 4)
    assert e.lrs[30:35] == (sum(dd.lrs) / 30,) * 5 and e.lrs[35:] == (0.0,) * 5
    assert extended(dd, 0) == dd


def test_average_lr():
    s = average_lr(scripted())
    assert s.steps == scripted().steps and s.lrs == (sum(LRS) / 6,) * 6


def _multiset(steps):
    return sorted(i for s in steps for i in s)


def test_shuffled_within_epochs():
    s = shuffled_within_epochs(scripted(), torch.Generator().manual_seed(0))
    assert s.lrs == LRS and len(s) == 6 and all(len(p) == 2 for p in s.steps)
    for e in range(2):  # each epoch uses exactly its own images, once each
        assert _multiset(s.steps[3 * e : 3 * e + 3]) == [0, 1, 2, 3, 4, 5]
    assert s == shuffled_within_epochs(scripted(), torch.Generator().manual_seed(0))  # one draw per seed
    draws = {shuffled_within_epochs(scripted(), torch.Generator().manual_seed(k)).steps for k in range(10)}
    assert len(draws) > 1 and s.order is None
    # DD size: each epoch's 100 images re-chunked into 10 steps of 10, no longer one per class.
    dd = learned_schedule([0.02] * 30, 10, 10)
    w = shuffled_within_epochs(dd, torch.Generator().manual_seed(1))
    assert all(_multiset(w.steps[10 * e : 10 * e + 10]) == list(range(100)) for e in range(3))
    assert w.steps[:10] != w.steps[10:20]  # an independent permutation per epoch
    assert any(len({i // 10 for i in p}) > 1 for p in w.steps)


def test_shuffled_across_epochs():
    s = shuffled_across_epochs(scripted(), torch.Generator().manual_seed(0))
    assert s.lrs == LRS and _multiset(s.steps) == _multiset(scripted().steps)
    assert s == shuffled_across_epochs(scripted(), torch.Generator().manual_seed(0))
    dd = learned_schedule([0.02] * 30, 10, 10)
    a = shuffled_across_epochs(dd, torch.Generator().manual_seed(1))
    counts = [sum(i == j for p in a.steps for i in p) for j in range(100)]
    assert counts == [3] * 100  # every image used three times overall
    # Not per-epoch balanced any more (the within-epoch variant is).
    assert any(_multiset(a.steps[10 * e : 10 * e + 10]) != list(range(100)) for e in range(3))


@pytest.mark.parametrize("within", [True, False])
def test_shuffled_steps_keep_each_step_whole(within):
    dd = learned_schedule([0.01 * (t + 1) for t in range(30)], 10, 10)
    s = shuffled_steps(dd, torch.Generator().manual_seed(3), within=within)
    assert s.lrs == dd.lrs  # lrs stay with the positions
    assert sorted(s.steps) == sorted(dd.steps)  # the same 30 step-tensor uses, each whole ...
    assert all(sorted(i // 10 for i in p) == [p[0] // 10] * 10 for p in s.steps)  # ... so one step-tensor each (class-balanced)
    assert s.steps != dd.steps and s.order is not None  # still whole step-tensors: the file keeps an order
    assert s == shuffled_steps(dd, torch.Generator().manual_seed(3), within=within)
    per_epoch = [sorted(s.order[10 * e : 10 * e + 10]) == list(range(10)) for e in range(3)]
    if within:
        assert all(per_epoch) and s.order[:10] != s.order[10:20]
    else:  # 30 uses permuted at once: some epoch sees a step-tensor twice (seed 3 does)
        assert not all(per_epoch) and sorted(s.order) == sorted(list(range(10)) * 3)


def test_schedule_dict_round_trip():
    s = scripted()
    d = s.to_dict()
    assert d["kind"] == "dd" and d["order"] == [0, 1, 2, 0, 1, 2] and d["lrs"] == list(LRS) and "steps" not in d
    assert Schedule.from_dict(d) == s
    sh = shuffled_across_epochs(s, torch.Generator().manual_seed(0))
    assert sh.to_dict()["order"] is None and Schedule.from_dict(sh.to_dict()) == sh
    with pytest.raises(UserError):
        Schedule(((0, 1),), (0.1, 0.2), 1)


def test_distiller_schedule_is_its_learned_lrs_in_order():
    x, y = torch.randn(8, 1, 4, 4), torch.arange(8) % 2
    dist = UnrolledDistiller(unrolled_config("mnist", steps=3, epochs=2), x, y, _net(torch.float32), 2)
    s = dist.schedule()
    assert s.order == (0, 1, 2, 0, 1, 2) and s.batch_size == 2
    assert all(math.isclose(v, 0.02, rel_tol=1e-6) for v in s.lrs)  # softplus(log(expm1(0.02)))
    images, labels = dist.distilled()
    assert images.shape == (6, 1, 4, 4) and labels.tolist() == [0, 1] * 3


def _net(dtype) -> FunctionalNet:
    torch.manual_seed(0)
    features = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.Tanh())
    return FunctionalNet(Classifier(features, 5, 3).to(dtype))


def test_train_on_schedule_follows_the_schedule_step_by_step():
    """One network trained by a shuffled, partly-zeroed schedule == a hand-written SGD loop."""
    net = _net(torch.float64)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    labels = torch.rand(6, 3, generator=g, dtype=torch.float64)  # SLDD-style label vectors
    sched = first_steps(shuffled_across_epochs(scripted(), torch.Generator().manual_seed(2)), 5)
    [got] = [train_on_schedule(net, images, labels, sched, [42], mode="loop")]
    w = net.init(torch.Generator().manual_seed(42))
    for step, lr in zip(sched.steps, sched.lrs):
        w = {n: p.requires_grad_() for n, p in w.items()}
        idx = list(step)
        grads = torch.autograd.grad(inner_loss(net(w, images[idx]), labels[idx]), list(w.values()))
        w = {n: (p - lr * gr).detach() for (n, p), gr in zip(w.items(), grads)}
    for n in w:
        assert torch.allclose(got[n][0], w[n], rtol=1e-12, atol=1e-15), n


def test_evaluate_schedule_is_independent_of_grouping_and_zero_lrs_change_nothing():
    net = _net(torch.float32)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(6, 1, 4, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    tx, ty = torch.randn(50, 1, 4, 4, generator=g), torch.randint(0, 3, (50,), generator=g)
    a = evaluate_schedule(net, images, labels, scripted(), tx, ty, models=5, group=5, mode="loop")
    b = evaluate_schedule(net, images, labels, scripted(), tx, ty, models=5, group=2, mode="loop")
    assert a == b and len(a.accuracies) == 5
    assert a.std == pytest.approx(torch.tensor(a.accuracies, dtype=torch.float64).std().item())
    # With every lr 0 the networks keep their initialisation.
    zero = train_on_schedule(net, images, labels, first_steps(scripted(), 0), [7])
    init = net.init(torch.Generator().manual_seed(7))
    assert all(torch.equal(zero[n][0], init[n]) for n in init)


def test_evaluate_schedule_resumes_from_its_ledger(tmp_path, monkeypatch):
    net = _net(torch.float32)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(6, 1, 4, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    tx, ty = torch.randn(50, 1, 4, 4, generator=g), torch.randint(0, 3, (50,), generator=g)
    straight = evaluate_schedule(net, images, labels, scripted(), tx, ty, models=7, group=3, mode="loop")
    # Interrupted after the first group of 3: those are in the ledger; the rerun trains only the other 4.
    import labeldistill.unrolled.evaluate as ev_mod

    real, calls = ev_mod.train_on_schedule, []

    def stop_after_one_group(*args, **kwargs):
        calls.append(len(args[4]))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ev_mod, "train_on_schedule", stop_after_one_group)
    with pytest.raises(KeyboardInterrupt):
        evaluate_schedule(net, images, labels, scripted(), tx, ty, models=7, group=3, mode="loop", ledger=tmp_path)
    calls.clear()
    monkeypatch.setattr(ev_mod, "train_on_schedule", lambda *a, **k: calls.append(len(a[4])) or real(*a, **k))
    resumed = evaluate_schedule(net, images, labels, scripted(), tx, ty, models=7, group=3, mode="loop", ledger=tmp_path)
    assert resumed.accuracies == straight.accuracies and resumed.from_ledger == 3 and calls == [3, 1]
    # Another schedule (other lrs) is another key: nothing reused.
    other = evaluate_schedule(net, images, labels, average_lr(scripted()), tx, ty, models=2, mode="loop", ledger=tmp_path)
    assert other.from_ledger == 0 and len(list(tmp_path.glob("schedule-*.jsonl"))) == 2


def test_evaluate_schedule_progress_counts_every_network(tmp_path, monkeypatch):
    """The bar's total is the networks asked for; it starts at those read back from a ledger and ends at its total."""
    import labeldistill.unrolled.evaluate as ev_mod

    bars: list = []

    class Bar:
        def __init__(self, total: int, initial: int = 0, **_kw) -> None:
            self.total, self.n, self.initial = total, initial, initial
            bars.append(self)

        def update(self, n: int = 1) -> None:
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(ev_mod, "tqdm", Bar)
    net = _net(torch.float32)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(6, 1, 4, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    tx, ty = torch.randn(50, 1, 4, 4, generator=g), torch.randint(0, 3, (50,), generator=g)
    evaluate_schedule(net, images, labels, scripted(), tx, ty, models=3, group=2, mode="loop", ledger=tmp_path, progress=True)
    evaluate_schedule(net, images, labels, scripted(), tx, ty, models=5, group=2, mode="loop", ledger=tmp_path, progress=True)
    # the second call read 3 networks back from the ledger and trained the 2 it lacked
    assert [(b.total, b.initial, b.n) for b in bars] == [(3, 0, 3), (5, 3, 5)]
