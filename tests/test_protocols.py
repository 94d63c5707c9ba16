"""Evaluation protocols (issue 18): ConvNet-3, the protocol registry, the dc schedule, SGD through the
engine, and DSA augmentation (per sample, seeded per model, reproducible)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labeldistill.distill import DistillConfig
from labeldistill.engine import Learner, soft_cross_entropy, train_models
from labeldistill.engine.augment import TRANSFORMS, DSAParams, DSAugmenter, color, crop, cutout, flip, shift
from labeldistill.engine.recipe import TrainRecipe
from labeldistill.engine.train import batch_generator
from labeldistill.errors import UserError
from labeldistill.models import build_model
from labeldistill.protocols import canonical_protocol, get_protocol, list_protocols

C = 10


# ---- ConvNet-3 ------------------------------------------------------------------------------------

def _convnet_params(channels: int, side_out: int = 4, width: int = 128, classes: int = C) -> int:
    conv1 = channels * width * 9 + width
    conv = width * width * 9 + width
    norms = 3 * 2 * width  # affine instance norm: weight + bias per channel
    head = width * side_out * side_out * classes + classes
    return conv1 + 2 * conv + norms + head


@pytest.mark.parametrize("channels,side", [(1, 28), (3, 32)])
def test_convnet3_shapes_and_parameter_count(channels, side):
    net = build_model("convnet3", channels, side, C)
    assert net.num_features == 128 * 4 * 4 == 2048
    assert sum(p.numel() for p in net.parameters()) == _convnet_params(channels)  # 317,706 and 320,010
    assert net.features[0].padding == ((3, 3) if channels == 1 else (1, 1))
    assert all(net.features[i].padding == (1, 1) for i in (4, 8))
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 3 and all(m.num_groups == m.num_channels == 128 and m.affine for m in norms)
    x = torch.randn(3, channels, side, side)
    h = x
    sides = []
    for layer in net.features:
        h = layer(h)
        if isinstance(layer, torch.nn.AvgPool2d):
            sides.append(h.shape[-1])
    assert sides == [16, 8, 4] and net.features(x).shape == (3, 2048) and net(x).shape == (3, C)
    # Any input size: 16 px colour -> 2 x 2 x 128 features.
    assert build_model("convnet3", 3, 16, C).num_features == 512


def test_group_norm_per_channel_is_instance_norm_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 5, 7, dtype=torch.float64, generator=g) * 3 + 1
    gn = torch.nn.GroupNorm(6, 6, affine=True).double()
    with torch.no_grad():
        gn.weight.copy_(torch.randn(6, dtype=torch.float64, generator=g))
        gn.bias.copy_(torch.randn(6, dtype=torch.float64, generator=g))
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)  # biased, per image and channel
    closed = (x - mean) / torch.sqrt(var + gn.eps) * gn.weight.view(1, -1, 1, 1) + gn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(gn(x), closed, rtol=0, atol=1e-12)
    # No batch dependence: each image's logits alone equal its logits within a batch.
    net = build_model("convnet3", 1, 28, C).double()
    xs = torch.randn(5, 1, 28, 28, dtype=torch.float64, generator=g)
    together = net(xs)
    for i in range(5):
        torch.testing.assert_close(net(xs[i : i + 1])[0], together[i], rtol=0, atol=1e-12)
    assert not Learner(lambda: build_model("convnet3", 3, 32, C)).has_batch_norm


# ---- the registry ---------------------------------------------------------------------------------

def test_registry_lists_protocols_and_bad_names_are_one_line_errors():
    assert {"paper", "dc", "dc-dsa"} <= set(list_protocols())
    paper, dc, dsa = (get_protocol(n) for n in ("paper", "dc", "dc-dsa"))
    assert paper.is_paper and not dc.is_paper and not dsa.is_paper and get_protocol(None) is paper
    assert (paper.models, dc.models, dsa.models) == (20, 5, 5)
    assert (dc.optimizer, dc.lr, dc.momentum, dc.weight_decay, dc.batch_size, dc.epochs, dc.arch) == ("sgd", 0.01, 0.9, 5e-4, 256, 300, "convnet3")
    assert dc.augmentation is None and dc.zca_eps is None
    assert dsa.epochs == 1000 and dsa.zca_eps == 0.1 and dsa.uses_zca(3) and not dsa.uses_zca(1)
    a = dsa.augmentation
    assert (a.prob_flip, a.ratio_scale, a.ratio_rotate, a.ratio_crop_pad, a.ratio_cutout, a.brightness, a.saturation, a.contrast) == \
        (0.5, 1.2, 15.0, 0.125, 0.5, 1.0, 2.0, 0.5)
    assert dsa.augmentation_for(3).strategy == ("color", "crop", "cutout", "flip", "scale", "rotate")
    assert "flip" not in dsa.augmentation_for(1).strategy  # no flip for digits
    for bad in (lambda: get_protocol("dc-dsaa"), lambda: canonical_protocol("nope"),
                lambda: DistillConfig(test_protocol="nope").validate()):
        with pytest.raises(UserError) as e:
            bad()
        msg = str(e.value)
        assert "\n" not in msg and "paper" in msg and "dc-dsa" in msg
    assert DistillConfig().test_protocol == "paper"


def test_baseline_settings_train_the_protocols_number_of_models_unless_told():
    """The Python API as the CLI: a baseline under dc / dc-dsa / qin2024 trains their 5 models, under paper 20, and an
    explicit number wins; the settings record the resolved number."""
    from labeldistill.baselines import BaselineSettings

    assert [BaselineSettings(protocol=n).models for n in ("paper", "dc", "dc-dsa", "qin2024")] == [20, 5, 5, 5]
    assert BaselineSettings().models == 20 and BaselineSettings(protocol="dc-dsa", models=7).models == 7
    with pytest.raises(UserError, match="Unknown evaluation protocol 'nope'"):
        BaselineSettings(protocol="nope")


def test_cli_bad_protocol_is_a_one_line_error(capsys):
    from labeldistill.cli import main

    code = main(["baseline", "--protocol", "nope", "--target", "digits"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Unknown evaluation protocol 'nope'" in err and len(err.splitlines()) == 1


def test_dc_lr_schedule_closed_form():
    recipe = get_protocol("dc").recipe(3, lr=1e-3)
    assert recipe.lr_decay_epochs == (150,) and recipe.reset_momentum_at_decay
    for e in range(300):
        assert recipe.lr_at(e) == (0.01 if e < 150 else 0.01 * 0.1)
    assert get_protocol("dc-dsa").recipe(3, lr=1e-3).lr_decay_epochs == (500,)
    assert TrainRecipe.steps_per_epoch(100, 256) == 1 and TrainRecipe.steps_per_epoch(1000, 256) == 4


# ---- SGD with momentum and weight decay through the engine -----------------------------------------

def _small64():
    return build_model("convnet3", 1, 8, 3).double()


def _reference_epoch(net, opt, x, y, batch, gen) -> None:
    """One epoch as the field's code trains: a fresh shuffle from ``gen``, minibatches of ``batch`` (the last smaller)."""
    order = torch.randperm(len(x), generator=gen)
    for j in range(0, len(x), batch):
        b = order[j : j + batch]
        opt.zero_grad()
        soft_cross_entropy(net(x[b]), y[b]).backward()
        opt.step()


