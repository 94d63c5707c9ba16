"""The training engine: K models at once == each alone, heads, batching modes, evaluation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labeldistill.engine import Learner, accuracy, draw_batches, evaluate_labels, predict, soft_cross_entropy, train_models
from labeldistill.errors import UserError
from labeldistill.models import build_model

N, C = 12, 10


def lenet64() -> nn.Module:
    return build_model("lenet", 1, 28, C).double()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 1, 28, 28, dtype=torch.float64, generator=g)
    y = torch.softmax(2 * torch.randn(N, C, dtype=torch.float64, generator=g), -1)
    xt = torch.randn(20, 1, 28, 28, dtype=torch.float64, generator=g)
    yt = torch.randint(0, C, (20,), generator=g)
    return x, y, xt, yt


def _assert_models_equal(a, b, i_a, i_b, atol=1e-6):
    for part in ("params", "head"):
        da, db = getattr(a, part), getattr(b, part)
        assert set(da) == set(db)
        for n in da:
            torch.testing.assert_close(da[n][i_a].double(), db[n][i_b].double(), rtol=1e-6, atol=atol, msg=f"{part}.{n}")


def _assert_models_differ(a, b, i_a, i_b):
    assert any(not torch.allclose(a.params[n][i_a], b.params[n][i_b]) for n in a.params)


@pytest.mark.parametrize("head", ["linear", "ridge"])
def test_k_at_once_equals_each_alone_and_vmap_equals_loop(data, head):
    x, y, xt, yt = data
    learner = Learner(lenet64, head=head)
    seeds = [3, 11, 29]
    together = {m: train_models(learner, x, y, 4, seeds, batch_size=5, mode=m) for m in ("vmap", "loop")}
    for m in ("vmap", "loop"):
        acc_all = accuracy(learner, together[m], xt, yt, mode=m)
        for i, s in enumerate(seeds):
            alone = train_models(learner, x, y, 4, [s], batch_size=5, mode=m)
            _assert_models_equal(together[m], alone, i, 0)
            torch.testing.assert_close(acc_all[i], accuracy(learner, alone, xt, yt, mode=m)[0])
        _assert_models_differ(together[m], together[m], 0, 1)
    for i in range(len(seeds)):
        _assert_models_equal(together["vmap"], together["loop"], i, i)
    torch.testing.assert_close(accuracy(learner, together["vmap"], xt, yt, mode="vmap"), accuracy(learner, together["loop"], xt, yt, mode="loop"))
    # Training moved the models away from their initialisation.
    init = learner.init(seeds)
    _assert_models_differ(together["loop"], init, 0, 0)


@pytest.mark.gpu
@pytest.mark.parametrize("head", ["linear", "ridge"])
def test_k_at_once_on_cuda_equals_each_alone_and_the_cpu(data, head):
    """On a GPU (``auto`` = vmap there): K at once == each alone, and == the CPU in float64."""
    x, y, xt, yt = (t.to("cuda") for t in data)
    learner = Learner(lenet64, head=head)
    seeds = [3, 11, 29]
    together = train_models(learner, x, y, 4, seeds, batch_size=5)
    on_cpu = train_models(learner, *(t.cpu() for t in (x, y)), 4, seeds, batch_size=5)
    for i, s in enumerate(seeds):
        _assert_models_equal(together, train_models(learner, x, y, 4, [s], batch_size=5), i, 0)
        for part in ("params", "head"):
            for n, t in getattr(together, part).items():
                torch.testing.assert_close(t[i].cpu(), getattr(on_cpu, part)[n][i], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(accuracy(learner, together, xt, yt).cpu(), accuracy(learner, on_cpu, xt.cpu(), yt.cpu()))


@pytest.mark.parametrize("head", ["linear", "ridge"])
def test_per_model_step_counts(data, head):
    x, y, _, _ = data
    learner = Learner(lenet64, head=head)
    seeds, steps = [5, 6, 7], [3, 7, 5]
    together = train_models(learner, x, y, steps, seeds, batch_size=4, mode="loop")
    for i, (s, t) in enumerate(zip(seeds, steps)):
        alone = train_models(learner, x, y, t, [s], batch_size=4, mode="loop")
        _assert_models_equal(together, alone, i, 0)
        # ... and not the model trained for the longest T.
        if t != max(steps):
            longer = train_models(learner, x, y, max(steps), [s], batch_size=4, mode="loop")
            _assert_models_differ(together, longer, i, 0)


def test_zero_steps_keeps_initialisation(data):
    x, y, _, _ = data
    learner = Learner(lenet64)
    st = train_models(learner, x, y, [0, 2], [1, 2], batch_size=4, mode="loop")
    _assert_models_equal(st, learner.init([1]), 0, 0, atol=0)


def test_per_model_labels(data):
    x, _, _, _ = data
    learner = Learner(lenet64)
    g = torch.Generator().manual_seed(7)
    labels = torch.softmax(3 * torch.randn(3, N, C, dtype=torch.float64, generator=g), -1)
    seeds = [1, 1, 2]  # same seed, different labels -> different models
    together = train_models(learner, x, labels, 3, seeds, batch_size=4, mode="vmap")
    for i, s in enumerate(seeds):
        alone = train_models(learner, x, labels[i], 3, [s], batch_size=4, mode="vmap")
        _assert_models_equal(together, alone, i, 0)
    _assert_models_differ(together, together, 0, 1)
    with pytest.raises(ValueError):
        train_models(learner, x, labels[:2], 3, seeds, batch_size=4)


@pytest.mark.parametrize("arch", ["lenet", "resnet14"])
def test_per_model_images_equal_each_model_on_its_own_images(arch):
    """K x N x C x H x W images with ``images_per_model`` (each model its own set: the validation models of a stack's runs, each run on its
    base images) give each model exactly what training it alone on its images gives, its accuracy included; with
    batch norm (resnet14) each model is scored with its own images' statistics."""
    side = 28 if arch == "lenet" else 8
    ch = 1 if arch == "lenet" else 3
    learner = Learner(lambda: build_model(arch, ch, side, C).double())
    g = torch.Generator().manual_seed(5)
    images = torch.randn(3, N, ch, side, side, dtype=torch.float64, generator=g)
    labels = torch.softmax(2 * torch.randn(3, N, C, dtype=torch.float64, generator=g), -1)
    xt = torch.randn(30, ch, side, side, dtype=torch.float64, generator=g)
    yt = torch.randint(0, C, (30,), generator=g)
    seeds, steps = [4, 4, 9], [3, 2, 3]
    for mode in ("loop", "vmap"):
        together = train_models(learner, images, labels, steps, seeds, batch_size=5, mode=mode, images_per_model=True)
        acc = accuracy(learner, together, xt, yt, mode=mode)
        for i in range(3):
            alone = train_models(learner, images[i], labels[i], steps[i], [seeds[i]], batch_size=5, mode=mode)
            atol = 0 if mode == "loop" else 1e-6
            _assert_models_equal(together, alone, i, 0, atol=atol)
            torch.testing.assert_close(acc[i], accuracy(learner, alone, xt, yt, mode=mode)[0], rtol=0, atol=0)
        if learner.has_batch_norm:  # the per-model reference matters: model 0 with model 1's images scores otherwise
            right = together.select(slice(0, 1))
            assert right.reference.shape == (1, N, ch, side, side)
            wrong = together.select(slice(0, 1))
            wrong.reference = images[1:2]  # model 1's set, as the per-model reference of this one model
            assert not torch.equal(predict(learner, wrong, xt), predict(learner, right, xt))
    with pytest.raises(ValueError, match="one image set per model"):
        train_models(learner, images[:2], labels, steps, seeds, batch_size=5, images_per_model=True)


