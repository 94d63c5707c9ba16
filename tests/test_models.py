"""Architectures (registry, surface, sizes) and the ridge-regression head."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labeldistill.errors import UserError
from labeldistill.models import (
    build_model, check_surface, get_model_info, list_models, pseudo_gradient_step, ridge_logits, ridge_solve,
    ridge_solve_primal, with_bias,
)

# (in_channels, image_size) each registered model is built for; a model added later is
# built at its required size (or 32 px colour).
SIZES = {"lenet": [(1, 28), (3, 32)], "alexnet": [(3, 32)], "resnet14": [(3, 32), (1, 28)]}
# Feature sizes from the paper / DESIGN.md: LeNet 84, AlexCifarNet 192, CIFAR ResNet 64.
FEATURES = {"lenet": 84, "alexnet": 192, "resnet14": 64}


def _cases():
    for name in list_models():
        info = get_model_info(name)
        for c, s in SIZES.get(name, [(3, info.required_size or 32)]):
            yield pytest.param(name, c, s, id=f"{name}-{c}x{s}")


def test_known_models_are_registered():
    assert set(FEATURES) <= set(list_models())


@pytest.mark.parametrize("name,channels,size", list(_cases()))
def test_model_builds_with_surface_and_shapes(name, channels, size):
    torch.manual_seed(0)
    m = build_model(name, channels, size, 10)
    check_surface(m)
    assert isinstance(m.head, nn.Linear)
    assert m.head.out_features == 10
    assert m.head.in_features == m.num_features
    if name in FEATURES:
        assert m.num_features == FEATURES[name]
    x = torch.randn(2, channels, size, size)
    feats = m.features(x)
    assert feats.shape == (2, m.num_features)
    out = m(x)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, m.head(feats))


def test_lenet_padding_gives_400_flat_features_at_28_and_32():
    # 28 px + padding 2 -> conv5: 28 -> pool: 14 -> conv5: 10 -> pool: 5 ; 32 px without padding: same.
    for c, s in ((1, 28), (3, 32)):
        m = build_model("lenet", c, s, 10)
        linears = [mod for mod in m.features.modules() if isinstance(mod, nn.Linear)]
        assert linears[0].in_features == 16 * 5 * 5


def test_lenet_parameter_count():
    # conv 1->6 k5: 150+6; conv 6->16 k5: 2400+16; fc 400->120: 48000+120; 120->84: 10080+84; head 84->10: 840+10
    expected = 156 + 2416 + 48120 + 10164 + 850
    m = build_model("lenet", 1, 28, 10)
    assert sum(p.numel() for p in m.parameters()) == expected == 61706


def test_resnet14_parameter_count_and_alias():
    m = build_model("resnet14", 3, 32, 10)
    n = sum(p.numel() for p in m.parameters())
    assert 150_000 <= n <= 200_000
    # Hand count: stem conv 3*16*9 + bn 2*16; stage 16: 4 convs 16*16*9, 4 bns;
    # stage 32: 16*32*9 + 3 * 32*32*9 + shortcut 16*32 + 5 bns; stage 64 likewise; head 64*10+10.
    stem = 3 * 16 * 9 + 32
    s1 = 4 * 16 * 16 * 9 + 4 * 32
    s2 = 16 * 32 * 9 + 3 * 32 * 32 * 9 + 16 * 32 + 5 * 64
    s3 = 32 * 64 * 9 + 3 * 64 * 64 * 9 + 32 * 64 + 5 * 128
    assert n == stem + s1 + s2 + s3 + 650
    assert get_model_info("resnet18").name == "resnet14"
    alias = build_model("resnet18", 3, 32, 10)
    assert type(alias) is type(m)
    assert sum(p.numel() for p in alias.parameters()) == n


def test_resnet14_he_fan_out_init():
    torch.manual_seed(0)
    m = build_model("resnet14", 3, 32, 10)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d) and mod.out_channels == 64 and mod.kernel_size == (3, 3)]
    w = torch.cat([c.weight.detach().flatten() for c in convs])
    expected = (2.0 / (64 * 9)) ** 0.5  # He normal, fan_out = out_channels * k * k
    assert abs(w.std().item() / expected - 1) < 0.05


def test_unknown_model_lists_names():
    with pytest.raises(UserError) as e:
        build_model("no-such-net", 1, 28, 10)
    msg = str(e.value)
    assert "no-such-net" in msg
    for name in list_models():
        assert name in msg


def test_too_small_image_is_user_error():
    with pytest.raises(UserError):
        build_model("lenet", 1, 8, 10)


def test_check_surface_rejects_bad_modules():
    with pytest.raises(UserError, match="features"):
        check_surface(nn.Linear(3, 2))

    class NoHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Flatten()

    with pytest.raises(UserError, match="head"):
        check_surface(NoHead())

    class BadHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Flatten()
            self.head = nn.Sequential(nn.Linear(3, 2))

    with pytest.raises(UserError, match="nn.Linear"):
        check_surface(BadHead())

    class Good(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Flatten()
            self.head = nn.Linear(3, 2)

    check_surface(Good())


# -- ridge head ------------------------------------------------------------------------------


def _numpy_ridge(z: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    d = z.shape[1]
    return np.linalg.solve(z.T @ z + lam * np.eye(d), z.T @ y)


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("n,d", [(5, 12), (20, 6)], ids=["n<D", "n>D"])
@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_ridge_solve_matches_numpy_and_primal(n, d, lam):
    rng = np.random.default_rng(n * 100 + d)
    z = rng.normal(size=(n, d))
    y = rng.dirichlet(np.ones(4), size=n)
    ref = _numpy_ridge(z, y, lam)
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    w = ridge_solve(zt, yt, lam)
    assert w.shape == (d, 4) and w.dtype == torch.float64
    assert _rel(w.numpy(), ref) < 1e-8
    assert _rel(ridge_solve_primal(zt, yt, lam).numpy(), ref) < 1e-8


def test_ridge_solve_float32_features_that_break_a_float32_cholesky():
    """Features like a trained AlexCifarNet's on CIFAR-100 (a large shared component, near-collinear rows): the float32
    Gram is not positive definite any more (the old float32 factor fails, info > 0, and its solve is off by 1,000 %);
    the solve, in float64 inside, matches the float64 primal reference for float32 input."""
    g = torch.Generator().manual_seed(0)
    n, d = 100, 193
    z = torch.rand(d, generator=g) * 300 + torch.randn(n, 20, generator=g) @ torch.randn(20, d, generator=g) * 3
    z = with_bias(z).float()
    y = torch.softmax(torch.randn(n, 10, generator=g), 1)
    _, info = torch.linalg.cholesky_ex(z @ z.T + torch.eye(n))  # what version 1 did: float32 throughout
    assert int(info) > 0
    w = ridge_solve(z, y, 1.0)
    assert w.dtype == torch.float32 and bool(torch.isfinite(w).all())
    assert _rel(w.double().numpy(), _numpy_ridge(z.double().numpy(), y.double().numpy(), 1.0)) < 1e-6


def test_ridge_solve_batched():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(3, 4, 7))
    y = rng.normal(size=(3, 4, 2))
    w = ridge_solve(torch.from_numpy(z), torch.from_numpy(y), 1.0).numpy()
    for k in range(3):
        assert _rel(w[k], _numpy_ridge(z[k], y[k], 1.0)) < 1e-8


@pytest.mark.parametrize("n,d", [(4, 6), (6, 3)])
def test_ridge_solve_gradcheck(n, d):
    g = torch.Generator().manual_seed(n + d)
    z = torch.randn(n, d, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(n, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z_, y_: ridge_solve(z_, y_, 1.0), (z, y))


def test_pseudo_gradient_step_formula():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, dtype=torch.float64, generator=g)
    wl = torch.randn(5, 3, dtype=torch.float64, generator=g)
    for a in (0.01, 0.5):
        expected = w.numpy() - a * (w.numpy() - wl.numpy())  # a step of size a along -(W - W_l)
        np.testing.assert_allclose(pseudo_gradient_step(w, wl, a).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(pseudo_gradient_step(w, wl).numpy(), 0.99 * w.numpy() + 0.01 * wl.numpy(), rtol=1e-12)


def test_with_bias_and_logits():
    z = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    zb = with_bias(z)
    assert zb.shape == (2, 4)
    assert torch.equal(zb[:, :3], z) and torch.equal(zb[:, 3], torch.ones(2, dtype=torch.float64))
    z3 = torch.zeros(2, 5, 3)
    assert with_bias(z3).shape == (2, 5, 4) and torch.all(with_bias(z3)[..., -1] == 1)
    w = torch.arange(8, dtype=torch.float64).reshape(4, 2)
    s = torch.tensor(2.0, dtype=torch.float64)
    expected = np.hstack([z.numpy(), np.ones((2, 1))]) @ (2.0 * w.numpy())
    np.testing.assert_allclose(ridge_logits(z, w, s).numpy(), expected)


@pytest.mark.parametrize("shape", [(3, 2, 6, 6), (2, 3, 5, 7), (4, 16, 10, 10), (2, 1, 3, 3)])
def test_fast_max_pool_equals_max_pool2d(shape):
    """The CPU inference path of LeNet's pooling gives max_pool2d's values exactly (ties, NaN, odd sizes)."""
    from labeldistill.models.pooling import MaxPool2x2

    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randint(-2, 3, shape, generator=g).double())  # many ties
    x.view(-1)[0] = float("nan")
    pool = MaxPool2x2()
    with torch.no_grad():
        torch.testing.assert_close(pool(x), torch.nn.functional.max_pool2d(x, 2), equal_nan=True, rtol=0, atol=0)
        batched = torch.func.vmap(pool)(torch.stack([x, 2 * x]))
        torch.testing.assert_close(batched[1], torch.nn.functional.max_pool2d(2 * x, 2), equal_nan=True, rtol=0, atol=0)
    # With gradients it is the library kernel itself.
    xg = x.nan_to_num().requires_grad_()
    (ga,) = torch.autograd.grad(pool(xg).sum(), xg)
    (gb,) = torch.autograd.grad(torch.nn.functional.max_pool2d(xg, 2).sum(), xg)
    assert torch.equal(ga, gb)
