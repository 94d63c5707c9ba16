"""The first-order method with a ridge-regression head and pseudo-gradients (Algorithm 1).

Per step: features of the inner minibatch ``Z~`` (with a bias column), the local solve
``W_l = Z~^T (Z~ Z~^T + lambda I)^-1 Y~``, the global step ``W = (1 - a) W + a W_l``, the
target cross-entropy of ``[f(x), 1] @ (s W)``. The meta-gradient flows through W_l only:
to the labels Y~ directly, and to the images X~ (the paper's "our DD RR") through the
feature extractor on the inner minibatch ``Z~ = [f(X~), 1]``. The target batch's features are
computed without a graph either way (no backward pass through the feature extractor on the
1,024 target images). The feature extractor and s are trained on the base-minibatch loss
through W (and W_l).

Target scale (beyond the paper). With the paper's "shared" scale, the target loss is the cross-entropy of
``[f(x), 1] @ (s W)``, and s is trained on the base loss only. Sharper labels make W_l, and so the target logits,
larger, and a larger logit scale alone lowers the cross-entropy while the target minibatch is mostly classified right:
the loop then pays labels for their contrast, not only for which classes they weigh (measured on MNIST-100: a teacher
start at temperature 8 sharpens from entropy 0.92 to 0.16 nats along the loop while its dc-dsa test falls, docs/results.md).
"fitted" takes each step's target loss at the scale c > 0 that minimises it, ``CE(c [f(x), 1] @ (s W), y)``: the
loss is convex in c, so a few Newton steps find it. c enters the label gradient as a constant, which is the exact
gradient of min_c CE (envelope theorem: dCE/dc = 0 at the minimum), so what is left to the labels is the shape of
what they say, not its scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...engine import soft_cross_entropy
from ...models import with_bias
from .base import LABELS, StepOutput, Strategy, Wrt, leaf, register_strategy, split_grads, step_error

SCALE_RANGE = (1e-3, 1e3)  # where the fitted target scale is sought (a separable minibatch would want c -> infinity)
SCALE_ITERS = 40  # safeguarded Newton steps: a fixed count, no host sync (the step may be replayed as a CUDA graph)


def fitted_scale(out: torch.Tensor, target: torch.Tensor, *, iters: int = SCALE_ITERS,
                 bounds: tuple[float, float] = SCALE_RANGE) -> torch.Tensor:
    """The c in ``bounds`` minimising ``cross_entropy(c * out, target)``, as a 0-dim tensor without a graph.

    L(c) is convex (L'' = mean over rows of the variance of ``out`` under softmax(c out)), so L' grows with c: a
    bracket [a, b] with L'(a) < 0 < L'(b) shrinks around the root. Every other step is Newton's (when it falls inside
    the bracket: quadratic near the root) and the rest halve the bracket in log c (Newton alone crawls where the
    minibatch is nearly separable and L' decays like exp(-c)), so 40 steps pin c to 1e-5 at worst. The answer is the
    point with the smallest |L'| seen. Tensor operations only, in float64.
    """
    o = out.detach().double()
    d = o - o.gather(1, target[:, None])  # logits relative to the right class's: the tail's tiny L' stays nonzero
    a = torch.tensor(bounds[0], dtype=o.dtype, device=o.device)
    b = torch.tensor(bounds[1], dtype=o.dtype, device=o.device)
    c = best = torch.ones((), dtype=o.dtype, device=o.device)
    best_g = torch.full((), float("inf"), dtype=o.dtype, device=o.device)
    for i in range(iters):
        p = torch.softmax(c * d, -1)
        m = (p * d).sum(-1)
        g = m.mean()  # L'(c)
        h = ((p * d * d).sum(-1) - m * m).mean()  # L''(c) >= 0
        better = g.abs() <= best_g  # ties (L' underflowing to 0 far in the tail): the later point
        best, best_g = torch.where(better, c, best), torch.where(better, g.abs(), best_g)
        b = torch.where(g > 0, c, b)
        a = torch.where(g > 0, a, c)
        newton = c - g / h.clamp_min(1e-300)
        inside = (newton > a) & (newton < b) if i % 2 == 0 else torch.zeros((), dtype=torch.bool, device=o.device)
        c = torch.where(inside, newton, (a * b).sqrt())
    c = best
    return c.to(out.dtype)


@register_strategy("ridge", aliases=("rr", "ld-rr"))
class Ridge(Strategy):
    head = "ridge"
    target_scales = ("shared", "fitted")

    def step(self, learner, model, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        params, buffers, head = learner.single(model)
        x, y = leaf(xb, wrt.images), leaf(yb, wrt.labels)
        zb = with_bias(learner.body(params, buffers, x))
        w = learner.ridge_update(zb, y, head["w"])
        with torch.no_grad():
            zt = with_bias(learner.body({n: p.detach() for n, p in params.items()}, buffers, xt))
        out = zt @ (head["s"].detach() * w)
        if self.target_scale == "fitted":
            out = fitted_scale(out, yt) * out
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
        return StepOutput(label_grad, step_error(out, yt), loss.detach(), image_grad)
