"""``--method implicit``: the implicit-function label gradient and its protocol-trained students in the one loop.

The math is checked in float64 on a softmax regression, where the trained model is the exact minimiser of a strictly
convex loss (found by Newton's method) and the Gauss-Newton matrix is the Hessian itself, so the formula must match the
derivative of the target loss through the retrained model to rounding. The loop is checked on small blobs with a short
``dc-dsa`` (3 epochs, the test's own small net): the students' first training is the protocol's training, they are
never reset, the strategy averages its students, and a stopped run resumes exactly.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labeldistill.data import Preprocessing
from labeldistill.data.tensors import LabelledTensors, TargetData
from labeldistill.distill import DistillConfig, Distiller
from labeldistill.distill.strategies.implicit import Implicit, Linearised, cg, implicit_label_grad
from labeldistill.engine import make_learner, train_models
from labeldistill.errors import UserError
from labeldistill.protocols import _base as protocol_base
from labeldistill.problem import Problem
from labeldistill.protocols import get_protocol, target_zca
from labeldistill.runs import read_metrics

from test_distill_loop import SIDE, TinyNet, _config, blob_problem, straight_and_resumed


def test_cg_solves_a_symmetric_positive_definite_system():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    m = a @ a.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = {"p": torch.randn(4, generator=g, dtype=torch.float64), "q": torch.randn(2, generator=g, dtype=torch.float64)}

    def apply(v):
        out = m @ torch.cat([v["p"], v["q"]])
        return {"p": out[:4], "q": out[4:]}

    x = cg(apply, b, iters=6)  # n steps solve an n x n system exactly, up to rounding
    want = torch.linalg.solve(m, torch.cat([b["p"], b["q"]]))
    torch.testing.assert_close(torch.cat([x["p"], x["q"]]), want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("mode", ["jvp", "double-backward"])
def test_implicit_label_gradient_matches_finite_differences_through_the_retrained_model(mode):
    dt = torch.float64
    g = torch.Generator().manual_seed(1)
    n, views, c, d, lam = 5, 3, 3, 4, 0.1
    xv = torch.randn(views * n, d, generator=g, dtype=dt)  # view-major: rows v*n .. v*n+n-1 are view v of the n images
    y = torch.softmax(torch.randn(n, c, generator=g, dtype=dt), -1)
    xt, yt = torch.randn(40, d, generator=g, dtype=dt), torch.randint(0, c, (40,), generator=g)

    def logits_of(p, x):
        return x @ p["w"].T + p["b"]

    def unpack(flat):
        return {"w": flat[: c * d].view(c, d), "b": flat[c * d :]}

    def train_loss(flat, labels):
        return -(labels.repeat(views, 1) * F.log_softmax(logits_of(unpack(flat), xv), -1)).sum(-1).mean() + lam / 2 * (flat**2).sum()

    def minimiser(labels):
        flat = torch.zeros(c * d + c, dtype=dt)
        for _ in range(30):  # Newton on a strictly convex loss: converged to rounding
            grad = torch.autograd.functional.jacobian(lambda f: train_loss(f, labels), flat)
            hess = torch.autograd.functional.hessian(lambda f: train_loss(f, labels), flat)
            flat = flat - torch.linalg.solve(hess, grad)
        return unpack(flat)

    def target_loss(labels):
        return F.cross_entropy(logits_of(minimiser(labels), xt), yt)

    theta = minimiser(y)
    leaves = {k: v.clone().requires_grad_() for k, v in theta.items()}
    g_t = dict(zip(leaves, torch.autograd.grad(F.cross_entropy(logits_of(leaves, xt), yt), list(leaves.values()))))
    got = implicit_label_grad(logits_of, theta, xv, views, g_t, damping=lam, cg_iters=40, mode=mode)

    h = 1e-6
    fd = torch.zeros(n, c, dtype=dt)
    for i in range(n):
        for j in range(c):
            e = torch.zeros(n, c, dtype=dt)
            e[i, j] = h
            fd[i, j] = (target_loss(y + e) - target_loss(y - e)) / (2 * h)
    assert fd.abs().max() > 1e-3  # a gradient worth comparing
    torch.testing.assert_close(got, fd, rtol=1e-6, atol=1e-8)


def test_jacobian_products_by_double_backward_equal_forward_mode_on_a_convnet():
    """ConvNet-3 (convolutions, GroupNorm, pooling) in float64: J v and J^T w, and the label gradient, the same both ways."""
    with torch.autocast("cpu", enabled=False):
        learner = make_learner("convnet3", 1, 12, 3, head="linear")
        state = learner.init([0])
        theta = {n: t[0].detach().double() for n, t in state.params.items()}
        buffers, head = {n: t[0] for n, t in state.buffers.items()}, {n: t[0].double() for n, t in state.head.items()}
        g = torch.Generator().manual_seed(3)
        xv = torch.randn(8, 1, 12, 12, generator=g, dtype=torch.float64)

        def logits_of(p, x):
            return learner.logits(p, buffers, head, x)

        v = {n: torch.randn(t.shape, generator=g, dtype=torch.float64) for n, t in theta.items()}
        w = torch.randn(8, 3, generator=g, dtype=torch.float64)
        fwd, rev = (Linearised(lambda p: logits_of(p, xv), theta, mode) for mode in ("jvp", "double-backward"))
        torch.testing.assert_close(rev.out, fwd.out)
        torch.testing.assert_close(rev.jv(v), fwd.jv(v))
        for n, t in fwd.jt(w).items():
            torch.testing.assert_close(rev.jt(w)[n], t)
        got = {mode: implicit_label_grad(logits_of, theta, xv, 2, v, damping=0.1, cg_iters=4, mode=mode) for mode in ("jvp", "double-backward")}
        torch.testing.assert_close(got["double-backward"], got["jvp"])
        with pytest.raises(ValueError, match="mode must be"):
            Linearised(lambda p: logits_of(p, xv), theta, "hvp")


def _students_and_batch(k: int):
    learner = make_learner(TinyNet, 1, 6, 2, head="linear")
    p = blob_problem()
    state = learner.init(list(range(10, 10 + k)))
    views = 2
    xb = torch.stack([torch.cat([p.base_x + 0.1 * v for v in range(views)]) for _ in range(k)])  # K x (V n) x ...
    yb = torch.softmax(torch.randn(6, 2, generator=torch.Generator().manual_seed(2)), -1)
    return learner, state, xb, yb, p.target.train.x[:20], p.target.train.y[:20], views


@pytest.mark.parametrize("scale", ["shared", "fitted"])
def test_the_strategy_averages_its_students_gradients(scale):
    learner, state, xb, yb, xt, yt, views = _students_and_batch(3)
    strat = Implicit(views=views, cg_iters=5, damping=1e-3, weight_decay=5e-4, target_scale=scale)
    out = strat.step(learner, state, xb, yb, xt, yt)
    one = [Implicit(views=views, cg_iters=5, damping=1e-3, weight_decay=5e-4, target_scale=scale).step(
        learner, state.select(slice(k, k + 1)), xb[k : k + 1], yb, xt, yt) for k in range(3)]
    torch.testing.assert_close(out.label_grad, sum(o.label_grad for o in one) / 3)
    torch.testing.assert_close(out.loss, sum(o.loss for o in one) / 3)
    # One student's gradient is the formula at its parameters (target loss at scale 1 when shared).
    if scale == "shared":
        theta = {n: t[0].detach() for n, t in state.params.items()}
        f = lambda p, x: learner.logits(p, {}, {}, x)  # noqa: E731
        leaves = {n: t.clone().requires_grad_() for n, t in theta.items()}
        g_t = dict(zip(leaves, torch.autograd.grad(F.cross_entropy(f(leaves, xt), yt), list(leaves.values()))))
        want = implicit_label_grad(f, theta, xb[0], views, g_t, damping=5e-4 + 1e-3, cg_iters=5)
        torch.testing.assert_close(one[0].label_grad, want)
    assert all(p.grad is None for p in state.params.values())  # the students follow by their own training


@pytest.fixture
def short_dsa(monkeypatch):
    short = dataclasses.replace(get_protocol("dc-dsa"), epochs=3, arch=None)  # the loop's own small net, 3 epochs
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    return short


IMPLICIT = dict(test_protocol="dc-dsa", select_protocol="dc-dsa", inner_batch=6, students=2, views=2, cg_iters=3,
                follow_epochs=2, label_param="logits", label_lr=0.05, validation_models=1)


def test_students_train_the_protocols_way_then_follow_the_labels_without_resets(tmp_path, short_dsa):
    d = Distiller(_config("implicit", epochs=2, **IMPLICIT), blob_problem(), model_factory=TinyNet, run_dir=tmp_path, progress=False)
    st = d.students
    assert st is not None and st.k == 2 and d.model_opt is None
    start = d.labels.seen()
    d.open_log(resume=False)
    d.start(bar=False)
    # The first training is the protocol's, on the start labels, from the students' seeds.
    want = train_models(d.learner, d.problem.base_x, start, 1, st.seeds, batch_size=6, recipe=short_dsa.recipe(1, lr=1e-3))
    for n, t in want.params.items():
        assert torch.equal(st.state.params[n], t)
    before = {n: t.clone() for n, t in st.state.params.items()}
    while d.advance():
        pass
    d.finish()
    d.close()
    assert any(not torch.equal(st.state.params[n], before[n]) for n in before)  # they followed the labels
    steps = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "step"]
    assert len(steps) == 8 and not any(r.get("reset") for r in steps)
    assert not torch.allclose(d.labels.seen(), start)


def test_the_students_progress_bar_changes_nothing(short_dsa, redrawing_bars):
    """The first training with its progress bar shown trains every step: tqdm's update returns True when it redraws,
    and an observer's True stops a training (here the bar redraws at every step)."""
    from labeldistill.distill import students as students_mod
    from labeldistill.distill.students import ProtocolStudents

    redrawing_bars(students_mod)
    p = blob_problem()
    learner = make_learner(TinyNet, 1, 6, 2, head="linear")
    y = torch.softmax(torch.randn(6, 2, generator=torch.Generator().manual_seed(4)), -1)
    made = []
    for progress in (False, True):
        st = ProtocolStudents(learner, short_dsa, channels=1, n_base=6, seed=0, students=2, follow_epochs=1, first_epochs=None,
                              zca=None, device=torch.device("cpu"), refresh_every=1, progress=progress)
        st.train_first(p.base_x, y, progress=progress)
        st.follow(p.base_x, y.flip(0))  # and a refresh, with its own bar
        made.append(st.state.params)
    for n, t in made[0].items():
        assert torch.equal(made[1][n], t)


