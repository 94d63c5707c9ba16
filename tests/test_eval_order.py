"""Evaluation does not depend on the order or the batching of the scored examples (issue 14).

Batch-norm models are scored with the statistics of their training images (models/norm.py);
models without batch norm keep their plain evaluation path. Real CIFAR-10 images: a
class-sorted test file makes every chunk one or two classes, which is where batch statistics
of test chunks went wrong.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from labeldistill.engine import Learner, accuracy, predict, to_modules, train_models
from labeldistill.models import build_model, get_model_info, list_models
from labeldistill.models.norm import BatchStatNorm, convert_batch_norm_

C = 10
# Per architecture: (image side, training steps, inner batch, test images). ResNet14 takes any
# size: 16 px (CIFAR 2x2-averaged) keeps its reference-prepended evaluation fast on one thread;
# AlexNet needs 32 px and is the slowest per image, so it is scored on fewer images.
# ConvNet-3 (instance norm: no batch dependence) at 16 px, where its 128-wide convolutions are cheap.
SETUP = {"lenet": (32, 40, 50, 2000), "alexnet": (32, 20, 25, 1000), "resnet14": (16, 40, 50, 2000), "convnet3": (16, 40, 50, 1000)}
N_TRAIN = 200


@pytest.fixture(scope="module")
def cifar(shared_data):
    """200 training and 2,000 class-sorted test images (disjoint), normalised, from CIFAR-10's test file."""
    d = np.load(shared_data / "cifar10_test.npz")
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(d["y"]))
    train, test = pick[:N_TRAIN], pick[N_TRAIN : N_TRAIN + 2000]
    test = test[np.argsort(d["y"][test], kind="stable")]  # class-sorted
    x = torch.from_numpy(d["x"][np.concatenate([train, test])]).permute(0, 3, 1, 2).float() / 255
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    y = torch.from_numpy(d["y"][np.concatenate([train, test])])
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


@pytest.mark.parametrize("arch", list_models())
def test_accuracy_independent_of_order_and_chunk(cifar, arch):
    info = get_model_info(arch)
    side, steps, batch, n_test = SETUP.get(arch, (info.required_size or 32, 20, 25, 1000))
    xtr, ytr, xte, yte = cifar
    if side != xtr.shape[-1]:
        xtr, xte = (F.adaptive_avg_pool2d(t, side) for t in (xtr, xte))
    # Every n_test/2000-th test image: still class-sorted, all classes.
    keep = torch.arange(0, 2000, 2000 // n_test)
    xs, ys = xte[keep], yte[keep]
    perm = torch.randperm(len(ys), generator=torch.Generator().manual_seed(1))
    xp, yp = xs[perm], ys[perm]
    assert (ys[:-1] <= ys[1:]).all() and not (yp[:-1] <= yp[1:]).all()

    learner = Learner(lambda: build_model(arch, 3, side, C))
    state = train_models(learner, xtr, F.one_hot(ytr, C).float(), steps, [0], batch_size=batch)
    assert state.reference is not None and state.reference.shape[0] == N_TRAIN
    sorted_big = accuracy(learner, state, xs, ys, chunk=2048)
    shuffled_big = accuracy(learner, state, xp, yp, chunk=2048)
    sorted_small = accuracy(learner, state, xs, ys, chunk=64)
    assert float(sorted_big) > 0.15  # the models learned something (chance is 0.10)
    if learner.has_batch_norm:
        # The same function of each image: equal up to float rounding (conv kernels per batch size).
        assert abs(float(sorted_big - shuffled_big)) <= 0.005
        assert abs(float(sorted_big - sorted_small)) <= 0.005
    else:
        # The evaluation path these models always had: each image's logits alone.
        one = 1.0 / len(ys)
        assert abs(float(sorted_big - shuffled_big)) <= one
        assert abs(float(sorted_big - sorted_small)) <= one


def test_every_registered_architecture_has_a_setup():
    """A new architecture gets a deliberate test size (and resnet14 is the batch-norm case here)."""
    assert set(SETUP) == set(list_models())
    assert Learner(lambda: build_model("resnet14", 3, 16, C)).has_batch_norm
    assert not any(Learner(lambda a=a: build_model(a, 3, 32, C)).has_batch_norm for a in ("lenet", "alexnet"))


# -- the norm layer ----------------------------------------------------------------------


def _norm(c=4, affine=True, seed=0, dim=2):
    kind = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dim]
    bn = kind(c, affine=affine, track_running_stats=False).double()
    layer = BatchStatNorm.from_batch_norm(bn)
    if affine:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(c, dtype=torch.float64, generator=g))
            layer.bias.copy_(torch.randn(c, dtype=torch.float64, generator=g))
    return layer


