"""K-step lookahead (beyond the paper): the second-order method's virtual step, taken ``horizon`` times.

Why. The paper's meta-objective looks one step ahead: the target loss after one virtual SGD step of the persistent
model. An objective that looks one step ahead rewards what speeds up the next step over what helps at the end of a
long training run (short-horizon bias, Wu et al., ICLR 2018); on MNIST-100 every one-step lever sharpened a teacher's
labels while their test under the field's 1,000-epoch protocol fell (docs/results.md, issue 18). This strategy
lengthens the horizon and keeps everything else of the loop (the persistent model, its resets, selection).

Per step: ``theta_0`` the persistent model, ``theta_{j+1} = theta_j - alpha grad L_inner(theta_j; X~, Y~)`` for
``j < horizon`` on the step's inner minibatch each time (with ``--inner-batch N``, full-batch steps, as the field's
protocol takes on up to 256 images), the target cross-entropy of ``f_{theta_horizon}``, and its gradient with respect
to what is learned by backpropagation through all the steps (double backward; exact, tested against finite
differences in float64). The persistent model's own Adam step takes the first step's gradient, as in the second-order
method. ``horizon = 1`` is the second-order method's double-backward form, bit for bit (tested). Cost: about
``horizon`` times a second-order step (each virtual step is kept for the backward pass).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...engine import soft_cross_entropy
from .base import LABELS, StepOutput, Strategy, Wrt, leaf, register_strategy, split_grads, target_classes


@register_strategy("lookahead", aliases=("ld-lookahead",))
class Lookahead(Strategy):
    head = "linear"
    takes_horizon = True

    def step(self, learner, model, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        params, buffers, _ = learner.single(model)
        names = list(params)
        x, y = leaf(xb, wrt.images), leaf(yb, wrt.labels)
        theta = {n: params[n].detach().requires_grad_() for n in names}
        first: tuple[torch.Tensor, ...] = ()
        for j in range(self.horizon):
            inner = soft_cross_entropy(learner.logits(theta, buffers, {}, x), y)
            grads = torch.autograd.grad(inner, list(theta.values()), create_graph=True)
            if j == 0:
                first = grads
            theta = {n: theta[n] - self.inner_lr * g for n, g in zip(names, grads)}
        for p, g in zip(model.params.values(), first):  # the persistent model's own step: the first inner gradient
            p.grad = g.detach().unsqueeze(0)
        out = learner.logits(theta, buffers, {}, xt)
        loss = F.cross_entropy(out, yt)
        label_grad, image_grad = split_grads(torch.autograd.grad(loss, wrt.pick(y, x)), wrt)
        return StepOutput(label_grad, (out.argmax(-1) != target_classes(yt)).float().mean().detach(), loss.detach(), image_grad)