@pytest.mark.parametrize("refresh_every", [0, 3])  # 0: never; 3: a refresh on either side of the stop
def test_a_stopped_implicit_run_resumes_exactly(tmp_path, short_dsa, refresh_every):
    (a, ra), (b, rb) = straight_and_resumed(tmp_path, "implicit", epochs=4, stop_at=2, refresh_every=refresh_every, **IMPLICIT)
    assert torch.equal(ra.labels, rb.labels)
    for n, t in a.students.state.params.items():
        assert torch.equal(b.students.state.params[n], t)
    assert a.students.followed == b.students.followed == 16  # 4 epochs of 4 label steps


def test_a_refresh_replaces_one_student_in_turn_by_a_fresh_training_on_the_labels_as_they_are(short_dsa):
    from labeldistill.distill.students import ProtocolStudents

    p = blob_problem()
    learner = make_learner(TinyNet, 1, 6, 2, head="linear")
    g = torch.Generator().manual_seed(7)
    ys = [torch.softmax(torch.randn(6, 2, generator=g), -1) for _ in range(5)]
    st = ProtocolStudents(learner, short_dsa, channels=1, n_base=6, seed=3, students=2, follow_epochs=1, first_epochs=None,
                          zca=None, device=torch.device("cpu"), refresh_every=2)
    st.train_first(p.base_x, ys[0])

    def fresh(k: int, generation: int, y: torch.Tensor):
        return train_models(learner, p.base_x, y, 1, [st.refresh_seed(k, generation)], batch_size=6, recipe=st.first_recipe)

    def same(k: int, state) -> bool:
        return all(torch.equal(st.state.params[n][k], t[0]) for n, t in state.params.items())

    st.follow(p.base_x, ys[1])
    assert not same(0, fresh(0, 0, ys[1]))  # one step: both only followed
    before_1 = {n: t[1].clone() for n, t in st.state.params.items()}
    st.follow(p.base_x, ys[2])  # the second step: student 0 is the first refreshed, on the labels it just followed
    assert same(0, fresh(0, 0, ys[2])) and not same(1, fresh(1, 0, ys[2]))
    assert any(not torch.equal(st.state.params[n][1], t) for n, t in before_1.items())  # student 1 followed
    bufs = [st.opt.state[q]["momentum_buffer"] for q in st.opt.param_groups[0]["params"]]
    assert all(not b[0].any() for b in bufs) and any(b[1].any() for b in bufs)  # its momentum starts again
    st.follow(p.base_x, ys[3])
    st.follow(p.base_x, ys[4])  # the fourth: student 1's turn, with the second refresh's seed
    assert same(1, fresh(1, 1, ys[4])) and st.followed == 4
    assert st.refresh_seed(0, 0) != st.refresh_seed(1, 0) != st.refresh_seed(1, 1) and st.refresh_seed(0, 0) not in st.seeds
    # No refresh after the loop's last step: its student would never give a gradient.
    last = ProtocolStudents(learner, short_dsa, channels=1, n_base=6, seed=3, students=2, follow_epochs=1, first_epochs=None,
                            zca=None, device=torch.device("cpu"), refresh_every=2, last_step=2)
    last.train_first(p.base_x, ys[0])
    never = ProtocolStudents(learner, short_dsa, channels=1, n_base=6, seed=3, students=2, follow_epochs=1, first_epochs=None,
                             zca=None, device=torch.device("cpu"), refresh_every=0)
    never.train_first(p.base_x, ys[0])
    for y in ys[1:3]:
        last.follow(p.base_x, y)
        never.follow(p.base_x, y)
    assert all(torch.equal(last.state.params[n], t) for n, t in never.state.params.items())


