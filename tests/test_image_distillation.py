"""Image distillation in the one online loop (the paper's "our DD" / "our DD RR", Appendix C).

Checked: the image meta-gradient of both methods (both second-order forms) against central
finite differences in float64, through the project's strategies and its normalisation;
clamping to [0, 1] and what the model sees; the choices' defaults; resume mid-run gives the
same images bit for bit; a short run on real MNIST; the distilled-set file's version 2.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import labeldistill
from labeldistill.data import Preprocessing
from labeldistill.distill import DistillConfig, Distiller, Interrupted, build_synthetic
from labeldistill.distill.images import LearnedImages
from labeldistill.distill.strategies import STRATEGIES
from labeldistill.distill.strategies.base import Wrt
from labeldistill.distill.validation import load_snapshots
from labeldistill.engine import Learner, ModelState
from labeldistill.errors import UserError
from labeldistill.runs import load_state, read_metrics
from test_distill_loop import TinyNet, _config, blob_problem

PRE = Preprocessing(1, 4, (0.1307,), (0.3081,))


class TinyConv(nn.Module):
    """A convolution, so that the image gradient goes through a convolution's input gradient."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 5), nn.Tanh())
        self.head = nn.Linear(5, classes)

    def forward(self, x):
        return self.head(self.features(x))


def _copy(state: ModelState) -> ModelState:
    """A fresh copy (a step writes .grad and the ridge head's W)."""
    return ModelState({n: p.detach().clone().requires_grad_() for n, p in state.params.items()},
                      {n: b.clone() for n, b in state.buffers.items()},
                      {n: h.detach().clone().requires_grad_(h.requires_grad) for n, h in state.head.items()})


def _setup(method: str):
    torch.manual_seed(0)
    learner = Learner(lambda: TinyConv().double(), head="ridge" if method == "ridge" else "linear")
    state = learner.init([7])
    if method == "ridge":  # a non-zero global W, as after some steps
        state.head["w"] = torch.randn_like(state.head["w"]) * 0.3
    g = torch.Generator().manual_seed(1)
    pixels = 0.2 + 0.6 * torch.rand(5, 1, 4, 4, dtype=torch.float64, generator=g)  # away from the clamp
    images = LearnedImages(pixels, PRE)
    yb = torch.softmax(torch.randn(3, 3, dtype=torch.float64, generator=g), -1)
    xt = torch.randn(8, 1, 4, 4, dtype=torch.float64, generator=g)
    yt = torch.randint(0, 3, (8,), generator=g)
    return learner, state, images, yb, xt, yt


ROWS = torch.tensor([3, 0, 4])  # the inner minibatch: rows 1 and 2 of the set are not in it
FORMS = [("second-order", "jvp"), ("second-order", "double-backward"), ("ridge", "jvp")]


@pytest.mark.parametrize("method,form", FORMS)
@pytest.mark.parametrize("labels_too", [False, True])
def test_image_meta_gradient_matches_finite_differences(method, form, labels_too):
    learner, state, images, yb, xt, yt = _setup(method)
    strategy = STRATEGIES.get(method)(inner_lr=0.3, meta_gradient=form)  # a large alpha: second-order terms matter
    wrt = Wrt(images=True, labels=labels_too)

    def loss(pixels: torch.Tensor, y: torch.Tensor) -> float:
        return strategy.step(learner, _copy(state), images.normalise(pixels[ROWS]), y, xt, yt, wrt).loss.item()

    out = strategy.step(learner, _copy(state), images.batch(ROWS), yb, xt, yt, wrt)
    grad = images.pixel_grad(ROWS, out.image_grad)  # the pixel-space gradient the images' Adam receives
    assert (out.label_grad is not None) == labels_too
    assert not grad[1].any() and not grad[2].any()
    p0, eps = images.pixels.detach(), 1e-5
    for idx in [(3, 0, 0, 0), (3, 0, 2, 1), (0, 0, 1, 3), (4, 0, 3, 3), (4, 0, 1, 2)]:
        plus, minus = p0.clone(), p0.clone()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (loss(plus, yb) - loss(minus, yb)) / (2 * eps)
        assert grad[idx].item() == pytest.approx(fd, rel=1e-6, abs=1e-10), idx
    if labels_too:
        for idx in [(0, 0), (1, 2), (2, 1)]:
            plus, minus = yb.clone(), yb.clone()
            plus[idx] += eps
            minus[idx] -= eps
            fd = (loss(p0, plus) - loss(p0, minus)) / (2 * eps)
            assert out.label_grad[idx].item() == pytest.approx(fd, rel=1e-6, abs=1e-10), idx


