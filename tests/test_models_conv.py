"""The CPU weight-gradient path of ``models.conv.Conv2d`` and LeNet's layer order."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jvp, vmap

from labeldistill.models import build_model
from labeldistill.models import conv as conv_mod
from labeldistill.models.conv import Conv2d, _Conv2dBatchWeightGrad, weight_grad_as_conv


@pytest.fixture
def fast_for_any_batch(monkeypatch):
    monkeypatch.setattr(conv_mod, "MIN_BATCH", 1)


@pytest.mark.parametrize("cin,pad", [(1, 2), (1, 0), (3, 1)])
def test_weight_grad_as_conv_matches_library(cin, pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, cin, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(4, cin, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, w, padding=pad)
    go = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (ref,) = torch.autograd.grad(out, w, go)
    torch.testing.assert_close(weight_grad_as_conv(x, go, (pad, pad)), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin,pad", [(1, 2), (2, 1)])
def test_function_first_and_second_derivatives_and_forward_mode(cin, pad):
    """Finite-difference checks of backward, double backward and jvp (float64)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, cin, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, cin, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: _Conv2dBatchWeightGrad.apply(x, w, b, (pad, pad))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def _pair(seed: int = 0, cin: int = 1, pad: int = 2) -> tuple[nn.Conv2d, Conv2d]:
    torch.manual_seed(seed)
    ref = nn.Conv2d(cin, 6, 5, padding=pad)
    fast = Conv2d(cin, 6, 5, padding=pad)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def _uses_fast_path(module: nn.Module, x: torch.Tensor) -> bool:
    out = module(x)
    return out.grad_fn is not None and "BatchWeightGrad" in type(out.grad_fn).__name__


def test_fast_path_rule():
    """Taken on a CPU for one input channel, a large batch and gradients on; else the library."""
    _, fast = _pair()
    big, small = torch.zeros(conv_mod.MIN_BATCH, 1, 8, 8), torch.zeros(conv_mod.MIN_BATCH - 1, 1, 8, 8)
    assert _uses_fast_path(fast, big)
    assert not _uses_fast_path(fast, small)
    with torch.no_grad():
        assert fast(big).grad_fn is None
    _, rgb = _pair(cin=3)
    assert not _uses_fast_path(rgb, torch.zeros(conv_mod.MIN_BATCH, 3, 8, 8))
    strided = Conv2d(1, 2, 3, stride=2)
    assert not _uses_fast_path(strided, big)
    assert set(fast.state_dict()) == {"weight", "bias"}


def test_module_matches_conv2d_values_gradients_and_double_backward(fast_for_any_batch):
    ref, fast = _pair()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 1, 10, 10, generator=g, requires_grad=True)
    go = torch.randn(5, 6, 10, 10, generator=g)
    assert _uses_fast_path(fast, x)
    out_r, out_f = ref(x), fast(x)
    assert torch.equal(out_r, out_f)  # the forward is the library's own
    gr = torch.autograd.grad(out_r, (x, ref.weight, ref.bias), go, create_graph=True)
    gf = torch.autograd.grad(out_f, (x, fast.weight, fast.bias), go, create_graph=True)
    for a, b in zip(gr, gf):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Second order: d/dx of <dL/dW, v> (what the double-backward meta-gradient differentiates).
    v = torch.randn(6, 1, 5, 5, generator=g)
    (hr,) = torch.autograd.grad((gr[1] * v).sum(), x)
    (hf,) = torch.autograd.grad((gf[1] * v).sum(), x)
    torch.testing.assert_close(hf, hr, rtol=1e-5, atol=1e-5)


def test_module_under_vmap_and_jvp(fast_for_any_batch):
    """The engine maps models with vmap and the JVP meta-gradient uses forward mode."""
    ref, fast = _pair()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 1, 8, 8, generator=g)
    params = {n: torch.stack([p.detach(), 2 * p.detach()]) for n, p in fast.named_parameters()}
    batched = vmap(lambda p: functional_call(fast, p, (x,)))(params)
    for k in range(2):
        torch.testing.assert_close(batched[k], functional_call(ref, {n: t[k] for n, t in params.items()}, (x,)))
    tangent = {n: torch.randn(p.shape, generator=g) for n, p in fast.named_parameters()}
    primal = {n: p.detach() for n, p in fast.named_parameters()}
    _, t_fast = jvp(lambda p: functional_call(fast, p, (x,)), (primal,), (tangent,))
    _, t_ref = jvp(lambda p: functional_call(ref, p, (x,)), (primal,), (tangent,))
    torch.testing.assert_close(t_fast, t_ref, rtol=1e-5, atol=1e-5)


def _lenet_paper_order(model: nn.Module) -> nn.Sequential:
    """LeNet as conv -> ReLU -> pool with the library's layers and ``model``'s weights."""
    conv = model.features[0]
    c1, c2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
    c1.load_state_dict(conv[0].state_dict())
    c2.load_state_dict(conv[3].state_dict())
    return nn.Sequential(c1, nn.ReLU(), nn.MaxPool2d(2), c2, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         model.features[1:], model.head)


@pytest.mark.parametrize("batch", [8, 300])
def test_lenet_pool_then_relu_is_the_paper_network(batch):
    """max(relu(.)) == relu(max(.)) exactly, and so are the gradients, ties included (flat backgrounds)."""
    torch.manual_seed(0)
    model = build_model("lenet", 1, 28, 10)
    ref = _lenet_paper_order(model)
    g = torch.Generator().manual_seed(4)
    x = torch.zeros(batch, 1, 28, 28)
    x[:, :, 8:20, 8:20] = torch.rand(batch, 1, 12, 12, generator=g)  # digits on a constant background
    x = (x - 0.13) / 0.31
    y = torch.randint(0, 10, (batch,), generator=g)
    out_m, out_r = model(x), ref(x)
    assert torch.equal(out_m, out_r)
    gm = torch.autograd.grad(F.cross_entropy(out_m, y), list(model.parameters()))
    gr = torch.autograd.grad(F.cross_entropy(out_r, y), list(ref.parameters()))
    for a, b in zip(gm, gr):
        if batch < conv_mod.MIN_BATCH:
            assert torch.equal(a, b)
        else:  # the first layer's weight gradient is summed in another order
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
