"""The unrolled meta-gradient of DD / SLDD against central finite differences (float64, tiny
network) and the unrolled forward against a hand-unrolled softmax regression."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labeldistill.models import Classifier
from labeldistill.unrolled import FunctionalNet, UnrolledDistiller, unrolled_config, unrolled_loss


def tiny_net() -> FunctionalNet:
    """Conv + tanh + linear: smooth, so central differences are accurate."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 5 * 5, 6), nn.Tanh())
    return FunctionalNet(Classifier(features, 6, 3).double())


def tiny_distiller(method: str) -> UnrolledDistiller:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 1, 5, 5, generator=g, dtype=torch.float64)
    y = torch.arange(12) % 3
    # distill_lr 0.3 makes the 4 inner steps move the network enough for every gradient to matter.
    cfg = unrolled_config("mnist", method, steps=2, epochs=2, batch_size=6, distill_lr=0.3, init_gain=2.0)
    dist = UnrolledDistiller(cfg, x, y, tiny_net(), 3, seed=3)
    if method == "sldd":  # labels away from one-hot, so no derivative is special
        with torch.no_grad():
            dist.labels.add_(0.3 * torch.randn(dist.labels.shape, generator=g, dtype=torch.float64))
    with torch.no_grad():  # distinct lrs per step
        dist.raw_lrs.add_(torch.linspace(-0.5, 0.5, 4, dtype=torch.float64))
    return dist


def outer_loss(dist: UnrolledDistiller, images, raw_lrs, labels) -> torch.Tensor:
    """The loss of outer iteration 0 as a function of the learned tensors (same net, same batch)."""
    x, y = dist.target_batch(0)
    labels = dist.hard_labels if labels is None else labels
    return unrolled_loss(dist.net, dist.fresh_params(0), images, labels, F.softplus(raw_lrs), dist.order, x, y)


def central_difference(f, t: torch.Tensor, flat_index: int, eps: float = 1e-6) -> float:
    with torch.no_grad():
        plus, minus = t.clone(), t.clone()
        plus.view(-1)[flat_index] += eps
        minus.view(-1)[flat_index] -= eps
    return (f(plus).detach().item() - f(minus).detach().item()) / (2 * eps)


@pytest.mark.parametrize("method", ["dd", "sldd"])
def test_meta_gradient_matches_finite_differences(method):
    dist = tiny_distiller(method)
    images0, raw0 = dist.images.detach().clone(), dist.raw_lrs.detach().clone()
    labels0 = None if dist.labels is None else dist.labels.detach().clone()
    dist.step()  # sets .grad of every learned tensor to the exact meta-gradient, then updates them
    g_images, g_lrs = dist.images.grad, dist.raw_lrs.grad
    checks = [
        ("images", images0, g_images, lambda t: outer_loss(dist, t, raw0, labels0), [0, 7, 12, 31, 49, 60, 88, 149]),
        ("raw lrs", raw0, g_lrs, lambda t: outer_loss(dist, images0, t, labels0), [0, 1, 2, 3]),
    ]
    if method == "sldd":
        checks.append(("labels", labels0, dist.labels.grad, lambda t: outer_loss(dist, images0, raw0, t), list(range(18))))
    for name, base, grad, f, where in checks:
        assert grad is not None and grad.shape == base.shape
        for i in where:
            fd = central_difference(f, base, i)
            assert math.isclose(grad.view(-1)[i].item(), fd, rel_tol=1e-6, abs_tol=1e-9), (name, i, grad.view(-1)[i].item(), fd)
        assert grad.abs().max() > 1e-4, name  # the check is not vacuous
    # Every one of the 4 steps' lrs gets its own (different) gradient.
    assert len(set(g_lrs.tolist())) == 4


def test_meta_gradient_in_a_random_direction():
    """All image entries at once: <grad, v> against the central difference along v."""
    dist = tiny_distiller("sldd")
    images0, raw0, labels0 = (t.detach().clone() for t in (dist.images, dist.raw_lrs, dist.labels))
    dist.step()
    v = torch.randn(images0.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    eps = 1e-6
    fd = (outer_loss(dist, images0 + eps * v, raw0, labels0).detach().item() - outer_loss(dist, images0 - eps * v, raw0, labels0).detach().item()) / (2 * eps)
    assert math.isclose(float((dist.images.grad * v).sum()), fd, rel_tol=1e-6)


def test_unrolled_forward_is_plain_sgd_in_the_given_order():
    """Softmax regression, gradients in closed form: W <- W - lr_t X_b^T (softmax(X_b W) - Y_b) / n."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)  # 3 batches of 4 vectors
    labels = torch.randint(0, 3, (3, 4), generator=g)
    lrs = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7], dtype=torch.float64)
    order = [2, 0, 1, 2, 0]
    tx, ty = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)
    w0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    net = lambda p, x: x @ p["w"]  # noqa: E731

    w = w0.clone()
    for t, b in enumerate(order):
        x, y = images[b], F.one_hot(labels[b], 3).double()
        w = w - lrs[t] * x.T @ (torch.softmax(x @ w, -1) - y) / x.shape[0]
    expected = F.cross_entropy(tx @ w, ty)
    got = unrolled_loss(net, {"w": w0.clone().requires_grad_()}, images, labels, lrs, order, tx, ty)
    assert torch.allclose(got, expected, rtol=1e-12, atol=0)
    # Soft labels: the same with y the label vectors (SLDD's inner loss).
    soft = torch.rand(3, 4, 3, generator=g, dtype=torch.float64)
    w = w0.clone()
    for t, b in enumerate(order):
        x = images[b]
        w = w - lrs[t] * x.T @ (torch.softmax(x @ w, -1) * soft[b].sum(-1, keepdim=True) - soft[b]) / x.shape[0]
    got = unrolled_loss(net, {"w": w0.clone().requires_grad_()}, images, soft, lrs, order, tx, ty)
    assert torch.allclose(got, F.cross_entropy(tx @ w, ty), rtol=1e-12, atol=0)