@pytest.mark.parametrize("labels_too", [False, True])
def test_second_order_image_forms_agree(labels_too):
    """Reverse over forward (the JVP form) equals double backward, model gradients included."""
    learner, state, images, yb, xt, yt = _setup("second-order")
    wrt = Wrt(images=True, labels=labels_too)
    outs, grads = [], []
    for form in ("jvp", "double-backward"):
        s = _copy(state)
        outs.append(STRATEGIES.get("second-order")(inner_lr=0.3, meta_gradient=form).step(learner, s, images.batch(ROWS), yb, xt, yt, wrt))
        grads.append({n: p.grad for n, p in s.params.items()})
    a, b = outs
    torch.testing.assert_close(a.image_grad, b.image_grad, rtol=1e-10, atol=1e-13)
    if labels_too:
        torch.testing.assert_close(a.label_grad, b.label_grad, rtol=1e-10, atol=1e-13)
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-12, atol=1e-14)


def test_images_are_clamped_after_every_step():
    g = torch.Generator().manual_seed(0)
    images = LearnedImages(torch.rand(4, 1, 4, 4, generator=g), PRE, lr=0.5)
    before = images.pixels.detach().clone()
    grad = torch.randn(2, 1, 4, 4, generator=g)  # d loss / d normalised images of rows 0 and 2
    images.step(torch.tensor([0, 2]), grad)
    p = images.pixels.detach()
    assert p.min() == 0.0 and p.max() == 1.0  # a step of 0.5 against the gradient's sign hits both ends
    # Adam's first step moves each pixel by lr * sign(gradient) (up to its eps); then the clamp.
    torch.testing.assert_close(p[[0, 2]], (before[[0, 2]] - 0.5 * grad.sign()).clamp(0, 1), rtol=0, atol=1e-6)
    assert torch.equal(p[[1, 3]], before[[1, 3]])  # rows outside the minibatch have no gradient yet
    torch.testing.assert_close(images.seen(), (p - 0.1307) / 0.3081)


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_loop_step_shows_the_model_normalised_images(method):
    """Inside a loop step the strategy sees (pixels - mean) / std of the current pixels, with fixed
    one-hot labels, and afterwards the pixels are back in [0, 1]."""
    d = Distiller(_config(method, learn="images", image_lr=0.3), blob_problem(), model_factory=TinyNet, progress=False)
    d._start_epoch()
    d._stepper = d._build_stepper()
    seen = []
    step = d.strategy.step
    d.strategy.step = lambda *a, **k: (seen.append((a[2].clone(), a[3].clone(), a[6])), step(*a, **k))[1]
    pre = d.problem.target.preprocessing
    inner = torch.tensor([5, 1, 2, 0])
    for _ in range(3):
        pixels = d.synthetic.images.pixels.detach().clone()
        d._stepper(torch.arange(16), inner)
        xb, yb, wrt = seen[-1]
        assert torch.equal(xb, (pixels[inner] - pre.mean[0]) / pre.std[0])
        assert torch.equal(yb, torch.nn.functional.one_hot(inner % 2, 2).float())  # classes in turn
        assert wrt == Wrt(images=True, labels=False)
        p = d.synthetic.images.pixels.detach()
        assert p.min() >= 0 and p.max() <= 1 and not torch.equal(p, pixels)