def test_sgd_momentum_weight_decay_through_engine_equals_torch_sgd():
    """One model, float64: the engine's recipe path == torch.optim.SGD on the plain module with the same
    shuffles, a new optimiser at the lr decay (as the DC code), and the last, smaller minibatch of each epoch."""
    g = torch.Generator().manual_seed(0)
    n, batch, epochs = 20, 8, 6
    x = torch.randn(n, 1, 8, 8, dtype=torch.float64, generator=g)
    y = torch.softmax(2 * torch.randn(n, 3, dtype=torch.float64, generator=g), -1)
    recipe = TrainRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=epochs, lr_decay_epochs=(3,),
                         reset_momentum_at_decay=True)
    learner = Learner(_small64)
    seed = 7
    state = train_models(learner, x, y, 1, [seed], batch_size=batch, recipe=recipe)

    net = learner.fresh_module(seed)
    gen = batch_generator(seed)
    opt = None
    for e in range(epochs):
        if e in (0, 3):
            opt = torch.optim.SGD(net.parameters(), lr=recipe.lr_at(e), momentum=0.9, weight_decay=5e-4)
        _reference_epoch(net, opt, x, y, batch, gen)
    for name, p in net.named_parameters():
        torch.testing.assert_close(state.params[name][0], p.detach(), rtol=0, atol=1e-10, msg=name)
    # ... and the model did move.
    start = learner.fresh_module(seed)
    assert any(not torch.allclose(p, state.params[n_][0]) for n_, p in start.named_parameters())