def test_observer_called_at_exactly_those_steps(data):
    x, y, _, _ = data
    learner = Learner(lenet64)
    seen: list[int] = []
    snaps = {}

    def observer(step, state):
        seen.append(step)
        snaps[step] = {n: t.detach().clone() for n, t in state.params.items()}

    final = train_models(learner, x, y, 6, [4], batch_size=4, observe_at=[2, 5, 6, 9], observer=observer, mode="loop")
    assert seen == [2, 5, 6]
    # The state observed after step 2 is the model trained for 2 steps.
    two = train_models(learner, x, y, 2, [4], batch_size=4, mode="loop")
    for n in two.params:
        torch.testing.assert_close(snaps[2][n], two.params[n])
        torch.testing.assert_close(snaps[6][n], final.params[n])


def test_seeds_determine_initialisation():
    learner = Learner(lenet64, head="ridge")
    before = torch.get_rng_state()
    st = learner.init([5, 5, 8])
    assert torch.equal(before, torch.get_rng_state()), "init must not touch the global RNG"
    for n, t in st.params.items():
        assert torch.equal(t[0], t[1]), n
    _assert_models_differ(st, st, 0, 2)
    again = learner.init([8])
    for n, t in st.params.items():
        assert torch.equal(t[2], again.params[n][0])
    # Ridge head: W = 0 and s = 1 for every model, in the model's dtype.
    assert torch.all(st.head["w"] == 0) and torch.all(st.head["s"] == 1)
    assert st.head["w"].shape == (3, 85, C)
    assert st.head["w"].dtype == torch.float64 and st.head["s"].dtype == torch.float64