def test_choices_and_defaults(mnist_small):
    c = DistillConfig(learn="images", base=200).resolve("cifar100", 3)
    assert c.reset_window == 50 and c.image_init == "uniform"  # LD would take 100 here
    assert DistillConfig(learn="images", reset_window=7).resolve("mnist", 1).reset_window == 7
    both = DistillConfig(learn="images+labels").resolve("mnist", 1)
    assert both.image_init == "real" and both.reset_window == 50
    plain = DistillConfig(base=200).resolve("mnist", 1)
    assert plain.learn == "labels" and plain.image_init is None and plain.reset_window == 200
    with pytest.raises(UserError, match="needs learned images"):
        DistillConfig(image_init="real").validate()
    with pytest.raises(UserError, match="Known: images, images\\+labels, labels"):
        DistillConfig(learn="pixels").validate()
    # Real images: the model first sees the base images themselves, with their true classes.
    from labeldistill.distill.run import prepare

    cfg, problem, _ = prepare(DistillConfig(target=f"npz:{mnist_small}", base=10, learn="images", image_init="real", device="cpu"))
    syn = build_synthetic(cfg.learn, problem, seed=0, image_init=cfg.image_init)
    torch.testing.assert_close(syn.images.seen(), problem.base_x, rtol=0, atol=2e-6)
    assert torch.equal(syn.labels.seen().argmax(-1), problem.base_y) and syn.labels.seen().sum() == 10
    noise = build_synthetic("images", problem, seed=0)
    assert noise.image_init == "uniform" and torch.equal(noise.labels.seen().argmax(-1), torch.arange(10) % 10)
    assert torch.equal(noise.images.pixels, build_synthetic("images", problem, seed=0).images.pixels)  # the seed's own stream
    both = build_synthetic("images+labels", problem, seed=0)
    assert both.wrt == Wrt(images=True, labels=True) and torch.all(both.labels.seen() == 0.1)