@pytest.mark.parametrize("shape", [(9, 4, 5, 3), (9, 4), (9, 4, 6)])
def test_default_mode_is_batch_norm_with_batch_statistics(shape):
    layer = _norm(dim=2 if len(shape) == 4 else 1)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"] and not list(layer.buffers())
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    g = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = layer(x)
    ref = F.batch_norm(x, None, None, layer.weight, layer.bias, True, 0.1, layer.eps)
    assert torch.equal(out, ref)
    grads = torch.autograd.grad((out * g).sum(), (x, layer.weight, layer.bias))
    ref_grads = torch.autograd.grad((ref * g).sum(), (x, layer.weight, layer.bias))
    for a, b in zip(grads, ref_grads):
        assert torch.equal(a, b)
    # ... and the per-batch normalisation by hand.
    dims = [0, *range(2, len(shape))]
    view = (1, -1) + (1,) * (len(shape) - 2)
    by_hand = (x - x.mean(dims).view(view)) / (x.var(dims, unbiased=False).view(view) + layer.eps).sqrt()
    torch.testing.assert_close(out, by_hand * layer.weight.view(view) + layer.bias.view(view))


@pytest.mark.parametrize("affine", [True, False])
def test_reference_mode_normalises_with_the_reference_statistics(affine):
    layer = _norm(affine=affine)
    g = torch.Generator().manual_seed(3)
    ref = 3 + 2 * torch.randn(7, 4, 5, 3, dtype=torch.float64, generator=g)
    x = torch.randn(5, 4, 5, 3, dtype=torch.float64, generator=g)
    layer.reference_rows = 7
    out = layer(torch.cat([ref, x]))
    mean = ref.mean((0, 2, 3)).view(1, -1, 1, 1)
    var = ((ref - mean) ** 2).mean((0, 2, 3)).view(1, -1, 1, 1)  # biased
    want = (torch.cat([ref, x]) - mean) / torch.sqrt(var + layer.eps)
    if affine:
        want = want * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    # A scored row does not depend on the other scored rows.
    torch.testing.assert_close(layer(torch.cat([ref, x[3:4]]))[7:], out[10:11], rtol=1e-12, atol=1e-12)
    layer.reference_rows = 8
    with pytest.raises(ValueError):
        layer(ref)


# -- the engine around it ------------------------------------------------------------------


def resnet64(side=8):
    return build_model("resnet14", 3, side, C).double()


@pytest.fixture(scope="module")
def small():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(24, 3, 8, 8, dtype=torch.float64, generator=g)
    y = torch.softmax(2 * torch.randn(24, C, dtype=torch.float64, generator=g), -1)
    xt = torch.randn(30, 3, 8, 8, dtype=torch.float64, generator=g) + torch.linspace(-1, 1, 30, dtype=torch.float64).view(-1, 1, 1, 1)
    return x, y, xt


def test_training_numerics_and_parameter_names_unchanged(small):
    """The converted layers train exactly as torch.func.replace_all_batch_norm_modules_ did."""
    x, y, _ = small
    learner = Learner(resnet64)
    state = learner.init([3])
    params, buffers, head = learner.single(state)
    old = resnet64()
    replace_all_batch_norm_modules_(old)
    old_params, old_buffers = stack_module_state([old])
    assert list(old_params) == list(state.params) and not state.buffers and not old_buffers
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in learner.template.modules())
    loss, _ = learner.train_loss(params, buffers, head, x, y)
    out_old = functional_call(old, (params, {}), (x,))
    loss_old = -(y * F.log_softmax(out_old, -1)).sum(-1).mean()
    assert torch.equal(loss, loss_old)
    g_new = torch.autograd.grad(loss, list(state.params.values()))
    g_old = torch.autograd.grad(loss_old, list(state.params.values()))
    for a, b in zip(g_new, g_old):
        assert torch.equal(a, b)