def test_qin2024_is_their_evaluation():
    """Qin et al.'s evaluate_synset (sunnytqin/no-distillation): dc-dsa's students and augmentation for 3,000 epochs
    under a StepLR of a quarter of them (x 0.3), whose optimiser, momentum included, lives through the decays."""
    q, dsa = get_protocol("qin2024"), get_protocol("dc-dsa")
    assert (q.optimizer, q.lr, q.momentum, q.weight_decay, q.batch_size, q.epochs, q.arch, q.models) == \
        ("sgd", 0.01, 0.9, 5e-4, 256, 3000, "convnet3", 5)
    assert q.augmentation == dsa.augmentation and q.zca_eps == dsa.zca_eps and q.label_loss == dsa.label_loss
    assert not q.is_paper and not q.search_steps
    recipe = q.recipe(3, lr=1e-3)
    assert recipe.lr_decay_epochs == (750, 1500, 2250) and not recipe.reset_momentum_at_decay
    for e in range(3000):
        assert recipe.lr_at(e) == pytest.approx(0.01 * 0.3 ** (e // 750), rel=1e-12)


def test_step_decays_keeping_momentum_through_engine_equal_torch_steplr():
    """The qin2024 kind of schedule, float64: several decays by 0.3 with one optimiser (momentum kept) through the
    engine == torch.optim.SGD under torch.optim.lr_scheduler.StepLR on the plain module, the same shuffles."""
    g = torch.Generator().manual_seed(2)
    n, batch, epochs, every = 12, 5, 8, 2
    x = torch.randn(n, 1, 8, 8, dtype=torch.float64, generator=g)
    y = torch.softmax(2 * torch.randn(n, 3, dtype=torch.float64, generator=g), -1)
    recipe = TrainRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=epochs,
                         lr_decay_epochs=(2, 4, 6), lr_decay_factor=0.3, reset_momentum_at_decay=False)
    learner = Learner(_small64)
    seed = 5
    state = train_models(learner, x, y, 1, [seed], batch_size=batch, recipe=recipe)

    net = learner.fresh_module(seed)
    gen = batch_generator(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=every, gamma=0.3)
    for _ in range(epochs):
        _reference_epoch(net, opt, x, y, batch, gen)
        sched.step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(state.params[name][0], p.detach(), rtol=0, atol=1e-10, msg=name)
    # ... and resetting the momentum at the decays, as dc / dc-dsa do, gives other weights.
    reset = train_models(learner, x, y, 1, [seed], batch_size=batch,
                         recipe=TrainRecipe(**{**recipe.__dict__, "reset_momentum_at_decay": True}))
    assert any((reset.params[k][0] - state.params[k][0]).abs().max() > 1e-6 for k in state.params)


def _check_protocol(epochs: int, every: int | None):
    import dataclasses

    return dataclasses.replace(get_protocol("dc-dsa"), name="checks", epochs=epochs, lr_decay_at=(), batch_size=8,
                               zca_eps=None, test_check_every=every)


def test_test_checks_are_the_models_after_those_epochs_and_change_nothing(tmp_path):
    """qin2024's test checks (every N epochs and the end, each model's best reported apart): a check after e epochs is
    the model trained for e epochs (no decay here, so the same shuffles and DSA draws as a protocol of e epochs), the
    final accuracies are those of training without checks, and a ledger gives the same checks back."""
    from labeldistill.protocols.evaluate import evaluate_protocol

    g = torch.Generator().manual_seed(4)
    x = torch.randn(16, 1, 8, 8, generator=g)
    y = torch.softmax(3 * torch.randn(16, 3, generator=g), -1)
    tx, ty = torch.randn(60, 1, 8, 8, generator=g), torch.randint(0, 3, (60,), generator=g)
    learner = Learner(lambda: build_model("convnet3", 1, 8, 3))
    run = lambda p, **kw: evaluate_protocol(p, learner, x, y, tx, ty, steps=None, seed=0, models=2, **kw)
    ev = run(_check_protocol(6, 2))
    checks = ev.extra["test_checks"]
    assert checks["epochs"] == [3, 5, 6] and [len(c) for c in checks["accuracies"]] == [3, 3]
    assert ev.accuracies == run(_check_protocol(6, None)).accuracies  # testing on the way moved nothing
    assert "test_checks" not in run(_check_protocol(6, None)).extra
    for i, e in enumerate((3, 5)):
        assert [c[i] for c in checks["accuracies"]] == run(_check_protocol(e, None)).accuracies
    assert [c[-1] for c in checks["accuracies"]] == ev.accuracies
    best = ev.extra["best_check"]
    assert best["accuracies"] == [max(c) for c in checks["accuracies"]] and best["accuracy_mean"] >= ev.accuracy_mean
    first = run(_check_protocol(6, 2), ledger=tmp_path)
    again = run(_check_protocol(6, 2), ledger=tmp_path)
    assert again.extra["models_from_ledger"] == 2 and again.extra["test_checks"] == first.extra["test_checks"] == checks


def test_recipe_k_at_once_equals_each_alone_with_augmentation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 1, 8, 8, dtype=torch.float64, generator=g)
    y = torch.softmax(torch.randn(12, 3, dtype=torch.float64, generator=g), -1)
    recipe = TrainRecipe(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=5e-4, epochs=3, augmentation=DSAParams().without("flip"))
    learner = Learner(_small64)
    both = train_models(learner, x, y, 1, [3, 4], batch_size=5, recipe=recipe, mode="loop")
    for i, s in enumerate((3, 4)):
        alone = train_models(learner, x, y, 1, [s], batch_size=5, recipe=recipe)
        for name in both.params:
            torch.testing.assert_close(both.params[name][i], alone.params[name][0], rtol=0, atol=1e-12)