@pytest.mark.parametrize("settings, message", [
    (dict(method="implicit"), "fixed-epoch --test-protocol"),
    (dict(method="implicit", test_protocol="dc"), "--select-protocol dc"),
    (dict(method="implicit", test_protocol="dc", select_protocol="dc", inner_batch=5), "--inner-batch 10"),
    (dict(method="implicit", test_protocol="dc", select_protocol="dc", augment="dsa"), "drop --augment"),
    (dict(method="implicit", test_protocol="dc", select_protocol="dc", arch="lenet"), "--arch convnet3"),
    (dict(method="implicit", test_protocol="dc", select_protocol="dc", students=0), "--students must be"),
    (dict(method="second-order", views=8), "--views sets the students of --method implicit"),
    (dict(method="implicit", test_protocol="dc", select_protocol="dc", refresh_every=-1), "--refresh-every must be a non-negative"),
    (dict(method="ridge", refresh_every=5), "--refresh-every sets the students of --method implicit"),
])
def test_bad_implicit_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(UserError, match=message.replace("-", r"\-")):
        DistillConfig(target="mnist", base=10, **settings).resolve("mnist", 1)


def test_implicit_resolves_to_the_tests_architecture_all_base_images_and_one_epoch():
    c = DistillConfig(target="mnist", base=10, method="implicit", test_protocol="dc-dsa", select_protocol="dc-dsa").resolve("mnist", 1)
    assert (c.arch, c.inner_batch, c.epochs) == ("convnet3", 10, 1)


