"""benchmarks/implicit_labels.py's math: the implicit label gradient against finite differences, and its CG solve.

The check is in float64 on a softmax regression, where the trained model is the exact minimiser of a strictly convex
loss (found by Newton's method) and the Gauss-Newton matrix the script uses is the Hessian itself, so the formula must
match the derivative of the target loss through the retrained model to rounding.
"""
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "implicit_labels.py"


def _script():
    spec = importlib.util.spec_from_file_location("implicit_labels", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cg_solves_a_symmetric_positive_definite_system():
    mod = _script()
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    m = a @ a.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = {"p": torch.randn(4, generator=g, dtype=torch.float64), "q": torch.randn(2, generator=g, dtype=torch.float64)}

    def apply(v):
        out = m @ torch.cat([v["p"], v["q"]])
        return {"p": out[:4], "q": out[4:]}

    x = mod.cg(apply, b, iters=6)  # n steps solve an n x n system exactly, up to rounding
    want = torch.linalg.solve(m, torch.cat([b["p"], b["q"]]))
    torch.testing.assert_close(torch.cat([x["p"], x["q"]]), want, rtol=1e-8, atol=1e-10)


def test_implicit_label_gradient_matches_finite_differences_through_the_retrained_model():
    mod = _script()
    dt = torch.float64
    g = torch.Generator().manual_seed(1)
    n, views, c, d, lam = 5, 3, 3, 4, 0.1
    xv = torch.randn(views * n, d, generator=g, dtype=dt)  # view-major: rows v*n .. v*n+n-1 are view v of the n images
    y = torch.softmax(torch.randn(n, c, generator=g, dtype=dt), -1)
    xt, yt = torch.randn(40, d, generator=g, dtype=dt), torch.randint(0, c, (40,), generator=g)

    def logits_of(p, x):
        return x @ p["w"].T + p["b"]

    def unpack(flat):
        return {"w": flat[: c * d].view(c, d), "b": flat[c * d :]}

    def train_loss(flat, labels):
        return -(labels.repeat(views, 1) * F.log_softmax(logits_of(unpack(flat), xv), -1)).sum(-1).mean() + lam / 2 * (flat**2).sum()

    def minimiser(labels):
        flat = torch.zeros(c * d + c, dtype=dt)
        for _ in range(30):  # Newton on a strictly convex loss: converged to rounding
            grad = torch.autograd.functional.jacobian(lambda f: train_loss(f, labels), flat)
            hess = torch.autograd.functional.hessian(lambda f: train_loss(f, labels), flat)
            flat = flat - torch.linalg.solve(hess, grad)
        return unpack(flat)

    def target_loss(labels):
        return F.cross_entropy(logits_of(minimiser(labels), xt), yt)

    theta = minimiser(y)
    leaves = {k: v.clone().requires_grad_() for k, v in theta.items()}
    g_t = dict(zip(leaves, torch.autograd.grad(F.cross_entropy(logits_of(leaves, xt), yt), list(leaves.values()))))
    got = mod.implicit_label_grad(logits_of, theta, xv, views, g_t, damping=lam, cg_iters=40)

    h = 1e-6
    fd = torch.zeros(n, c, dtype=dt)
    for i in range(n):
        for j in range(c):
            e = torch.zeros(n, c, dtype=dt)
            e[i, j] = h
            fd[i, j] = (target_loss(y + e) - target_loss(y - e)) / (2 * h)
    assert fd.abs().max() > 1e-3  # a gradient worth comparing
    torch.testing.assert_close(got, fd, rtol=1e-6, atol=1e-8)
