"""The learned labels: clamp + renormalise, uniform start, Adam steps on the minibatch rows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from labeldistill.distill import Labels, normalise_


def test_normalise_clamps_and_renormalises():
    y = torch.tensor([[2.0, -1.0, 0.5], [0.2, 0.2, 0.6], [0.1, 0.1, 0.0]], dtype=torch.float64)
    out = normalise_(y)
    assert out is y  # in place
    # Row 0: clamp -> [1, 0, 0.5], / 1.5. Row 1 already a distribution. Row 2: / 0.2.
    expected = np.array([[2 / 3, 0, 1 / 3], [0.2, 0.2, 0.6], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("row", [[0.0, 0.0, 0.0, 0.0], [-1.0, -0.5, -2.0, 0.0], [-3.0, -3.0, -3.0, -3.0]])
def test_all_zero_after_clamp_becomes_uniform(row):
    y = torch.tensor([row, [0.0, 1.0, 0.0, 0.0]])
    normalise_(y)
    assert torch.all(torch.isfinite(y))
    np.testing.assert_allclose(y[0].numpy(), np.full(4, 0.25), rtol=1e-6)
    np.testing.assert_allclose(y[1].numpy(), [0, 1, 0, 0])


def test_normalise_random_rows_are_distributions():
    g = torch.Generator().manual_seed(0)
    y = 3 * torch.randn(50, 7, generator=g)
    ref = np.clip(y.numpy(), 0, 1)
    normalise_(y)
    assert torch.all(y >= 0) and torch.all(y <= 1)
    np.testing.assert_allclose(y.sum(-1).numpy(), np.ones(50), rtol=1e-6)
    s = ref.sum(1, keepdims=True)
    expected = np.where(s > 0, ref / np.where(s > 0, s, 1), 1 / 7)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)


def test_labels_start_uniform():
    lab = Labels(6, 4)
    assert lab.value.shape == (6, 4) and lab.value.requires_grad
    assert torch.all(lab.value == 0.25)
    snap = lab.snapshot()
    assert not snap.requires_grad and torch.equal(snap, lab.value.detach())
    snap[0, 0] = 9.0
    assert lab.value[0, 0] == 0.25  # a copy


def test_labels_step_changes_only_rows_with_gradient_first_step():
    n, c, lr = 6, 4, 1e-3
    lab = Labels(n, c, lr=lr)
    rows = torch.tensor([1, 4])
    grad = torch.tensor([[1.0, -2.0, 0.0, 0.5], [-0.3, 0.0, 0.2, 0.1]])
    lab.step(rows, grad)
    v = lab.value.detach().numpy()
    for r in (0, 2, 3, 5):
        np.testing.assert_array_equal(v[r], np.full(c, 0.25))
    # Adam's first step moves each entry by -lr * g / (|g| + eps): -lr * sign(g) (0 where g = 0);
    # then rows are clamped and renormalised.
    for r, g in zip(rows.tolist(), grad.numpy()):
        raw = 0.25 - lr * np.sign(g)
        np.testing.assert_allclose(v[r], raw / raw.sum(), rtol=1e-5)
    np.testing.assert_allclose(v.sum(1), np.ones(n), rtol=1e-6)
    assert lab.value.grad is not None and torch.all(lab.value.grad[[0, 2, 3, 5]] == 0)


def test_labels_stay_distributions_under_large_steps():
    lab = Labels(5, 3, lr=0.5)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        rows = torch.randperm(5, generator=g)[:3]
        lab.step(rows, torch.randn(3, 3, generator=g))
        v = lab.value.detach()
        assert torch.all(v >= 0) and torch.all(v <= 1)
        torch.testing.assert_close(v.sum(-1), torch.ones(5))