def test_view_labels_without_augmentation_equal_the_labels_they_compute():
    # A labeller of each minibatch's images, where the views are the images themselves, trains the same models as
    # the labels it gives the images (the rows it is asked for, in the minibatch's order).
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 1, 8, 8, dtype=torch.float64, generator=g)

    def labeller(v: torch.Tensor) -> torch.Tensor:  # row by row, elementwise: the same bits for a row in any batch
        return torch.softmax(2 * v.flatten(-3)[..., :3], -1)

    recipe = TrainRecipe(optimizer="sgd", lr=0.02, momentum=0.9, epochs=3)
    learner = Learner(_small64)
    fixed = train_models(learner, x, labeller(x), 1, [3, 4], batch_size=5, recipe=recipe, mode="loop")
    viewed = train_models(learner, x, torch.zeros(12, 3, dtype=torch.float64), 1, [3, 4], batch_size=5, recipe=recipe,
                          mode="loop", view_labels=labeller)
    for name in fixed.params:
        torch.testing.assert_close(viewed.params[name], fixed.params[name], rtol=0, atol=0)


def test_view_labels_see_the_augmented_views():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 1, 8, 8, dtype=torch.float64, generator=g)
    seen: list[torch.Tensor] = []

    def labeller(v: torch.Tensor) -> torch.Tensor:
        seen.append(v.clone())
        return torch.full((*v.shape[:2], 3), 1 / 3, dtype=v.dtype)

    recipe = TrainRecipe(optimizer="sgd", lr=0.02, epochs=2, augmentation=DSAParams().without("flip"))
    train_models(Learner(_small64), x, torch.zeros(12, 3, dtype=torch.float64), 1, [3, 4], batch_size=6, recipe=recipe,
                 mode="loop", view_labels=labeller)
    assert len(seen) == 4 and all(v.shape == (2, 6, 1, 8, 8) for v in seen)  # 2 epochs x 2 minibatches, K = 2 models
    # the labeller is given the augmented views (DSA leaves the odd view unchanged), not the clean images
    views = torch.cat([v.flatten(2).flatten(0, 1) for v in seen])
    clean = torch.cdist(views, x.flatten(1)).min(dim=1).values < 1e-9
    assert clean.double().mean() < 0.5


def test_view_labels_need_a_recipe_and_no_ledger(tmp_path):
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    y = torch.full((6, 3), 1 / 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="recipe"):
        train_models(Learner(_small64), x, y, 2, [0], batch_size=3, view_labels=lambda v: y[:3])
    from labeldistill.protocols import evaluate_protocol

    with pytest.raises(ValueError, match="ledger"):
        evaluate_protocol("dc", Learner(_small64), x, y, x, torch.zeros(6, dtype=torch.long), steps=1, seed=0, models=1,
                          ledger=tmp_path / "ledger", view_labels=lambda v: y[:3])


# ---- DSA augmentation -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar_images(shared_data):
    d = np.load(shared_data / "cifar10_test.npz")
    x = torch.from_numpy(d["x"][:16]).permute(0, 3, 1, 2).double() / 255
    return (x - 0.5) / 0.25


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_is_per_sample(cifar_images, name):
    one = cifar_images[:1].expand(16, -1, -1, -1).contiguous()
    aug = DSAugmenter(DSAParams(strategy=(name,)), seeds=[5])
    out = aug(one[None])[0]
    assert out.shape == one.shape and out.dtype == one.dtype
    distinct = {tuple(out[i].flatten()[:: 37].tolist()) for i in range(16)}
    assert len(distinct) > 1, f"{name}: every image got the same draw"