def test_draw_batches():
    g = torch.Generator().manual_seed(0)
    idx = draw_batches(g, 50, 9, 4)
    assert idx.shape == (50, 4)
    assert idx.min() >= 0 and idx.max() < 9
    for row in idx.tolist():
        assert len(set(row)) == 4
    full = draw_batches(g, 5, 7, 7)
    for row in full.tolist():
        assert sorted(row) == list(range(7))
    # Every index turns up (the rows are random subsets, not a fixed prefix).
    assert set(idx.flatten().tolist()) == set(range(9))


def test_batch_size_checked(data):
    x, y, _, _ = data
    with pytest.raises(UserError):
        train_models(Learner(lenet64), x, y, 1, [0], batch_size=N + 1)


def test_soft_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, dtype=torch.float64, generator=g)
    t = torch.randint(0, 4, (6,), generator=g)
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(t, 4).double()), F.cross_entropy(logits, t))
    soft = torch.softmax(torch.randn(6, 4, dtype=torch.float64, generator=g), -1)
    lp = logits.numpy() - np.log(np.exp(logits.numpy()).sum(1, keepdims=True))
    np.testing.assert_allclose(soft_cross_entropy(logits, soft).item(), -(soft.numpy() * lp).sum(1).mean(), rtol=1e-12)


def test_ridge_train_loss_one_step_by_hand(data):
    """After one step from W = 0: W = 0.99 * 0 + 0.01 * W_l, W_l the ridge solution on the
    minibatch's features (lambda 1, bias column); s moves by Adam's first step against dL/ds."""
    x, y, _, _ = data
    learner = Learner(lenet64, head="ridge")
    seed = 9
    st = train_models(learner, x, y, 1, [seed], batch_size=N, mode="loop")  # the batch is all N examples
    feats = learner.fresh_module(seed)  # the same initial feature extractor
    with torch.no_grad():
        z = feats(x).numpy()
    z1 = np.hstack([z, np.ones((N, 1))])
    yn = y.numpy()
    w_l = np.linalg.solve(z1.T @ z1 + np.eye(z1.shape[1]), z1.T @ yn)
    w = 0.99 * 0 + 0.01 * w_l
    np.testing.assert_allclose(st.head["w"][0].numpy(), w, rtol=1e-7, atol=1e-12)
    # dL/ds of L = mean_i sum_c -y log softmax(s * z1 W) at s = 1.
    a = z1 @ w
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlds = ((p - yn) * a).sum(1).mean()
    assert dlds != 0
    s = float(st.head["s"][0])
    np.testing.assert_allclose(s, 1.0 - 0.01 * np.sign(dlds), rtol=1e-6)  # Adam's first step: lr * sign(g)