def test_a_refresh_every_5_steps_is_the_default_and_stored_configs_keep_what_their_runs_did():
    from labeldistill.experiments.plan import normalise_distill

    kw = dict(target="mnist", base=10, method="implicit", test_protocol="dc-dsa", select_protocol="dc-dsa")
    assert DistillConfig(**kw).resolve("mnist", 1).refresh_every == 5
    assert DistillConfig(**kw, refresh_every=0).resolve("mnist", 1).refresh_every == 0  # never
    assert DistillConfig(target="mnist", base=10, method="ridge").resolve("mnist", 1).refresh_every is None  # no students
    stored = DistillConfig(**kw).resolve("mnist", 1).to_dict()
    assert DistillConfig.from_dict(stored).refresh_every == 5
    # A run made before the setting existed (no key), or one of session 33 that wrote None for never, did not refresh.
    for old in ({k: v for k, v in stored.items() if k != "refresh_every"}, {**stored, "refresh_every": None}):
        assert DistillConfig.from_dict(old).refresh_every == 0 and normalise_distill(old)["refresh_every"] == 0
    ridge = DistillConfig(target="mnist", base=10, method="ridge").resolve("mnist", 1).to_dict()
    assert DistillConfig.from_dict(ridge).refresh_every is None and normalise_distill(ridge)["refresh_every"] is None


