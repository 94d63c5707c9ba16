"""The K-step lookahead strategy (distill/strategies/lookahead.py): its label and image meta-gradients against central
finite differences of the loss recomputed by hand (K virtual SGD steps, float64); horizon 1 equals the second-order
method bit for bit; the config's and the CLI's rules for --horizon; a short run end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from labeldistill.distill import DistillConfig
from labeldistill.distill.strategies import STRATEGIES
from labeldistill.distill.strategies.base import Wrt
from labeldistill.engine import Learner
from labeldistill.errors import UserError
from tests.test_strategies import TinyMLP, _central_differences, _problem, _soft_ce

ALPHA = 0.3  # large enough that the later virtual steps matter to the gradient


def _loss_by_hand(module, params, xb, y, xt, yt, horizon):
    theta = {n: p.detach().clone() for n, p in params.items()}
    for _ in range(horizon):
        t = {n: p.clone().requires_grad_() for n, p in theta.items()}
        grads = torch.autograd.grad(_soft_ce(functional_call(module, t, (xb,)), y), list(t.values()))
        theta = {n: t[n].detach() - ALPHA * g for n, g in zip(t, grads)}
    return F.cross_entropy(functional_call(module, theta, (xt,)), yt).item()


@pytest.mark.parametrize("horizon", [1, 3])
def test_label_and_image_gradients_equal_finite_differences(horizon):
    learner = Learner(lambda: TinyMLP().double())
    state = learner.init([2])
    xb, yb, xt, yt = _problem((1, 3, 4), 3, n=4, m=6, seed=3)
    strat = STRATEGIES.get("lookahead")(inner_lr=ALPHA, horizon=horizon)
    out = strat.step(learner, state, xb, yb, xt, yt, Wrt(images=True, labels=True))
    module = TinyMLP().double()
    params = {n: t[0].detach() for n, t in state.params.items()}
    loss = _loss_by_hand(module, params, xb, yb, xt, yt, horizon)
    assert out.loss.item() == pytest.approx(loss, rel=1e-10)
    fd_y = _central_differences(lambda y: _loss_by_hand(module, params, xb, y, xt, yt, horizon), yb)
    fd_x = _central_differences(lambda x: _loss_by_hand(module, params, x, yb, xt, yt, horizon), xb)
    assert fd_y.abs().max() > 1e-4 and fd_x.abs().max() > 1e-4
    torch.testing.assert_close(out.label_grad, fd_y, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(out.image_grad, fd_x, rtol=1e-5, atol=1e-9)
    # The persistent model keeps the first virtual step's gradient (the inner loss at the current parameters).
    theta = {n: p.clone().requires_grad_() for n, p in params.items()}
    first = torch.autograd.grad(_soft_ce(functional_call(module, theta, (xb,)), yb), list(theta.values()))
    for p, g in zip(state.params.values(), first):
        torch.testing.assert_close(p.grad[0], g, rtol=1e-12, atol=1e-15)


def test_a_longer_horizon_changes_the_gradient():
    """The horizon is not ignored: 1 and 3 steps give different label gradients on the same problem."""
    learner = Learner(lambda: TinyMLP().double())
    state = learner.init([2])
    xb, yb, xt, yt = _problem((1, 3, 4), 3, n=4, m=6, seed=3)
    g1 = STRATEGIES.get("lookahead")(inner_lr=ALPHA, horizon=1).step(learner, state, xb, yb, xt, yt).label_grad
    g3 = STRATEGIES.get("lookahead")(inner_lr=ALPHA, horizon=3).step(learner, state, xb, yb, xt, yt).label_grad
    assert (g1 - g3).abs().max() > 1e-3 * g1.abs().max()


@pytest.mark.parametrize("method, form", [("lookahead", "double-backward"), ("lookahead-linear", "jvp")])
def test_horizon_one_is_the_second_order_method_bit_for_bit(method, form):
    """lookahead at horizon 1 is the second-order step's double-backward form, lookahead-linear its JVP form."""
    learner = Learner(lambda: TinyMLP())
    state = learner.init([5])
    g = torch.Generator().manual_seed(0)
    xb, xt = torch.randn(6, 1, 3, 4, generator=g), torch.randn(9, 1, 3, 4, generator=g)
    yb, yt = torch.softmax(torch.randn(6, 3, generator=g), -1), torch.randint(0, 3, (9,), generator=g)
    a = STRATEGIES.get(method)(inner_lr=0.01).step(learner, state, xb, yb, xt, yt)
    grads_a = [p.grad.clone() for p in state.params.values()]
    b = STRATEGIES.get("second-order")(inner_lr=0.01, meta_gradient=form).step(learner, state, xb, yb, xt, yt)
    grads_b = [p.grad.clone() for p in state.params.values()]
    assert torch.equal(a.label_grad, b.label_grad) and torch.equal(a.loss, b.loss) and torch.equal(a.error, b.error)
    assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b))