def test_evaluate_labels_mean_std(data):
    x, y, xt, yt = data
    learner = Learner(lenet64)
    ev = evaluate_labels(learner, x, y, xt, yt, steps=3, models=4, seed=2, batch_size=4)
    acc = np.array(ev.accuracies)
    assert len(acc) == 4 and ev.models == 4 and ev.steps == 3
    assert np.all((acc >= 0) & (acc <= 100))
    # Each accuracy is a multiple of 1/20 of the 20 test examples.
    np.testing.assert_allclose(acc * 20 / 100, np.round(acc * 20 / 100), atol=1e-3)
    assert ev.accuracy_mean == pytest.approx(acc.mean(), abs=1e-3)
    assert ev.accuracy_std == pytest.approx(acc.std(ddof=0), abs=1e-3)
    d = ev.to_dict()
    assert d["accuracy_mean"] == ev.accuracy_mean and "extra" not in d


def test_loop_mode_gradients_equal_each_model_alone_bit_for_bit():
    """The loop path unbinds the stacked parameters once (not t[i] per model); each model's
    gradient must be exactly the one it gets when differentiated on its own."""
    from labeldistill.engine.batching import map_models

    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, 4, generator=g, requires_grad=True)
    b = torch.randn(5, 3, generator=g, requires_grad=True)
    x = torch.randn(7, 4, generator=g)

    def loss(params, inputs):
        return torch.tanh(inputs @ params["w"].T + params["b"]).square().mean()

    looped = map_models(loss, (0, None), "loop")
    values = looped({"w": w, "b": b}, x)
    values.sum().backward()
    for i in range(5):
        wi, bi = w[i].detach().clone().requires_grad_(), b[i].detach().clone().requires_grad_()
        alone = loss({"w": wi, "b": bi}, x)
        alone.backward()
        assert torch.equal(values[i].detach(), alone.detach())
        assert torch.equal(w.grad[i], wi.grad) and torch.equal(b.grad[i], bi.grad)


def test_evaluate_together_equals_each_evaluation_alone_in_one_call(monkeypatch):
    """The tests of a stack's runs (each its own images, labels, T, seed and model count) train in one engine call and
    give each run exactly ``evaluate_labels``' numbers; a test with other settings (another lr) trains alone."""
    from labeldistill.engine import PaperTest, evaluate_together
    from labeldistill.engine import evaluate as evaluate_mod

    learner = Learner(lenet64)
    g = torch.Generator().manual_seed(2)
    xt = torch.randn(25, 1, 28, 28, dtype=torch.float64, generator=g)
    yt = torch.randint(0, C, (25,), generator=g)

    def test(seed, steps, models, lr=1e-3):
        x = torch.randn(N, 1, 28, 28, dtype=torch.float64, generator=g)
        y = torch.softmax(2 * torch.randn(N, C, dtype=torch.float64, generator=g), -1)
        return PaperTest(learner, x, y, steps, models, seed, 4, lr)

    tests = [test(0, 3, 2), test(1, 2, 3), test(1, 3, 1, lr=2e-3)]
    alone = [evaluate_labels(t.learner, t.images, t.labels, xt, yt, steps=t.steps, models=t.models, seed=t.seed,
                             batch_size=t.batch_size, lr=t.lr) for t in tests]
    calls = []
    real = evaluate_mod.train_models
    monkeypatch.setattr(evaluate_mod, "train_models", lambda *a, **k: calls.append(len(a[4])) or real(*a, **k))
    together = evaluate_together(tests, xt, yt)
    for a, b in zip(alone, together):
        assert (a.accuracies, a.accuracy_mean, a.accuracy_std, a.steps, a.models) == (b.accuracies, b.accuracy_mean, b.accuracy_std, b.steps, b.models)
    assert calls == [2 + 3, 1]
