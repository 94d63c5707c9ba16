"""K-step lookahead (beyond the paper): the second-order method's virtual step, taken ``horizon`` times.

Why. The paper's meta-objective looks one step ahead: the target loss after one virtual SGD step of the persistent
model. An objective that looks one step ahead rewards what speeds up the next step over what helps at the end of a
long training run (short-horizon bias, Wu et al., ICLR 2018); on MNIST-100 every one-step lever sharpened a teacher's
labels while their test under the field's 1,000-epoch protocol fell (docs/results.md, issue 18). This strategy
lengthens the horizon and keeps everything else of the loop (the persistent model, its resets, selection). Measured
there (session 27): at the same step size a longer horizon sharpened the labels faster; a longer reach (horizon x
step size) kept them softer; none of it beat the teacher's labels under that protocol.

Per step: ``theta_0`` the persistent model, ``theta_{j+1} = theta_j - alpha grad L_inner(theta_j; X~, Y~)`` for
``j < horizon`` on the step's inner minibatch each time (with ``--inner-batch N``, full-batch steps, as the field's
protocol takes on up to 256 images), the target cross-entropy of ``f_{theta_horizon}``, and its gradient with respect
to what is learned by backpropagation through all the steps (double backward; exact, tested against finite
differences in float64). The persistent model's own Adam step takes the first step's gradient, as in the second-order
method. ``horizon = 1`` is the second-order method's double-backward form, bit for bit (tested). Cost: about
``horizon`` times a second-order step (each virtual step is kept for the backward pass).

``lookahead-linear`` reaches far horizons at constant memory: the K steps are taken without a graph, ``v`` is the
target loss's gradient at ``theta_K``, and the steps' Jacobian is linearised at ``theta_0`` (every step's Hessian
taken as ``H``, the inner loss's at ``theta_0``), which makes ``d theta_K / dY~`` a Neumann series:
``dL/dY_ic = (1/n) <grad_theta log softmax(f_theta_0(x_i))_c, u>`` with ``u = alpha sum_{j<K} (I - alpha H)^j v``:
K - 1 Hessian-vector products (double backward through one inner gradient) and one Jacobian-vector product, the
second-order method's formula with ``alpha v`` replaced by ``u``. As K grows, ``u`` tends to ``H^-1 v`` (where
``alpha`` is below ``2 / lambda_max(H)``): the implicit gradient of a model trained to convergence on the base set,
the infinite horizon. ``horizon = 1`` is the second-order method's JVP form, bit for bit (tested); the series against
dense Hessians and Jacobians in float64 (tested).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...engine import soft_cross_entropy
from .base import LABELS, StepOutput, Strategy, Wrt, register_strategy, step_error
from .second_order import label_grad_along, unrolled_step


@register_strategy("lookahead", aliases=("ld-lookahead",))
class Lookahead(Strategy):
    head = "linear"
    takes_horizon = True

    def step(self, learner, model, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        return unrolled_step(learner, model, xb, yb, xt, yt, wrt, self.inner_lr, steps=self.horizon)


@register_strategy("lookahead-linear")
class LinearisedLookahead(Strategy):
    head = "linear"
    takes_horizon = True

    def step(self, learner, model, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        if wrt.images:
            raise ValueError("lookahead-linear learns labels only (its formula uses the inner loss's linearity in the labels)")
        params, buffers, _ = learner.single(model)
        names = list(params)
        alpha = self.inner_lr

        def logits(p, x):
            return learner.logits(p, buffers, {}, x)

        # The first inner gradient, with its graph: the persistent model's own step, and every Hessian-vector product.
        theta0 = {n: params[n].detach().requires_grad_() for n in names}
        g0 = torch.autograd.grad(soft_cross_entropy(logits(theta0, xb), yb), list(theta0.values()), create_graph=self.horizon > 1)
        for p, g in zip(model.params.values(), g0):
            p.grad = g.detach().unsqueeze(0)
        # The K real steps, without a graph.
        theta = {n: theta0[n].detach() - alpha * g.detach() for n, g in zip(names, g0)}
        for _ in range(self.horizon - 1):
            t = {n: p.requires_grad_() for n, p in theta.items()}
            grads = torch.autograd.grad(soft_cross_entropy(logits(t, xb), yb), list(t.values()))
            theta = {n: t[n].detach() - alpha * g for n, g in zip(names, grads)}
        theta = {n: p.requires_grad_() for n, p in theta.items()}
        out = logits(theta, xt)
        loss = F.cross_entropy(out, yt)
        v = torch.autograd.grad(loss, list(theta.values()))
        # u = sum_{j<K} (I - alpha H)^j v (alpha enters with the tangent below, as in the second-order method)
        term, u = list(v), list(v)
        for j in range(self.horizon - 1):
            hv = torch.autograd.grad(g0, list(theta0.values()), grad_outputs=term, retain_graph=j < self.horizon - 2)
            term = [t - alpha * h for t, h in zip(term, hv)]
            u = [a + t for a, t in zip(u, term)]
        label_grad = label_grad_along(learner, buffers, {n: t.detach() for n, t in theta0.items()}, xb, dict(zip(names, u)), alpha)
        return StepOutput(label_grad, step_error(out, yt), loss.detach())