def test_horizon_rules():
    with pytest.raises(ValueError, match="horizon 1"):
        STRATEGIES.get("second-order")(horizon=2)
    with pytest.raises(UserError, match="--horizon 3 needs --method lookahead or lookahead-linear"):
        DistillConfig(target="digits", base=20, method="ridge", horizon=3).resolve("digits", 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UserError, match="--horizon must be a positive integer"):
            DistillConfig(target="digits", base=20, method="lookahead", horizon=bad).resolve("digits", 1)


@pytest.mark.parametrize("method", ["lookahead", "lookahead-linear"])
def test_a_lookahead_run_end_to_end(tmp_path, method):
    """A short run of the loop with --method lookahead on the embedded digits: it learns (labels move) and records its
    horizon in the run's config; the horizon changes the labels."""
    from labeldistill.distill import distill

    runs = {}
    for h in (1, 2):
        runs[h] = distill("digits", base=20, method=method, horizon=h, epochs=2, test_models=2, device="cpu", seed=0,
                          out=tmp_path / f"h{h}", progress=False)
    for h, ds in runs.items():
        assert torch.isfinite(ds.labels).all() and not torch.allclose(ds.labels, torch.full_like(ds.labels, 0.1))
    assert not torch.equal(runs[1].labels, runs[2].labels)
    import json

    saved = json.loads((tmp_path / "h2" / "config.json").read_text())
    assert saved["config"]["horizon"] == 2 and saved["config"]["method"] == method
    np.testing.assert_allclose(runs[2].labels.sum(-1).numpy(), 1.0, rtol=1e-5)


# -- lookahead-linear: the K-step lookahead linearised at theta_0 (a Neumann series) ---------------------------------
def _flat(module, params):
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]

    def unflat(w):
        return dict(zip(names, [c.view(s) for c, s in zip(w.split(sizes), shapes)]))

    return torch.cat([p.reshape(-1) for p in params.values()]), unflat


def test_linearised_lookahead_equals_its_dense_formula():
    """u = sum_{j<K} (I - alpha H)^j v with H the inner loss's dense Hessian at theta_0 and v the target gradient after K
    real SGD steps; the label gradient (alpha / n) J u with J the dense Jacobian of log softmax on the inner images."""
    horizon, alpha = 4, 0.2
    learner = Learner(lambda: TinyMLP().double())
    state = learner.init([7])
    xb, yb, xt, yt = _problem((1, 3, 4), 3, n=5, m=7, seed=4)
    out = STRATEGIES.get("lookahead-linear")(inner_lr=alpha, horizon=horizon).step(learner, state, xb, yb, xt, yt)
    module = TinyMLP().double()
    w0, unflat = _flat(module, {n: t[0].detach() for n, t in state.params.items()})

    def inner(w):
        return _soft_ce(functional_call(module, unflat(w), (xb,)), yb)

    w = w0.clone()
    for _ in range(horizon):
        wr = w.clone().requires_grad_()
        (g,) = torch.autograd.grad(inner(wr), [wr])
        w = w - alpha * g
    wr = w.clone().requires_grad_()
    (v,) = torch.autograd.grad(F.cross_entropy(functional_call(module, unflat(wr), (xt,)), yt), [wr])
    h = torch.autograd.functional.hessian(inner, w0)
    m = torch.eye(len(w0), dtype=torch.float64) - alpha * h
    u = sum(torch.linalg.matrix_power(m, j) @ v for j in range(horizon))
    jac = torch.autograd.functional.jacobian(lambda w: torch.log_softmax(functional_call(module, unflat(w), (xb,)), -1), w0)
    ref = (alpha / len(xb)) * (jac @ u)
    assert ref.abs().max() > 1e-4
    torch.testing.assert_close(out.label_grad, ref, rtol=1e-9, atol=1e-13)
    assert out.loss.item() == pytest.approx(F.cross_entropy(functional_call(module, unflat(w), (xt,)), yt).item(), rel=1e-12)


def test_linearised_lookahead_approximates_the_exact_one_for_small_steps():
    """Linearising the steps' Jacobian at theta_0 errs by O(alpha K) relative to the exact K-step gradient."""
    learner = Learner(lambda: TinyMLP().double())
    state = learner.init([7])
    xb, yb, xt, yt = _problem((1, 3, 4), 3, n=5, m=7, seed=4)
    for alpha, bound in ((0.01, 0.01), (0.001, 0.001)):
        exact = STRATEGIES.get("lookahead")(inner_lr=alpha, horizon=5).step(learner, state, xb, yb, xt, yt).label_grad
        lin = STRATEGIES.get("lookahead-linear")(inner_lr=alpha, horizon=5).step(learner, state, xb, yb, xt, yt).label_grad
        assert (lin - exact).norm() <= bound * exact.norm()


def test_linearised_lookahead_learns_labels_only():
    learner = Learner(lambda: TinyMLP())
    state = learner.init([5])
    xb, yb, xt, yt = _problem((1, 3, 4), 3, n=4, m=6, seed=3)
    with pytest.raises(ValueError, match="labels only"):
        STRATEGIES.get("lookahead-linear")().step(learner, state, xb.float(), yb.float(), xt.float(), yt,
                                                  Wrt(images=True, labels=False))