def test_implicit_defaults_are_its_measured_settings_the_dataset_teacher_and_given_values_win():
    kw = dict(target="mnist", base=10, test_protocol="dc-dsa", select_protocol="dc-dsa", label_init="teacher")
    c = DistillConfig(method="implicit", **kw).resolve("mnist", 1)
    assert (c.target_batch, c.label_lr, c.label_param, c.target_scale) == (2048, 0.03, "logits", "fitted")
    assert c.teacher_arch == "lenet"  # the teacher of `baseline --labels teacher`, not the students' ConvNet-3
    given = DistillConfig(method="implicit", target_batch=1024, label_lr=1e-3, label_param="probabilities", target_scale="shared",
                          **kw).resolve("mnist", 1)
    assert (given.target_batch, given.label_lr, given.label_param, given.target_scale) == (1024, 1e-3, "probabilities", "shared")
    kd = DistillConfig(method="implicit", target_labels="teacher", **kw).resolve("mnist", 1)
    assert kd.target_scale == "shared"  # the fitted scale fits class indices: with a teacher's targets the default is shared
    with pytest.raises(UserError, match="does not take --target-labels teacher"):
        DistillConfig(method="implicit", target_labels="teacher", target_scale="fitted", **kw).resolve("mnist", 1)
    paper = DistillConfig(method="ridge", **kw).resolve("mnist", 1)
    assert (paper.target_batch, paper.label_lr, paper.label_param, paper.target_scale) == (1024, 1e-3, "probabilities", "shared")
    assert paper.teacher_arch == paper.arch == "lenet"


class TinyColourNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIDE * SIDE, 8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.features(x))


def colour_blob_problem(n_base: int = 6) -> Problem:
    """blob_problem in three channels (each its own noise): a protocol that whitens colour images whitens these."""
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> LabelledTensors:
        y = torch.arange(n) % 2
        return LabelledTensors(torch.where(y == 1, 1.5, -1.5)[:, None, None, None] + torch.randn(n, 3, SIDE, SIDE, generator=g), y,
                               np.arange(n))

    train, val, test = split(64), split(32), split(32)
    target = TargetData("colour-blobs", ["neg", "pos"], train, val, test, Preprocessing(3, SIDE, (0.5,) * 3, (0.5,) * 3), {}, "generated")
    return Problem(target, train.x[:n_base].clone(), train.y[:n_base].clone(), np.arange(n_base), "colour-blobs", ["neg", "pos"], "generated")


