"""The label meta-gradients of the two strategies, against independent references.

Second order: theta' = theta - alpha * grad L_inner(theta; xb, yb), target loss
CE(f_theta'(xt), yt), differentiated w.r.t. yb. Checked: JVP form == double-backward form;
both == central finite differences of the loss recomputed by hand; the closed form for a
linear two-class softmax model (Appendix B of the paper, rederived below); the paper's
one-layer sigmoid formula, through the strategy.
Ridge: the gradient through W_l (Woodbury) == finite differences of the loss recomputed by hand.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from labeldistill.distill.strategies import STRATEGIES
from labeldistill.engine import Learner
from labeldistill.models import build_model
from labeldistill.models import conv as conv_mod

ALPHA = 0.01


class TinyMLP(nn.Module):
    """A user-style module with the features + head surface."""

    def __init__(self, d_in: int = 12, hidden: int = 7, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(d_in, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.head(self.features(x))


class LinearSoftmax(nn.Module):
    """Identity features on the flattened input, a linear 2-output head (2-class softmax)."""

    def __init__(self, d: int = 4, bias: bool = True) -> None:
        super().__init__()
        self.features = nn.Flatten()
        self.head = nn.Linear(d, 2, bias=bias)

    def forward(self, x):
        return self.head(self.features(x))


def _soft_ce(logits, y):
    return -(y * torch.log_softmax(logits, -1)).sum(-1).mean()


def _problem(shape, classes, n=4, m=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    xb = torch.randn(n, *shape, dtype=torch.float64, generator=g)
    yb = torch.softmax(torch.randn(n, classes, dtype=torch.float64, generator=g), -1)
    xt = torch.randn(m, *shape, dtype=torch.float64, generator=g)
    yt = torch.randint(0, classes, (m,), generator=g)
    return xb, yb, xt, yt


def _setups():
    return {
        "lenet": (lambda: build_model("lenet", 1, 28, 10).double(), (1, 28, 28), 10),
        "mlp": (lambda: TinyMLP().double(), (1, 3, 4), 3),
    }


def _step(kind, learner, state, xb, yb, xt, yt):
    strat = STRATEGIES.get("second-order")(inner_lr=ALPHA, meta_gradient=kind)
    for p in state.params.values():
        p.grad = None
    out = strat.step(learner, state, xb, yb, xt, yt)
    grads = {n: p.grad.detach().clone() for n, p in state.params.items()}
    return out, grads


def _second_order_loss_by_hand(module, params, xb, y, xt, yt):
    """theta' = theta - alpha grad L_inner(theta; xb, y); CE(f_theta'(xt), yt)."""
    theta = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
    inner = _soft_ce(functional_call(module, theta, (xb,)), y)
    grads = torch.autograd.grad(inner, list(theta.values()))
    theta1 = {n: theta[n].detach() - ALPHA * g for n, g in zip(theta, grads)}
    return F.cross_entropy(functional_call(module, theta1, (xt,)), yt).item()


def _central_differences(fn, y, eps=1e-6):
    grad = torch.zeros_like(y)
    for idx in np.ndindex(*y.shape):
        yp, ym = y.clone(), y.clone()
        yp[idx] += eps
        ym[idx] -= eps
        grad[idx] = (fn(yp) - fn(ym)) / (2 * eps)
    return grad


@pytest.mark.parametrize("which", ["lenet", "lenet-phases", "mlp"])
def test_second_order_jvp_equals_double_backward_equals_finite_differences(which, monkeypatch):
    factory, shape, classes = _setups()[which.removesuffix("-phases")]
    if which == "lenet-phases":  # LeNet's CPU conv + pool path (models/conv.py) in every pass of the step
        monkeypatch.setattr(conv_mod, "MIN_BATCH", 1)
    learner = Learner(factory)
    state = learner.init([4])
    xb, yb, xt, yt = _problem(shape, classes, n=3, m=5, seed=1)
    before = {n: p.detach().clone() for n, p in state.params.items()}
    jvp_out, jvp_grads = _step("jvp", learner, state, xb, yb, xt, yt)
    db_out, db_grads = _step("double-backward", learner, state, xb, yb, xt, yt)
    monkeypatch.undo()  # the references below run on the library's layers
    # The step leaves the model's parameters alone (the loop steps the optimiser).
    for n, p in state.params.items():
        assert torch.equal(p.detach(), before[n])
    assert jvp_out.label_grad.shape == yb.shape
    torch.testing.assert_close(jvp_out.label_grad, db_out.label_grad, rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(jvp_out.loss, db_out.loss)
    torch.testing.assert_close(jvp_out.error.double(), db_out.error.double())
    # Both leave the inner-loss gradient (labels before the update) on the parameters.
    module = factory()
    params = {n: t[0] for n, t in before.items()}
    theta = {n: p.clone().requires_grad_() for n, p in params.items()}
    inner_grads = torch.autograd.grad(_soft_ce(functional_call(module, theta, (xb,)), yb), list(theta.values()))
    for (n, g) in zip(theta, inner_grads):
        torch.testing.assert_close(jvp_grads[n][0], g, rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(db_grads[n][0], g, rtol=1e-9, atol=1e-14)
    # Target loss and error of the virtually updated model, recomputed by hand.
    loss = _second_order_loss_by_hand(module, params, xb, yb, xt, yt)
    assert jvp_out.loss.item() == pytest.approx(loss, rel=1e-10)
    # Finite differences of the hand-computed target loss w.r.t. the inner labels.
    fd = _central_differences(lambda y: _second_order_loss_by_hand(module, params, xb, y, xt, yt), yb)
    assert fd.abs().max() > 1e-6  # a meaningful comparison
    torch.testing.assert_close(jvp_out.label_grad, fd, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(db_out.label_grad, fd, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("bias", [True, False])
def test_second_order_two_class_closed_form(bias):
    """Appendix B for a 2-class softmax model z = W x + b (W: 2 x D), derived by hand.

    L_inner = -(1/n) sum_i sum_c y~_ic log p_c(x~_i) is linear in y~, so
        d theta' / d y~_ic = -alpha d/dy~_ic grad L_inner = (alpha/n) grad_theta log p_c(x~_i),
    with d log p_c(x~)/d W_k = (delta_kc - p_k(x~)) x~  (and (delta_kc - p_k) for b_k).
    The target loss L = (1/m) sum_j CE(theta'; x_j, y_j) has
        dL/dW'_k = (1/m) sum_j g_jk x_j,   g_jk = p'_k(x_j) - delta_{k,y_j}   (dL/db'_k: g_jk),
    so, with s_ij = x~_i . x_j (+ 1 with the bias),
        dL/dy~_ic = alpha/(n m) sum_j s_ij (g_jc - sum_k p_k(x~_i) g_jk).
    For two classes sum_k g_jk = 0, g_j1 - g_j0 = 2 (sigma(d'_j) - y_j) with d' the logit
    difference under theta', and p(x~_i) cancels in the difference:
        dL/dy~_i1 - dL/dy~_i0 = 2 alpha/(n m) sum_j (sigma(d'_j) - y_j) s_ij,
    the paper's alpha (sigma(theta'^T x) - y) x^T x~ (with theta', not theta), the factor 2
    because both logits move in the inner step.
    """
    d, n, m = 4, 3, 5
    learner = Learner(lambda: LinearSoftmax(d, bias).double())
    state = learner.init([2])
    g = torch.Generator().manual_seed(5)
    xb = torch.randn(n, 1, 2, 2, dtype=torch.float64, generator=g)
    yb = torch.softmax(torch.randn(n, 2, dtype=torch.float64, generator=g), -1)
    xt = torch.randn(m, 1, 2, 2, dtype=torch.float64, generator=g)
    yt = torch.tensor([0, 1, 1, 0, 1])
    out, _ = _step("jvp", learner, state, xb, yb, xt, yt)

    W = state.params["head.weight"][0].detach().numpy()
    b = state.params["head.bias"][0].detach().numpy() if bias else np.zeros(2)
    Xb, Xt, Y, yt_np = xb.reshape(n, d).numpy(), xt.reshape(m, d).numpy(), yb.numpy(), yt.numpy()

    def softmax(a):
        e = np.exp(a - a.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    P = softmax(Xb @ W.T + b)  # n x 2, inner predictions under theta
    G_inner = (P * Y.sum(1, keepdims=True) - Y) / n  # dL_inner / dz, n x 2
    W1 = W - ALPHA * G_inner.T @ Xb
    b1 = b - ALPHA * G_inner.sum(0) if bias else b
    d1 = Xt @ (W1[1] - W1[0]) + (b1[1] - b1[0])  # logit difference under theta'
    sig = 1 / (1 + np.exp(-d1))
    S = Xb @ Xt.T + (1.0 if bias else 0.0)  # n x m similarities
    expected_diff = 2 * ALPHA / (n * m) * S @ (sig - yt_np)
    got = out.label_grad.numpy()
    np.testing.assert_allclose(got[:, 1] - got[:, 0], expected_diff, rtol=1e-8, atol=1e-15)
    # The full gradient, not just the difference.
    Pt = np.stack([1 - sig, sig], 1)
    Gt = Pt - np.eye(2)[yt_np]  # m x 2
    full = ALPHA / (n * m) * np.stack([(S * (Gt[:, c][None, :] - (P @ Gt.T))).sum(1) for c in range(2)], 1)
    np.testing.assert_allclose(got, full, rtol=1e-8, atol=1e-15)
    # The virtual step's target loss.
    loss = -np.mean(np.log(Pt[np.arange(m), yt_np]))
    assert out.loss.item() == pytest.approx(loss, rel=1e-10)


@pytest.mark.parametrize("kind", ["jvp", "double-backward"])
def test_second_order_one_layer_sigmoid_formula(kind):
    """The paper's one-layer case through the project's strategy (section 3.2 / Appendix B):
    for a sigmoid unit with binary CE and inner step theta' = theta - alpha grad L_inner,
        dL/dy~ = alpha (sigma(theta'^T x) - y) x^T x~.

    A bias-free 2-logit softmax head W is that unit with theta = w_1 - w_0 (p_1 = sigma(theta^T x))
    and label (1 - y~, y~); its inner step moves both rows, so theta moves twice as far: the
    strategy with inner_lr = alpha / 2 makes exactly the paper's step, and the derivative along
    y~ is the difference of the two label-gradient entries. One base and one target example, float64.
    """
    g = torch.Generator().manual_seed(0)
    d = 4
    learner = Learner(lambda: LinearSoftmax(d, bias=False).double())
    strat = STRATEGIES.get("second-order")(inner_lr=ALPHA / 2, meta_gradient=kind)
    for trial in range(4):
        state = learner.init([trial])
        w0 = torch.randn(d, dtype=torch.float64, generator=g)  # any w_0: only the difference matters
        theta = torch.randn(d, dtype=torch.float64, generator=g)
        with torch.no_grad():
            state.params["head.weight"][0].copy_(torch.stack([w0, w0 + theta]))
        x_b = torch.randn(d, dtype=torch.float64, generator=g)
        x = torch.randn(d, dtype=torch.float64, generator=g)
        y, y_b = trial % 2, 0.2 + 0.2 * trial
        out = strat.step(learner, state, x_b.reshape(1, 1, 2, 2), torch.tensor([[1 - y_b, y_b]], dtype=torch.float64),
                         x.reshape(1, 1, 2, 2), torch.tensor([y]))

        # The closed form, from theta alone.
        theta1 = theta - ALPHA * (torch.sigmoid(theta @ x_b) - y_b) * x_b
        p = torch.sigmoid(theta1 @ x).item()
        expected = ALPHA * (p - y) * (x @ x_b).item()
        got = out.label_grad[0, 1] - out.label_grad[0, 0]
        assert abs(expected) > 1e-6  # a meaningful comparison
        assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-16)
        # The target loss is the unit's binary CE at theta'; its error is the thresholded prediction's.
        assert out.loss.item() == pytest.approx(-(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-10)
        assert out.error.item() == float((p > 0.5) != bool(y))


# -- ridge regression ---------------------------------------------------------------------------


def _ridge_setup(seed=0):
    learner = Learner(lambda: TinyMLP(12, 5, 3).double(), head="ridge")
    state = learner.init([seed])
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        state.head["w"].copy_(0.3 * torch.randn(state.head["w"].shape, dtype=torch.float64, generator=g))
        state.head["s"].fill_(1.3)
    xb, yb, xt, yt = _problem((1, 3, 4), 3, n=4, m=7, seed=seed + 20)
    return learner, state, xb, yb, xt, yt


def _ridge_target_loss_by_hand(feats, w_old, s, xb, y, xt, yt, lam=1.0, a=0.01):
    zb = torch.cat([feats(xb), torch.ones(xb.shape[0], 1, dtype=torch.float64)], 1)
    zt = torch.cat([feats(xt), torch.ones(xt.shape[0], 1, dtype=torch.float64)], 1)
    w_l = zb.T @ torch.linalg.solve(zb @ zb.T + lam * torch.eye(zb.shape[0], dtype=torch.float64), y)
    w = (1 - a) * w_old + a * w_l
    return F.cross_entropy(zt @ (s * w), yt), w, zb


@pytest.mark.parametrize("targets", ["classes", "probabilities"])
def test_ridge_label_gradient_equals_finite_differences(targets):
    """Target labels as class indices (the paper's) or as probability vectors (``--target-labels teacher``); the error
    counts against their most probable class."""
    learner, state, xb, yb, xt, yt = _ridge_setup()
    if targets == "probabilities":
        yt = torch.softmax(2 * torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5)), -1)
    w_old = state.head["w"][0].detach().clone()
    params0 = {n: p[0].detach().clone() for n, p in state.params.items()}
    feats_mod = TinyMLP(12, 5, 3).double().features
    feats = lambda x: functional_call(feats_mod, params0, (x,))  # noqa: E731
    out = STRATEGIES.get("ridge")().step(learner, state, xb, yb, xt, yt)

    with torch.no_grad():
        loss, w_new, _ = _ridge_target_loss_by_hand(feats, w_old, 1.3, xb, yb, xt, yt)
        fd = _central_differences(lambda y: _ridge_target_loss_by_hand(feats, w_old, 1.3, xb, y, xt, yt)[0].item(), yb)
    assert out.loss.item() == pytest.approx(loss.item(), rel=1e-10)
    assert fd.abs().max() > 1e-6
    torch.testing.assert_close(out.label_grad, fd, rtol=1e-5, atol=1e-9)
    # Error on the target batch with the new global W.
    zt = torch.cat([feats(xt), torch.ones(7, 1, dtype=torch.float64)], 1)
    with torch.no_grad():
        err = ((zt @ (1.3 * w_new)).argmax(-1) != (yt.argmax(-1) if targets == "probabilities" else yt)).double().mean()
    assert out.error.item() == pytest.approx(err.item())
    # The head's W is now 0.99 W_old + 0.01 W_l.
    torch.testing.assert_close(state.head["w"][0], w_new, rtol=1e-10, atol=1e-14)


def test_ridge_leaves_gradients_on_features_and_scale():
    learner, state, xb, yb, xt, yt = _ridge_setup(seed=3)
    w_old = state.head["w"][0].detach().clone()
    params0 = {n: p[0].detach().clone().requires_grad_() for n, p in state.params.items()}
    s = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    for p in state.params.values():
        p.grad = None
    STRATEGIES.get("ridge")().step(learner, state, xb, yb, xt, yt)
    # Reference: base loss softCE([f(xb),1] @ (s W), yb), W = 0.99 W_old + 0.01 W_l(f(xb), yb),
    # differentiated through both the logits and W_l.
    feats_mod = TinyMLP(12, 5, 3).double().features
    feats = lambda x: functional_call(feats_mod, params0, (x,))  # noqa: E731
    _, w, zb = _ridge_target_loss_by_hand(feats, w_old, s, xb, yb, xt, yt)
    base = _soft_ce(zb @ (s * w), yb)
    ref = torch.autograd.grad(base, [*params0.values(), s])
    for (n, p), r in zip(state.params.items(), ref[:-1]):
        assert p.grad is not None, n
        assert p.grad[0].abs().max() > 0
        torch.testing.assert_close(p.grad[0], r, rtol=1e-8, atol=1e-14)
    assert state.head["s"].grad is not None
    torch.testing.assert_close(state.head["s"].grad[0], ref[-1], rtol=1e-8, atol=1e-14)
    assert not torch.equal(state.head["w"][0], w_old)


def test_ridge_reset_restores_head():
    learner, state, *_ = _ridge_setup(seed=1)
    learner.reset_(state, 7)
    fresh = learner.init([7])
    assert torch.all(state.head["w"] == 0) and torch.all(state.head["s"] == 1)
    for n, p in state.params.items():
        assert torch.equal(p, fresh.params[n])
