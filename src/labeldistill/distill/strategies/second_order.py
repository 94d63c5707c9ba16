"""The second-order method (paper section 3, "vanilla second-order version").

A virtual inner step ``theta' = theta - alpha grad L_inner(theta; X~, Y~)``, the target
cross-entropy of ``f_theta'``, and its gradient with respect to the labels Y~.

Because ``L_inner = -(1/n) sum_ic Y_ic log softmax(f_theta(x_i))_c`` is linear in Y~,
the meta-gradient is exactly
``dL/dY_ic = (alpha / n) <grad_theta log softmax(f_theta(x_i))_c, v>``, with
``v = grad_theta' L_target``: one Jacobian-vector product (forward mode) on the inner
minibatch instead of a backward pass through the backward pass. The plain double-backward
form is kept as the reference (``meta_gradient="double-backward"``); tests check they agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import jvp

from ...engine import Learner, ModelState, soft_cross_entropy
from .base import StepOutput, Strategy, register_strategy


@register_strategy("second-order", aliases=("ld", "second_order"))
class SecondOrder(Strategy):
    head = "linear"

    def step(self, learner, model, xb, yb, xt, yt) -> StepOutput:
        if self.meta_gradient == "double-backward":
            return self._double_backward(learner, model, xb, yb, xt, yt)
        params, buffers, _ = learner.single(model)
        names = list(params)
        inner = soft_cross_entropy(learner.logits(params, buffers, {}, xb), yb)
        grads = torch.autograd.grad(inner, list(params.values()))
        # The persistent model's own Adam step uses this same inner gradient (labels before the update).
        for p, g in zip(model.params.values(), grads):
            p.grad = g.unsqueeze(0)
        theta0 = {n: params[n].detach() for n in names}
        theta1 = {n: (theta0[n] - self.inner_lr * g).requires_grad_() for n, g in zip(names, grads)}
        out = learner.logits(theta1, buffers, {}, xt)
        loss = F.cross_entropy(out, yt)
        v = torch.autograd.grad(loss, list(theta1.values()))
        _, tangent = jvp(
            lambda p: F.log_softmax(learner.logits(p, buffers, {}, xb), dim=-1), (theta0,), (dict(zip(names, v)),)
        )
        label_grad = tangent * (self.inner_lr / xb.shape[0])
        return StepOutput(label_grad, (out.argmax(-1) != yt).float().mean(), loss.detach())

    def _double_backward(self, learner: Learner, model: ModelState, xb, yb, xt, yt) -> StepOutput:
        params, buffers, _ = learner.single(model)
        names = list(params)
        theta0 = {n: params[n].detach().requires_grad_() for n in names}
        y = yb.detach().clone().requires_grad_()
        inner = soft_cross_entropy(learner.logits(theta0, buffers, {}, xb), y)
        grads = torch.autograd.grad(inner, list(theta0.values()), create_graph=True)
        for p, g in zip(model.params.values(), grads):
            p.grad = g.detach().unsqueeze(0)
        theta1 = {n: theta0[n] - self.inner_lr * g for n, g in zip(names, grads)}
        out = learner.logits(theta1, buffers, {}, xt)
        loss = F.cross_entropy(out, yt)
        (label_grad,) = torch.autograd.grad(loss, y)
        return StepOutput(label_grad, (out.argmax(-1) != yt).float().mean().detach(), loss.detach())
