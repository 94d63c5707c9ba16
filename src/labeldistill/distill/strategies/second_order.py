"""The second-order method (paper section 3, "vanilla second-order version").

A virtual inner step ``theta' = theta - alpha grad L_inner(theta; X~, Y~)``, the target
cross-entropy of ``f_theta'``, and its gradient with respect to what is learned: the labels
Y~, the images X~ (the paper's "our DD", Appendix C), or both.

Labels: because ``L_inner = -(1/n) sum_ic Y_ic log softmax(f_theta(x_i))_c`` is linear in
Y~, the meta-gradient is exactly
``dL/dY_ic = (alpha / n) <grad_theta log softmax(f_theta(x_i))_c, v>``, with
``v = grad_theta' L_target``: one Jacobian-vector product (forward mode) on the inner
minibatch instead of a backward pass through the backward pass.

Images: L_inner is not linear in X~, so that shortcut does not apply. In general
``dL/dX~ = -alpha d/dX~ <grad_theta L_inner(theta; X~, Y~), v> = -alpha grad_X~ D_v L_inner``:
the directional derivative of L_inner along v in theta (one forward-mode JVP) differentiated
in reverse mode with respect to the images ("reverse over forward"). That is the JVP form for
images (and for images and labels together); the plain double-backward form is the reference
(``meta_gradient="double-backward"``). Tests check that all forms agree and match central
finite differences in float64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import jvp

from ...engine import Learner, ModelState, soft_cross_entropy
from .base import LABELS, StepOutput, Strategy, Wrt, leaf, register_strategy, split_grads, step_error


@register_strategy("second-order", aliases=("ld", "second_order"))
class SecondOrder(Strategy):
    head = "linear"

    def step(self, learner, model, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        if self.meta_gradient == "double-backward":
            return self._double_backward(learner, model, xb, yb, xt, yt, wrt)
        params, buffers, _ = learner.single(model)
        names = list(params)
        inner = soft_cross_entropy(learner.logits(params, buffers, {}, xb), yb)
        grads = torch.autograd.grad(inner, list(params.values()))
        # The persistent model's own Adam step uses this same inner gradient (labels and images before the update).
        for p, g in zip(model.params.values(), grads):
            p.grad = g.unsqueeze(0)
        theta0 = {n: params[n].detach() for n in names}
        theta1 = {n: (theta0[n] - self.inner_lr * g).requires_grad_() for n, g in zip(names, grads)}
        out = learner.logits(theta1, buffers, {}, xt)
        loss = F.cross_entropy(out, yt)
        v = torch.autograd.grad(loss, list(theta1.values()))
        error = step_error(out, yt)
        if wrt.images:
            label_grad, image_grad = self._reverse_over_forward(learner, buffers, theta0, dict(zip(names, v)), xb, yb, wrt)
            return StepOutput(label_grad, error, loss.detach(), image_grad)
        label_grad = label_grad_along(learner, buffers, theta0, xb, dict(zip(names, v)), self.inner_lr)
        return StepOutput(label_grad, error, loss.detach())

    def _reverse_over_forward(self, learner: Learner, buffers, theta0, v, xb, yb, wrt: Wrt):
        """``-alpha grad_{Y~, X~} D_v L_inner(theta0; X~, Y~)``: one JVP, then one backward pass."""
        x, y = leaf(xb, wrt.images), leaf(yb, wrt.labels)
        _, directional = jvp(lambda p: soft_cross_entropy(learner.logits(p, buffers, {}, x), y), (theta0,), (v,))
        wanted = wrt.pick(y, x)
        return split_grads(tuple(-self.inner_lr * g for g in torch.autograd.grad(directional, wanted)), wrt)

    def _double_backward(self, learner: Learner, model: ModelState, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        return unrolled_step(learner, model, xb, yb, xt, yt, wrt, self.inner_lr, steps=1)


def label_grad_along(learner: Learner, buffers, theta0, xb: torch.Tensor, direction, scale: float) -> torch.Tensor:
    """``(scale / n) <grad_theta log softmax(f_theta0(x_i))_c, direction>`` for every inner example i and class c: the
    label meta-gradient when the parameters move along ``direction`` per unit of ``scale`` (the inner loss is linear in
    the labels), as one forward-mode product."""
    _, tangent = jvp(lambda p: F.log_softmax(learner.logits(p, buffers, {}, xb), dim=-1), (theta0,), (direction,))
    return tangent * (scale / xb.shape[0])


def unrolled_step(learner: Learner, model: ModelState, xb, yb, xt, yt, wrt: Wrt, inner_lr: float, steps: int = 1) -> StepOutput:
    """The target loss after ``steps`` virtual SGD steps (lr ``inner_lr``) on the inner minibatch, differentiated with
    respect to what is learned through all of them (double backward); the persistent model keeps the first step's
    gradient in ``.grad``. One step: the second-order method's double-backward form; more: the lookahead strategy."""
    params, buffers, _ = learner.single(model)
    names = list(params)
    theta = {n: params[n].detach().requires_grad_() for n in names}
    x, y = leaf(xb, wrt.images), leaf(yb, wrt.labels)
    for j in range(steps):
        inner = soft_cross_entropy(learner.logits(theta, buffers, {}, x), y)
        grads = torch.autograd.grad(inner, list(theta.values()), create_graph=True)
        if j == 0:  # the persistent model's own Adam step: the inner gradient at its parameters
            for p, g in zip(model.params.values(), grads):
                p.grad = g.detach().unsqueeze(0)
        theta = {n: theta[n] - inner_lr * g for n, g in zip(names, grads)}
    out = learner.logits(theta, buffers, {}, xt)
    loss = F.cross_entropy(out, yt)
    label_grad, image_grad = split_grads(torch.autograd.grad(loss, wrt.pick(y, x)), wrt)
    return StepOutput(label_grad, step_error(out, yt), loss.detach(), image_grad)
