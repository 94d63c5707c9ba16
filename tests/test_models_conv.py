"""The CPU path of ``models.conv.Conv2dMaxPool`` (phases, batch weight gradient) and LeNet's layer order."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jvp, vmap

from labeldistill.models import build_model
from labeldistill.models import conv as conv_mod
from labeldistill.models.conv import Conv2dMaxPool, _Conv2dBatchWeightGrad, conv_max_pool_by_phases, weight_grad_as_conv


@pytest.fixture
def fast_for_any_batch(monkeypatch):
    monkeypatch.setattr(conv_mod, "MIN_BATCH", 1)


@pytest.mark.parametrize("cin,pad,stride", [(1, 2, 1), (1, 0, 2), (3, 1, 2), (2, 2, 1)])
def test_weight_grad_as_conv_matches_library(cin, pad, stride):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, cin, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(4, cin, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, w, stride=stride, padding=pad)
    go = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (ref,) = torch.autograd.grad(out, w, go)
    torch.testing.assert_close(weight_grad_as_conv(x, go, (3, 3), (pad, pad), stride), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin,pad,stride", [(1, 2, 1), (2, 1, 2)])
def test_function_first_and_second_derivatives_and_forward_mode(cin, pad, stride):
    """Finite-difference checks of backward, double backward and jvp (float64)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, cin, 7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, cin, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: _Conv2dBatchWeightGrad.apply(x, w, b, stride, (pad, pad))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def _digits(batch: int, seed: int, size: int = 28) -> torch.Tensor:
    """Digit-like images: a constant background (many tied pooling windows) around random strokes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, 1, size, size)
    x[:, :, 6:size - 6, 6:size - 6] = torch.rand(batch, 1, size - 12, size - 12, generator=g)
    return (x - 0.13) / 0.31


@pytest.mark.parametrize("size,pad", [(28, 2), (28, 0), (13, 1)])
def test_pooling_by_phases_is_conv_then_max_pool(size, pad):
    """Same values and the same selected positions (first maximum on ties) as conv2d + max_pool2d."""
    torch.manual_seed(0)
    w = (torch.randn(6, 1, 5, 5) * 0.2).requires_grad_()
    b = (torch.randn(6) * 0.1).requires_grad_()
    x = _digits(9, 1, size).double().requires_grad_()
    wd, bd = w.double(), b.double()
    ref_out, ref_idx = F.max_pool2d(F.conv2d(x, wd, bd, padding=pad), 2, return_indices=True)
    out = conv_max_pool_by_phases(x, wd, bd, (pad, pad))
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref_grads = torch.autograd.grad(ref_out, (x, wd, bd), go)
    grads = torch.autograd.grad(out, (x, wd, bd), go)
    for a, r in zip(grads, ref_grads):  # a different choice among tied positions would show here
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


def test_pooling_by_phases_breaks_ties_as_max_pool2d():
    """Windows whose maximum sits at (0, 1) and (1, 0) at once: max_pool2d takes (0, 1), the first in
    its scan order, and so must the phases (the gradients differ with the position taken)."""
    g = torch.Generator().manual_seed(7)
    w = torch.zeros(2, 1, 5, 5, dtype=torch.float64)
    w[:, 0, 2, 2] = torch.tensor([1.0, 0.5])  # centre taps: the conv output is the image, scaled
    w.requires_grad_()
    x = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    x[..., 0::2, 1::2] = 2.0
    x[..., 1::2, 0::2] = 2.0
    x.requires_grad_()
    ref_out = F.max_pool2d(F.conv2d(x, w, padding=2), 2)
    out = conv_max_pool_by_phases(x, w, None, (2, 2))
    assert torch.equal(out, ref_out)
    go = torch.rand(out.shape, generator=g, dtype=torch.float64)
    for a, r in zip(torch.autograd.grad(out, (x, w), go), torch.autograd.grad(ref_out, (x, w), go)):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


def _pair(seed: int = 0, cin: int = 1, pad: int = 2) -> tuple[nn.Sequential, Conv2dMaxPool]:
    torch.manual_seed(seed)
    conv = nn.Conv2d(cin, 6, 5, padding=pad)
    fast = Conv2dMaxPool(cin, 6, 5, padding=pad)
    fast.load_state_dict(conv.state_dict())
    return nn.Sequential(conv, nn.MaxPool2d(2)), fast


def _uses_phases(module: nn.Module, x: torch.Tensor) -> bool:
    out = module(x)
    return out.grad_fn is not None and "MaxBackward" in type(out.grad_fn).__name__


def test_phase_path_rule():
    """Taken on a CPU for one input channel, a large batch and gradients on; else the library."""
    _, fast = _pair()
    big, small = torch.zeros(conv_mod.MIN_BATCH, 1, 8, 8), torch.zeros(conv_mod.MIN_BATCH - 1, 1, 8, 8)
    assert _uses_phases(fast, big)
    assert not _uses_phases(fast, small)
    with torch.no_grad():
        assert fast(big).grad_fn is None
    _, rgb = _pair(cin=3)
    assert not _uses_phases(rgb, torch.zeros(conv_mod.MIN_BATCH, 3, 8, 8))
    assert not _uses_phases(Conv2dMaxPool(1, 2, 3, stride=2), big)
    assert set(fast.state_dict()) == {"weight", "bias"}


def test_module_matches_conv_pool_values_gradients_and_double_backward(fast_for_any_batch):
    ref, fast = _pair()
    x = _digits(5, 2, 12).requires_grad_()
    assert _uses_phases(fast, x)
    out_r, out_f = ref(x), fast(x)
    torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-6)
    go = torch.randn(out_r.shape, generator=torch.Generator().manual_seed(3))
    params_r, params_f = (x, ref[0].weight, ref[0].bias), (x, fast.weight, fast.bias)
    gr = torch.autograd.grad(out_r, params_r, go, create_graph=True)
    gf = torch.autograd.grad(out_f, params_f, go, create_graph=True)
    for a, b in zip(gr, gf):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Second order: d/dx of <dL/dW, v> (what the double-backward meta-gradient differentiates).
    v = torch.randn(6, 1, 5, 5, generator=torch.Generator().manual_seed(4))
    (hr,) = torch.autograd.grad((gr[1] * v).sum(), x)
    (hf,) = torch.autograd.grad((gf[1] * v).sum(), x)
    torch.testing.assert_close(hf, hr, rtol=1e-5, atol=1e-5)


def test_module_under_vmap_and_jvp(fast_for_any_batch):
    """The engine maps models with vmap and the JVP meta-gradient uses forward mode."""
    ref, fast = _pair()
    x = _digits(4, 5, 12)
    params = {n: torch.stack([p.detach(), 2 * p.detach()]) for n, p in fast.named_parameters()}
    batched = vmap(lambda p: functional_call(fast, p, (x,)))(params)
    for k in range(2):
        expected = F.max_pool2d(F.conv2d(x, params["weight"][k], params["bias"][k], padding=2), 2)
        torch.testing.assert_close(batched[k], expected, rtol=1e-5, atol=1e-6)
    g = torch.Generator().manual_seed(6)
    tangent = {n: torch.randn(p.shape, generator=g) for n, p in fast.named_parameters()}
    primal = {n: p.detach() for n, p in fast.named_parameters()}
    _, t_fast = jvp(lambda p: functional_call(fast, p, (x,)), (primal,), (tangent,))
    _, t_ref = jvp(lambda p: functional_call(ref, {f"0.{n}": t for n, t in p.items()}, (x,)), (primal,), (tangent,))
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
    """LeNet (pool before ReLU, conv + pool as one layer) is the paper's conv -> ReLU -> pool network:
    max(relu(.)) == relu(max(.)) exactly, and so are the gradients, ties included (flat backgrounds)."""
    torch.manual_seed(0)
    model = build_model("lenet", 1, 28, 10)
    ref = _lenet_paper_order(model)
    g = torch.Generator().manual_seed(4)
    x = _digits(batch, 4)
    y = torch.randint(0, 10, (batch,), generator=g)
    exact = batch < conv_mod.MIN_BATCH  # else the first layer is computed by phases: sums in another order
    out_m, out_r = model(x), ref(x)
    gm = torch.autograd.grad(F.cross_entropy(out_m, y), list(model.parameters()))
    gr = torch.autograd.grad(F.cross_entropy(out_r, y), list(ref.parameters()))
    for a, b in zip([out_m, *gm], [out_r, *gr]):
        if exact:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