def test_colour_students_train_and_are_scored_on_the_protocols_whitened_images(tmp_path, monkeypatch):
    pytest.importorskip("kornia")  # ZCA and DSA (the [dsa] extra, part of the test install)
    monkeypatch.setenv("LABELDISTILL_CACHE", str(tmp_path / "cache"))
    short = dataclasses.replace(get_protocol("dc-dsa"), epochs=3, arch=None)  # dc-dsa whitens colour images (ZCA)
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc-dsa", short)
    p = colour_blob_problem()
    d = Distiller(_config("implicit", epochs=1, **IMPLICIT), p, model_factory=TinyColourNet, run_dir=tmp_path / "run", progress=False)
    zca = target_zca(short, p.target, 3)
    assert zca is not None and d.students is not None and d.students.zca is not None
    seen_targets = []
    step = d.strategy.step

    def capture(learner, model, xb, yb, xt, yt, wrt):
        seen_targets.append(xt.clone())
        return step(learner, model, xb, yb, xt, yt, wrt)

    monkeypatch.setattr(d.strategy, "step", capture)
    start = d.labels.seen()
    d.open_log(resume=False)
    d.start(bar=False)
    want = train_models(d.learner, zca.apply(p.base_x), start, 1, d.students.seeds, batch_size=6, recipe=short.recipe(3, lr=1e-3))
    for n, t in want.params.items():
        assert torch.equal(d.students.state.params[n], t)  # the first training saw the whitened base images
    d.advance()
    d.close()
    whitened = zca.apply(p.target.train.x)
    xt = seen_targets[0]
    assert xt.shape[0] == 16 and not torch.allclose(xt, p.target.train.x[: len(xt)])
    for row in xt:  # every target image the gradient is taken on is a whitened training image
        assert torch.isclose(whitened, row).flatten(1).all(1).any()


def test_an_implicit_set_has_no_paper_steps_so_its_start_skips_the_search_and_evaluate_uses_its_protocol(
        mnist_small, tmp_path, monkeypatch):
    import json

    import labeldistill
    from labeldistill.distill import start as start_mod
    from labeldistill.evaluation import evaluate, parse_steps

    short = dataclasses.replace(get_protocol("dc"), epochs=20, arch="lenet")
    monkeypatch.setitem(protocol_base.PROTOCOLS._items, "dc", short)

    def no_search(*args, **kwargs):
        raise AssertionError("the paper step search ran for a set that has no paper T")

    monkeypatch.setattr(start_mod, "choose_steps", no_search)
    cfg = DistillConfig(target=f"npz:{mnist_small}", base=20, method="implicit", label_init="onehot", test_protocol="dc",
                        select_protocol="dc", views=2, cg_iters=3, follow_epochs=2, device="cpu", seed=1, checkpoint_minutes=0.0)
    out = tmp_path / "run"
    labeldistill.distill(config=cfg, out=out, progress=False)
    r = json.loads((out / "result.json").read_text())
    assert r["start_candidate"]["curve"] == {} and r["T"] is None  # no step search, and no T in the result
    ds = labeldistill.load(out)
    assert ds.steps is None and ds.written_version == 3 and ds.recipe["test_protocol"] == "dc"  # nor in the set
    with pytest.raises(UserError, match="carry no T for the paper protocol; give --steps N"):
        evaluate(out, protocol="paper", save=False)
    with pytest.raises(UserError, match="carry no T"):
        evaluate(out, protocol="paper", steps="+50", save=False)  # a change of a T it does not have
    with pytest.raises(UserError, match="this set has none"):
        parse_steps("x0.5", ds.steps)
    assert parse_steps("30", ds.steps) == 30 and parse_steps(None, ds.steps) is None
    with pytest.raises(UserError, match="no T for the paper's training"):
        labeldistill.train_on(ds.images, ds.labels, "lenet", steps=ds.steps)
    own = evaluate(out, save=False)  # its own test protocol by default: the run's test again
    assert own["protocol"] == "dc" and own["accuracies"] == r["accuracies"]
    assert evaluate(out, protocol="paper", steps=30, models=2, save=False)["steps"] == 30
