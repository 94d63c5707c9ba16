"""The first-order method with a ridge-regression head and pseudo-gradients (Algorithm 1).

Per step: features of the inner minibatch ``Z~`` (with a bias column), the local solve
``W_l = Z~^T (Z~ Z~^T + lambda I)^-1 Y~``, the global step ``W = (1 - a) W + a W_l``, the
target cross-entropy of ``[f(x), 1] @ (s W)``. The meta-gradient flows through W_l only:
to the labels Y~ directly, and to the images X~ (the paper's "our DD RR") through the
feature extractor on the inner minibatch ``Z~ = [f(X~), 1]``. The target batch's features are
computed without a graph either way (no backward pass through the feature extractor on the
1,024 target images). The feature extractor and s are trained on the base-minibatch loss
through W (and W_l).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...engine import soft_cross_entropy
from ...models import with_bias
from .base import LABELS, StepOutput, Strategy, Wrt, leaf, register_strategy, split_grads


@register_strategy("ridge", aliases=("rr", "ld-rr"))
class Ridge(Strategy):
    head = "ridge"

    def step(self, learner, model, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        params, buffers, head = learner.single(model)
        x, y = leaf(xb, wrt.images), leaf(yb, wrt.labels)
        zb = with_bias(learner.body(params, buffers, x))
        w = learner.ridge_update(zb, y, head["w"])
        with torch.no_grad():
            zt = with_bias(learner.body({n: p.detach() for n, p in params.items()}, buffers, xt))
        out = zt @ (head["s"].detach() * w)
        loss = F.cross_entropy(out, yt)
        wanted = wrt.pick(y, x)
        label_grad, image_grad = split_grads(torch.autograd.grad(loss, wanted, retain_graph=True), wrt)
        base_loss = soft_cross_entropy(zb @ (head["s"] * w), y.detach())
        if wrt.images:  # the model's gradients only: the images' gradient came from the target loss
            base_loss.backward(inputs=[*model.params.values(), model.head["s"]])
        else:
            base_loss.backward()
        with torch.no_grad():
            model.head["w"].copy_(w.detach().unsqueeze(0))
        return StepOutput(label_grad, (out.argmax(-1) != yt).float().mean(), loss.detach(), image_grad)