def test_evaluating_context_is_scoped():
    learner = Learner(resnet64)
    norms = [m for m in learner.template.modules() if isinstance(m, BatchStatNorm)]
    assert len(norms) == 15 and all(m.reference_rows == 0 for m in norms)
    with pytest.raises(RuntimeError):
        with learner.evaluating(5):
            assert all(m.reference_rows == 5 for m in norms)
            raise RuntimeError
    assert all(m.reference_rows == 0 for m in norms)


@pytest.mark.parametrize("head", ["linear", "ridge"])
def test_predict_independent_of_chunk_order_mode_and_other_models(small, head):
    x, y, xt = small
    learner = Learner(resnet64, head=head)
    seeds = [1, 2, 3]
    state = {m: train_models(learner, x, y, 3, seeds, batch_size=8, mode=m) for m in ("vmap", "loop")}
    assert state["loop"].reference is not None and state["loop"].reference.shape[0] == 24
    full = predict(learner, state["loop"], xt, mode="loop")
    assert full.shape == (3, 30, C)
    torch.testing.assert_close(predict(learner, state["loop"], xt, chunk=4, mode="loop"), full, rtol=1e-10, atol=1e-10)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(predict(learner, state["loop"], xt[perm], chunk=7, mode="loop"), full[:, perm], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(predict(learner, state["vmap"], xt, chunk=4, mode="vmap"), full, rtol=1e-10, atol=1e-10)
    # Model 1 trained alone, scoring one image: the same logits.
    alone = train_models(learner, x, y, 3, seeds[1:2], batch_size=8, mode="loop")
    torch.testing.assert_close(predict(learner, alone, xt[5:6], mode="loop")[0], full[1, 5:6], rtol=1e-10, atol=1e-10)
    # The scores are the training set's population statistics at work, not the chunk's: a
    # one-row chunk would otherwise normalise to the bias alone.
    batch_stats = vmap(learner.logits, (0, 0, 0, None))(state["loop"].params, state["loop"].buffers, state["loop"].head, xt)
    assert not torch.allclose(batch_stats, full, atol=1e-3)
    yt = full[0].argmax(-1)
    assert float(accuracy(learner, state["loop"], xt, yt, chunk=1)[0]) == 1.0


def test_batch_norm_model_without_reference_refuses(small):
    x, y, xt = small
    learner = Learner(resnet64)
    state = train_models(learner, x, y, 1, [0], batch_size=8)
    state.reference = None
    with pytest.raises(ValueError, match="reference"):
        predict(learner, state, xt)
    # Models without batch norm never need it.
    lenet = Learner(lambda: build_model("lenet", 3, 32, C).double())
    st = train_models(lenet, torch.randn(6, 3, 32, 32, dtype=torch.float64), y[:6], 1, [0], batch_size=3)
    st.reference = None
    assert predict(lenet, st, torch.randn(4, 3, 32, 32, dtype=torch.float64)).shape == (1, 4, C)


@pytest.mark.parametrize("head", ["linear", "ridge"])
def test_to_modules_eval_matches_predict(small, head):
    x, y, xt = small
    learner = Learner(resnet64, head=head)
    seeds = [4, 9]
    state = train_models(learner, x, y, 3, seeds, batch_size=8, mode="loop")
    mods = to_modules(learner, state, seeds)
    want = predict(learner, state, xt, mode="loop")
    for k, m in enumerate(mods):
        bns = [b for b in m.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]
        assert len(bns) == 15 and all(type(b) is nn.BatchNorm2d and not b.training and b.track_running_stats for b in bns)
        assert not any(isinstance(b, BatchStatNorm) for b in m.modules())
        with torch.no_grad():
            got = m.eval()(xt)
            torch.testing.assert_close(got, want[k], rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(m(xt[:3]), want[k, :3], rtol=1e-9, atol=1e-9)  # any batch, any size
        # The stored statistics are the training images' (first layer: the input to the stem's norm).
        with torch.no_grad():
            stem = m.features[0](x)  # ResNet14.features (linear) or the ridge model's body: the same Sequential
        first = m.features[1]
        torch.testing.assert_close(first.running_mean, stem.mean((0, 2, 3)))
        torch.testing.assert_close(first.running_var, stem.var((0, 2, 3), unbiased=False))


def test_to_modules_without_batch_norm_unchanged(small):
    _, y, _ = small
    learner = Learner(lambda: build_model("lenet", 3, 32, C).double())
    g = torch.Generator().manual_seed(2)
    x, xt = torch.randn(12, 3, 32, 32, dtype=torch.float64, generator=g), torch.randn(5, 3, 32, 32, dtype=torch.float64, generator=g)
    state = train_models(learner, x, y[:12], 2, [7], batch_size=4)
    [m] = to_modules(learner, state, [7])
    with torch.no_grad():
        torch.testing.assert_close(m(xt), predict(learner, state, xt)[0], rtol=1e-12, atol=1e-12)


def test_convert_keeps_parameter_objects():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4 * 4 * 4, affine=False)))
    w = net[1].weight
    convert_batch_norm_(net)
    assert isinstance(net[1], BatchStatNorm) and net[1].weight is w and net[1].kind is nn.BatchNorm2d
    assert isinstance(net[2][1], BatchStatNorm) and net[2][1].weight is None and net[2][1].kind is nn.BatchNorm1d
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_cpu_chunk_is_sized_by_the_largest_intermediate():
    from labeldistill.engine.train import CPU_CHUNK_BYTES, cpu_chunk_rows

    x = torch.randn(3, 1, 28, 28)
    # ConvNet-3 on 28 px: the first conv (padding 3) makes 128 x 32 x 32 floats per row, the largest tensor.
    assert cpu_chunk_rows(Learner(lambda: build_model("convnet3", 1, 28, C)), x) == CPU_CHUNK_BYTES // (128 * 32 * 32 * 4) == 16
    # LeNet's fused conv+pool: its 6 x 28 x 28 conv output (inside one module) is what counts, not the pooled 6 x 14 x 14.
    assert cpu_chunk_rows(Learner(lambda: build_model("lenet", 1, 28, C)), x) == CPU_CHUNK_BYTES // (6 * 28 * 28 * 4)
    assert cpu_chunk_rows(Learner(lambda: build_model("lenet", 1, 28, C)), x, budget=1) == 1  # at least one row


@pytest.mark.parametrize("arch", ["lenet", "convnet3", "alexnet"])
def test_default_cpu_chunk_moves_logits_by_rounding_only(arch):
    # Without batch norm each row's result ignores the other rows, so the chunk (a speed choice) moves the logits by
    # float32 rounding at most: bit for bit on the AMD EPYC CPUs of sessions 14-51, but oneDNN's kernels may block a
    # convolution or matmul by its batch size, and on an Intel Xeon (session 52) chunks of 7 or 1 rows moved logits
    # of size 0.9 by up to 7e-7. The classes, hence every accuracy, stay the same.
    side = 32 if arch == "alexnet" else 16 if arch == "convnet3" else 28
    learner = Learner(lambda: build_model(arch, 3, side, C))
    state = learner.init([0, 1])
    x = torch.randn(300, 3, side, side, generator=torch.Generator().manual_seed(0))
    default = predict(learner, state, x, mode="loop")
    for chunk in (2048, 7, 1):
        other = predict(learner, state, x, chunk=chunk, mode="loop")
        torch.testing.assert_close(other, default, rtol=1e-5, atol=1e-6)  # float32 rounding, not a different result
        assert torch.equal(other.argmax(-1), default.argmax(-1))
