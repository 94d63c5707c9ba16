"""The implicit-function meta-gradient (beyond the paper): labels learned through the test's own trained student.

Why. The paper's second-order step, and every lever of the loop built on it (K-step lookahead, ridge, augmentation,
teacher targets), asks what the labels do for a young model a step or a few later; under the field's ``dc-dsa`` test
(ConvNet-3 trained 1,000 epochs on DSA views) none of them beat the labels of a teacher (docs/results.md, issue 18).
This one asks what they do for the model that test trains: its persistent models are students trained the protocol's
way (:class:`~labeldistill.distill.students.ProtocolStudents`: first the whole training, then a few epochs after every
label step, never reset), and the gradient is taken at their minimiser by the implicit function theorem instead of
through unrolled steps. At a student that minimises ``L(theta, Y) = soft CE(f_theta(views of X), Y) + wd/2 |theta|^2``,

    dL_target / dY_ic = (1/N) < grad_theta log p_c(x_i), u >,   u = (G + (wd + damping) I)^-1 grad_theta L_target,

averaged over the V views of each image (the inner loss is linear in Y, as the second-order method's JVP form uses),
with G the Gauss-Newton matrix of the soft cross-entropy over the views (positive semi-definite, so conjugate
gradients converge; ``cg_iters`` steps from zero), the weight decay the students' own, and ``damping`` a small ridge on
top. The paper's one-step meta-gradient is this formula with the inverse replaced by the step size alpha; lookahead-
linear's Neumann sum tends to it at the loop's young model. Measured on MNIST-100 (the benchmark that preceded this
strategy, docs/results.md "Session 30"): the first learned labels above the teacher's under ``dc-dsa``.

The target loss may be taken at its fitted logit scale (``--target-scale fitted``, as ridge's option): a student of
soft labels predicts softly, and the plain target cross-entropy would pay the labels for sharpness alone. With several
students (``--students K``) the gradient is their mean: one student's labels start fitting that student.
Cost per step: a gradient pass over the target minibatch and ``cg_iters`` Jacobian-vector / vector-Jacobian pairs over
the V N views, per student. Exact against central finite differences in float64 (tests/test_implicit.py).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import jvp, vjp

from .base import LABELS, StepOutput, Strategy, Wrt, register_strategy, step_error
from .ridge import fitted_scale

Tensors = dict[str, torch.Tensor]
CHUNK = 256  # target images per gradient pass: a ConvNet-3's activations on 2,048 images take gigabytes


def cg(apply: Callable[[Tensors], Tensors], b: Tensors, iters: int) -> Tensors:
    """``iters`` steps of conjugate gradients for ``apply(x) = b`` from x = 0 (``apply`` symmetric positive definite),
    over dicts of tensors. A fixed count: no host read decides when to stop."""
    def dot(a: Tensors, c: Tensors) -> torch.Tensor:
        return sum((a[n] * c[n]).sum() for n in a)  # type: ignore[return-value]

    x = {n: torch.zeros_like(t) for n, t in b.items()}
    r = {n: t.clone() for n, t in b.items()}
    p = {n: t.clone() for n, t in r.items()}
    rr = dot(r, r)
    for _ in range(iters):
        ap = apply(p)
        alpha = rr / dot(p, ap)
        x = {n: x[n] + alpha * p[n] for n in x}
        r = {n: r[n] - alpha * ap[n] for n in r}
        rr_new = dot(r, r)
        p = {n: r[n] + (rr_new / rr) * p[n] for n in p}
        rr = rr_new
    return x


class Linearised:
    """The logits ``out = f(theta)`` of one batch, with their Jacobian J's products ``J v`` and ``J^T w`` at ``theta``, made
    once and reused by every CG step. ``mode``: ``"jvp"`` (forward mode, one pass a product) or ``"double-backward"``
    (``J v`` as the gradient in w of ``<J^T w, v>``: reverse passes through a graph built once, no forward pass a
    product; on a CPU forward mode through GroupNorm is slow, as for the loop's second order, docs/benchmarks.md).
    Equal up to rounding (tests/test_implicit.py)."""

    def __init__(self, f: Callable[[Tensors], torch.Tensor], theta: Tensors, mode: str = "jvp") -> None:
        if mode not in ("jvp", "double-backward"):
            raise ValueError(f"mode must be 'jvp' or 'double-backward', got {mode!r}")
        self.f, self.theta, self.mode = f, theta, mode
        if mode == "jvp":
            out, self._vjp = vjp(f, theta)
        else:
            self._leaves = {k: t.detach().requires_grad_() for k, t in theta.items()}
            self._graph = out = f(self._leaves)
            self._w = torch.zeros_like(out, requires_grad=True)
            self._jt_w = torch.autograd.grad(out, list(self._leaves.values()), self._w, create_graph=True)
        self.out = out.detach()

    def jv(self, v: Tensors) -> torch.Tensor:
        """J v (the logits' tangent), for v shaped as theta."""
        if self.mode == "jvp":
            return jvp(self.f, (self.theta,), (v,))[1]
        (jv,) = torch.autograd.grad(self._jt_w, self._w, [v[k] for k in self._leaves], retain_graph=True)
        return jv

    def jt(self, w: torch.Tensor) -> Tensors:
        """J^T w, shaped as theta, for w shaped as the logits."""
        if self.mode == "jvp":
            return self._vjp(w)[0]
        return dict(zip(self._leaves, torch.autograd.grad(self._graph, list(self._leaves.values()), w, retain_graph=True)))


def implicit_label_grad(logits_of: Callable[[Tensors, torch.Tensor], torch.Tensor], theta: Tensors, xv: torch.Tensor,
                        views: int, g_t: Tensors, *, damping: float, cg_iters: int, mode: str = "jvp") -> torch.Tensor:
    """dL_target / dY (N x C) at ``theta`` for the training loss ``soft CE(logits_of(theta, xv), Y) + damping/2 |theta|^2``
    (``xv``: V stacked views of the N images, view-major; ``g_t``: the target loss's gradient at ``theta``):
    ``(1/N) <grad log p_c(x_i), u>`` averaged over the views, ``u = (G + damping I)^-1 g_t`` by conjugate gradients,
    G the Gauss-Newton matrix (the Hessian itself for a model linear in theta). ``mode``: how Jacobian products are
    taken (:class:`Linearised`)."""
    n = xv.shape[0] // views
    lin = Linearised(lambda p: logits_of(p, xv), theta, mode)
    prob = torch.softmax(lin.out, -1)

    def ggn(v: Tensors) -> Tensors:
        jv = lin.jv(v)
        hjv = prob * jv - prob * (prob * jv).sum(-1, keepdim=True)  # the soft CE's Hessian in the logits, row by row
        back = lin.jt(hjv / xv.shape[0])
        return {k: back[k] + damping * v[k] for k in v}

    u = cg(ggn, g_t, cg_iters)
    ju = lin.jv(u)
    tangent = ju - (prob * ju).sum(-1, keepdim=True)  # the log-softmax's Jacobian times J u
    return tangent.view(views, n, -1).mean(0) / n


def target_grad(logits_of: Callable[[Tensors, torch.Tensor], torch.Tensor], theta: Tensors, xt: torch.Tensor, yt: torch.Tensor,
                *, fitted: bool) -> tuple[Tensors, torch.Tensor, torch.Tensor]:
    """The target loss's gradient in ``theta`` (cross-entropy of ``scale * logits`` on the target minibatch, in chunks of
    ``CHUNK`` images), the logits themselves and the scale: the one minimising that loss when ``fitted``, else 1."""
    with torch.no_grad():
        out_t = torch.cat([logits_of(theta, xt[c : c + CHUNK]) for c in range(0, xt.shape[0], CHUNK)])
    scale = fitted_scale(out_t, yt).to(out_t.dtype) if fitted else out_t.new_ones(())
    leaves = {n: t.clone().requires_grad_() for n, t in theta.items()}
    g_t = {n: torch.zeros_like(t) for n, t in theta.items()}
    for c in range(0, xt.shape[0], CHUNK):
        part = F.cross_entropy(scale * logits_of(leaves, xt[c : c + CHUNK]), yt[c : c + CHUNK], reduction="sum") / xt.shape[0]
        for n, g in zip(leaves, torch.autograd.grad(part, list(leaves.values()))):
            g_t[n] += g
    return g_t, out_t, scale


@register_strategy("implicit", aliases=("ld-implicit",))
class Implicit(Strategy):
    head = "linear"
    target_scales = ("shared", "fitted")  # shared: the students' logits as they are (no calibration to share)
    persistent = "protocol"  # the loop's persistent models: students trained the test's way (distill/students.py)
    # The settings it was measured with (MNIST-100 under dc-dsa, docs/results.md "Session 31"): 25 steps of 2,048 target
    # images an epoch, labels as logits at lr 0.03 (a step scales a teacher start's probabilities, so its small entries keep
    # their proportions), the target loss at its fitted logit scale (sharper labels are not paid for sharpness alone); and
    # since session 34 a fresh student every 5 steps (98.26 against 98.07 without, the same run otherwise: followed
    # students keep the start labels' history, where the test trains from scratch on the final labels).
    defaults = {"target_batch": 2048, "label_lr": 0.03, "label_param": "logits", "target_scale": "fitted", "refresh_every": 5}

    def __init__(self, *, views: int = 4, cg_iters: int = 10, damping: float = 1e-3, weight_decay: float = 0.0,
                 **common) -> None:
        super().__init__(**common)
        self.views, self.cg_iters, self.damping, self.weight_decay = views, cg_iters, damping, weight_decay

    @classmethod
    def from_config(cls, cfg, **common) -> Implicit:
        from ...protocols import get_protocol

        return cls(views=cfg.views, cg_iters=cfg.cg_iters, damping=cfg.damping,
                   weight_decay=get_protocol(cfg.test_protocol).weight_decay, **common)  # the students' (they train by it)

    def step(self, learner, model, xb, yb, xt, yt, wrt: Wrt = LABELS) -> StepOutput:
        """``model``: the K students (stacked); ``xb``: K x (V n) x ... their views of the inner minibatch (view-major,
        :meth:`~labeldistill.distill.students.ProtocolStudents.views`); ``xt``, ``yt``: the target minibatch as they see it.
        Leaves no gradient in the students: they follow the new labels by their own training."""
        if wrt.images:
            raise ValueError("--method implicit learns labels only (its formula uses the inner loss's linearity in the labels)")
        k_students = model.k
        grad_y = torch.zeros_like(yb)
        losses, errors = [], []
        for k in range(k_students):
            theta = {n: t[k].detach() for n, t in model.params.items()}
            buffers, head = {n: t[k] for n, t in model.buffers.items()}, {n: t[k] for n, t in model.head.items()}

            def logits_of(p: Tensors, x: torch.Tensor) -> torch.Tensor:
                return learner.logits(p, buffers, head, x)

            g_t, out_t, scale = target_grad(logits_of, theta, xt, yt, fitted=self.target_scale == "fitted")
            grad_y += implicit_label_grad(logits_of, theta, xb[k], self.views, g_t, damping=self.weight_decay + self.damping,
                                          cg_iters=self.cg_iters, mode=self.meta_gradient) / k_students
            losses.append(F.cross_entropy(scale * out_t, yt))
            errors.append(step_error(out_t, yt))
        return StepOutput(grad_y, torch.stack(errors).mean(), torch.stack(losses).mean())