def test_augmentation_seeded_reproducible_and_differs_across_models(cifar_images):
    xb = cifar_images[None].expand(3, -1, -1, -1, -1)  # the same minibatch for three models
    a, b = DSAugmenter(DSAParams(), [1, 2, 3]), DSAugmenter(DSAParams(), [1, 2, 3])
    for _ in range(4):  # several steps: the same streams give the same draws
        oa, ob = a(xb), b(xb)
        assert torch.equal(oa, ob)
        assert not torch.equal(oa[0], oa[1]) and not torch.equal(oa[1], oa[2])
    # Model k's draws depend only on its seed: model "2" alone == model "2" among others.
    alone, among = DSAugmenter(DSAParams(), [2]), DSAugmenter(DSAParams(), [9, 2])
    for _ in range(4):
        torch.testing.assert_close(alone(cifar_images[None])[0], among(xb[:2])[1], rtol=0, atol=0)


def test_transforms_closed_forms(cifar_images):
    x = cifar_images[:4]
    # shift: a zero-filled translation
    dy, dx = torch.tensor([0, 2, -3, 4]), torch.tensor([1, -2, 0, 4])
    out = shift(x, dy, dx)
    for i in range(4):
        pad = F.pad(x[i], (8, 8, 8, 8))
        ref = pad[:, 8 + dy[i] : 8 + dy[i] + 32, 8 + dx[i] : 8 + dx[i] + 32]
        assert torch.equal(out[i], ref)
    p = DSAParams()
    g = torch.Generator().manual_seed(0)
    # crop shifts by at most int(32 * 0.125 + 0.5) = 4 pixels: some shift of the image, zeros around.
    out = crop(x, p, g)
    for i in range(4):
        assert any(torch.equal(out[i], shift(x[i : i + 1], torch.tensor([a]), torch.tensor([b]))[0])
                   for a in range(-4, 5) for b in range(-4, 5))
    # cutout zeroes one axis-aligned rectangle (a 16 x 16 square clipped at the borders), nothing else.
    out = cutout(x + 10, p, g)  # + 10: no pixel is 0 before
    for i in range(4):
        hole = out[i, 0] == 0
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert hole.sum() == len(rows) * len(cols) and 8 <= len(rows) <= 16 and 8 <= len(cols) <= 16
        assert torch.equal(out[i][:, ~hole], (x[i] + 10)[:, ~hole])
    # flip: each image is itself or its mirror image
    out = flip(x, p, g)
    assert all(torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1)) for i in range(4))
    # color on a constant grey image: saturation and contrast leave a constant image constant,
    # brightness moves it by at most 0.5
    grey = torch.full((4, 3, 8, 8), 0.3, dtype=torch.float64)
    out = color(grey, p, g)
    assert torch.allclose(out, out[:, :1, :1, :1].expand_as(out)) and ((out - 0.3).abs() <= 0.5 + 1e-12).all()


def test_missing_kornia_is_a_one_line_error(monkeypatch):
    import sys

    from labeldistill.protocols import require_kornia

    monkeypatch.setitem(sys.modules, "kornia", None)  # "import kornia" now raises ImportError
    with pytest.raises(UserError) as e:
        require_kornia("--protocol dc-dsa")
    assert "\n" not in str(e.value) and "labeldistill[dsa]" in str(e.value)
    with pytest.raises(UserError, match=r"labeldistill\[dsa\]"):
        DistillConfig(target="cifar10", test_protocol="dc-dsa").resolve("cifar10", 3)
    DistillConfig(target="mnist", test_protocol="dc-dsa").resolve("mnist", 1)  # digits: no ZCA, no kornia needed


def test_progress_bar_counts_every_model_step(monkeypatch):
    # Models trained together tick once per step for each of them: the bar ends at its total (models x steps).
    import labeldistill.protocols.evaluate as ev

    bars: list = []

    class Bar:
        def __init__(self, total: int, **_kw) -> None:
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, n: int = 1) -> None:
            self.n += n

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(ev, "tqdm", Bar)
    x = torch.randn(6, 1, 8, 8)
    y = torch.full((6, 3), 1 / 3)
    ev.evaluate_protocol("dc", Learner(lambda: build_model("convnet3", 1, 8, 3)), x, y, x, torch.zeros(6, dtype=torch.long),
                         steps=1, seed=0, models=2, progress=True)
    assert len(bars) == 1 and bars[0].total == 2 * 300 and bars[0].n == bars[0].total
