"""AlexCifarNet's pooling and LRN layers: chunked CPU inference gives PyTorch's values bit for bit,
and training (gradients), vmap and small batches are PyTorch's own layers."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labeldistill.models import build_model
from labeldistill.models._inference import CHUNK
from labeldistill.models.lrn import LocalResponseNorm
from labeldistill.models.pooling import MaxPool2d


def _acts(n: int, c: int = 8, side: int = 15, seed: int = 0) -> torch.Tensor:
    """ReLU outputs: many exact zeros, so pooling windows hold ties."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, c, side, side, generator=g) * 3)


LAYERS = [
    (lambda: MaxPool2d(3, 2, padding=1), lambda: nn.MaxPool2d(3, 2, padding=1)),
    (lambda: MaxPool2d(2), lambda: nn.MaxPool2d(2)),
    (lambda: MaxPool2d(3, 2, padding=1, ceil_mode=True), lambda: nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)),
    (lambda: LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1.0), lambda: nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1.0)),
    (lambda: LocalResponseNorm(3, alpha=0.5, beta=0.5, k=2.0), lambda: nn.LocalResponseNorm(3, alpha=0.5, beta=0.5, k=2.0)),
]


@pytest.mark.parametrize("ours,theirs", LAYERS)
@pytest.mark.parametrize("n", [1, CHUNK, 3 * CHUNK + 5])
def test_inference_equals_pytorch_bit_for_bit(ours, theirs, n):
    x = _acts(n, side=16 if n == 1 else 15)
    with torch.no_grad():
        a, b = ours()(x), theirs()(x)
    assert a.shape == b.shape and a.is_contiguous() and torch.equal(a, b)


@pytest.mark.parametrize("ours,theirs", LAYERS)
def test_training_gives_pytorchs_values_and_gradients_bit_for_bit(ours, theirs):
    """With gradients the layers are torch.nn's: the same outputs, gradients and second derivatives (DD's unroll and
    LD's second-order step take them). (Chunking LRN with gradients too gave the same values but no speed: DD's CIFAR-10
    outer iteration 3.97 s either way on one thread with allocator.py's setting, session 26; not kept.)"""
    x1 = _acts(2 * CHUNK + 1, seed=1).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    y1, y2 = ours()(x1), theirs()(x2)
    w = torch.randn_like(y1)
    (g1,) = torch.autograd.grad((y1 * w).sum(), x1, create_graph=True)
    (g2,) = torch.autograd.grad((y2 * w).sum(), x2, create_graph=True)
    (h1,) = torch.autograd.grad((g1 * g1).sum(), x1)
    (h2,) = torch.autograd.grad((g2 * g2).sum(), x2)
    assert torch.equal(y1, y2) and torch.equal(g1, g2) and torch.equal(h1, h2)


@pytest.mark.parametrize("ours,theirs", LAYERS)
def test_under_vmap(ours, theirs):
    x = _acts(3 * (CHUNK + 1), seed=2).reshape(3, CHUNK + 1, 8, 15, 15)
    with torch.no_grad():
        a = torch.func.vmap(ours())(x)
        b = torch.stack([theirs()(xi) for xi in x])
    assert torch.equal(a, b)


def test_alexnet_inference_unchanged_and_same_state_dict():
    torch.manual_seed(0)
    ours = build_model("alexnet", 3, 32, 10)
    plain = copy.deepcopy(ours)
    swapped = 0
    for name, m in list(plain.named_modules()):  # the same network with torch.nn's own layers
        for child_name, child in list(m.named_children()):
            if isinstance(child, MaxPool2d):
                setattr(m, child_name, nn.MaxPool2d(child.kernel_size, child.stride, child.padding))
                swapped += 1
            elif isinstance(child, LocalResponseNorm):
                setattr(m, child_name, nn.LocalResponseNorm(child.size, child.alpha, child.beta, child.k))
                swapped += 1
    assert swapped == 4 and list(ours.state_dict()) == list(plain.state_dict())
    x = torch.randn(3 * CHUNK + 7, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(ours(x), plain(x))
    assert torch.equal(F.softmax(ours(x[:4]), 1), F.softmax(plain(x[:4]), 1))  # with gradients: the same layers