@pytest.mark.parametrize("method,learn", [("second-order", "images"), ("ridge", "images+labels")])
def test_resume_mid_run_gives_the_same_images(tmp_path, method, learn):
    """Stopped after step 7 (inside epoch 2), resumed from the checkpoint: the same images, labels,
    Adam state, model, metrics and selection as a straight run, bit for bit (CPU)."""
    cfg = _config(method, epochs=4, learn=learn, image_lr=0.05)
    problem = blob_problem()
    straight = Distiller(cfg, problem, model_factory=TinyNet, run_dir=tmp_path / "a", progress=False)
    straight.open_log(resume=False)
    res_a = straight.run()
    straight.close()

    first = Distiller(cfg, problem, model_factory=TinyNet, run_dir=tmp_path / "b", progress=False)
    first.open_log(resume=False)
    one_step = first._one_step

    def stop_after_seven() -> None:
        one_step()
        first._stop.requested = first.step + 1 >= 7  # the loop counts the step after this call

    first._one_step = stop_after_seven
    with pytest.raises(Interrupted):
        first.run()
    first.close()
    saved = load_state(tmp_path / "b" / "checkpoint.safetensors")
    assert int(saved["step"]) == 7 and {"images", "images_opt", "initial_images"} <= set(saved)
    second = Distiller(cfg, problem, model_factory=TinyNet, run_dir=tmp_path / "b", progress=False)
    second.open_log(resume=True)
    assert second.step == 7 and second.pos == 3
    res_b = second.run()
    second.close()

    a, b = straight.synthetic.images, second.synthetic.images
    assert torch.equal(a.pixels, b.pixels) and not torch.equal(a.pixels, a.initial)
    assert torch.equal(a.initial, b.initial)
    sa, sb = a.opt.state[a.pixels], b.opt.state[b.pixels]
    assert all(torch.equal(sa[k], sb[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert torch.equal(straight.labels.value, second.labels.value)
    for n, p in straight.model.params.items():
        assert torch.equal(p, second.model.params[n]), n
    assert torch.equal(res_a.images, res_b.images) and torch.equal(res_a.labels, res_b.labels) and res_a.steps == res_b.steps
    steps = lambda d: [r for r in read_metrics(d / "metrics.jsonl") if r["kind"] == "step"]  # noqa: E731
    assert steps(tmp_path / "a") == steps(tmp_path / "b")
    snaps = load_snapshots(tmp_path / "b")
    assert snaps and all(s.images is not None for s in snaps)
    assert any(torch.equal(s.images, res_b.images) for s in snaps)  # the selected snapshot's images


@pytest.mark.parametrize("method", ["ridge", "second-order"])
def test_images_learned_on_real_mnist(mnist_small, tmp_path, method):
    """A short run from uniform noise: the images move, the target loss falls, the file records it,
    export keeps the learned images, and evaluate trains on them.

    At the paper's image lr (1e-3) 40 steps move a pixel by at most 0.04 and the persistent model
    over-fits the noise (the target loss rose from 2.30 to 2.5-2.8 in such runs, as with frozen
    images); with lr 0.03 the images carry the target: the loss fell from 2.30 to 2.0 (RR) / 1.4."""
    run = tmp_path / "run"
    ds = labeldistill.distill(f"npz:{mnist_small}", base=10, method=method, learn="images", image_lr=0.03, epochs=4, target_batch=256,
                              val_every=2, test_models=2, seed=1, device="cpu", progress=False, out=run)
    steps = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "step"]
    assert len(steps) == 40 and not any(r.get("reset") for r in steps)  # 10 steps per epoch; window 50
    first, last = (sum(r["loss"] for r in part) / len(part) for part in (steps[:8], steps[-8:]))
    assert last < first - 0.1, (first, last)

    back = labeldistill.load(run)
    assert back.learned == "images" and back.image_init == "uniform" and back.initial_images is not None
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, torch.eye(10))
    moved = (back.images - back.initial_images).abs()
    assert moved.max() > 0.5 and moved.mean() > 0.01  # normalised units: the images left their noise
    lo, hi = (0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081
    assert back.images.min() >= lo - 1e-6 and back.images.max() <= hi + 1e-6  # clamped pixels
    assert back.provenance["learned"] == "images" and back.provenance["image_init"] == "uniform"
    assert back.provenance["base_indices"] is None and back.recipe["learned"] == "images"
    assert back.evaluation == ds.evaluation and back.evaluation["learned"] == "images"

    out = tmp_path / "shared.safetensors"
    done = subprocess.run([sys.executable, "-m", "labeldistill", "export", str(run), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shared = labeldistill.load(out)
    assert torch.equal(shared.images, back.images) and torch.equal(shared.initial_images, back.initial_images)
    assert shared.learned == "images" and shared.provenance["image_init"] == "uniform" and shared.evaluation is None
    r = labeldistill.evaluate(out, target=f"npz:{mnist_small}", models=2, device="cpu")
    assert r["learned"] == "images" and r["models"] == 2 and 0 <= r["accuracy_mean"] <= 100


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_load_run_dir_fills_evaluation(mnist_small, tmp_path, method):
    ds = labeldistill.distill(f"npz:{mnist_small}", base=10, method=method, epochs=1, target_batch=1024, test_models=2,
                              device="cpu", progress=False, out=tmp_path / "run")
    back = labeldistill.load(tmp_path / "run")
    assert back.evaluation == ds.evaluation and back.evaluation["method"] == method and "config" not in back.evaluation
    assert back.learned == "labels" and back.image_init is None and back.initial_images is None
    assert labeldistill.load(tmp_path / "run" / "distilled.safetensors").evaluation is None  # a file alone has no run result
    assert json.loads((tmp_path / "run" / "result.json").read_text())["accuracies"] == back.evaluation["accuracies"]


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_cuda_graph_image_step_equals_eager(method):
    """On a GPU: learning images with the step replayed as a CUDA graph equals the eager loop."""
    from test_distill_step import _on

    results = []
    for graph in (False, True):
        cfg = _config(method, learn="images", epochs=12, target_batch=16, reset_window=2, val_every=4, device="cuda", cuda_graph=graph)
        d = Distiller(cfg, _on(blob_problem(), "cuda"), model_factory=TinyNet, progress=False)
        d.run()
        assert d._stepper is not None and (d._stepper._graph is not None) == graph, "the graph was not used"
        results.append((d.synthetic.images.pixels.detach().cpu(), list(d.monitor.t_list)))
    (eager, t_eager), (graphed, t_graphed) = results
    assert t_eager == t_graphed
    torch.testing.assert_close(graphed, eager, rtol=0, atol=1e-6)


def test_default_image_lr_follows_the_start():
    """1e-3 from noise (the paper's DD), 1e-4 when refining real images; an explicit lr wins; label runs record 1e-3."""
    from labeldistill.distill.learned import IMAGE_LRS

    def lr(**kw):
        return DistillConfig(target="mnist", base=100, **kw).resolve("mnist", 1).image_lr

    assert IMAGE_LRS == {"uniform": 1e-3, "real": 1e-4}
    assert lr() == 1e-3 and lr(learn="images") == 1e-3 and lr(learn="images+labels", image_init="uniform") == 1e-3
    assert lr(learn="images+labels") == 1e-4 and lr(learn="images", image_init="real") == 1e-4
    assert lr(learn="images+labels", image_lr=3e-4) == 3e-4
    # The synthetic set built from an unresolved config uses the same rule.
    syn = build_synthetic("images+labels", blob_problem(), seed=0)
    assert syn.images.opt.param_groups[0]["lr"] == 1e-4
    assert build_synthetic("images", blob_problem(), seed=0).images.opt.param_groups[0]["lr"] == 1e-3


def test_ridge_image_step_is_the_reference_formulation():
    """Our DD RR step against the authors' formulation written out (float64, explicit inverse as in
    their ``get_local_weights``): Z = [f(X), 1], W_l = Z^T (Z Z^T + I)^-1 Y, W' = 0.99 W + 0.01 W_l;
    the images move by d CE([f(x_t), 1] s W', y_t) / d pixels (through the normalisation, s held);
    the model and s by d softCE([f(X), 1] s W', Y) / d (theta, s), through both W' and the features."""
    learner, state, images, _, xt, yt = _setup("ridge")
    yb = torch.eye(3, dtype=torch.float64)  # one-hot, classes in turn: image distillation's fixed labels
    ours = _copy(state)
    out = STRATEGIES.get("ridge")().step(learner, ours, images.batch(ROWS), yb, xt, yt, Wrt(images=True, labels=False))
    pix_grad = images.pixel_grad(ROWS, out.image_grad)

    params = {n: p[0].detach().clone().requires_grad_() for n, p in state.params.items()}
    buffers = {n: b[0] for n, b in state.buffers.items()}
    w0, s = state.head["w"][0].detach(), state.head["s"][0].detach().clone().requires_grad_()
    pixels = images.pixels.detach().clone().requires_grad_()
    x = (pixels[ROWS] - images.mean) / images.std
    z = torch.cat([learner.body(params, buffers, x), torch.ones(3, 1, dtype=torch.float64)], 1)
    w_local = z.T @ torch.inverse(z @ z.T + torch.eye(3, dtype=torch.float64)) @ yb
    w = 0.99 * w0 + 0.01 * w_local
    zt = torch.cat([learner.body(params, buffers, xt), torch.ones(len(xt), 1, dtype=torch.float64)], 1)
    data_loss = nn.functional.cross_entropy(zt @ (s.detach() * w), yt)
    (ref_pix_grad,) = torch.autograd.grad(data_loss, pixels, retain_graph=True)
    feat_loss = -(yb * torch.log_softmax(z @ (s * w), 1)).sum(1).mean()
    ref_model_grads = torch.autograd.grad(feat_loss, [*params.values(), s])

    assert out.loss.item() == pytest.approx(data_loss.item(), rel=1e-12)
    assert torch.allclose(pix_grad, ref_pix_grad, rtol=1e-9, atol=1e-12)
    for (name, p), g in zip(ours.params.items(), ref_model_grads[:-1]):
        assert torch.allclose(p.grad[0], g, rtol=1e-9, atol=1e-12), name
    assert torch.allclose(ours.head["s"].grad[0], ref_model_grads[-1], rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours.head["w"][0], w.detach(), rtol=1e-12)  # the global W after the step
