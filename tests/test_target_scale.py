"""The ridge target loss at its fitted logit scale (``--target-scale fitted``, distill/strategies/ridge.py): the scale
against an independent 1-D minimiser, the label gradient against finite differences of min_c CE, the shared default
unchanged, a run end to end and its resume, errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from labeldistill.distill import DistillConfig, Distiller
from labeldistill.distill.strategies import STRATEGIES
from labeldistill.distill.strategies.ridge import SCALE_RANGE, fitted_scale
from labeldistill.errors import UserError

from test_distill_loop import TinyNet, _config, blob_problem, straight_and_resumed
from test_strategies import TinyMLP, _central_differences, _ridge_setup, _ridge_target_loss_by_hand


def _golden_min_scale(out: torch.Tensor, y: torch.Tensor, lo: float = SCALE_RANGE[0], hi: float = SCALE_RANGE[1]) -> float:
    """argmin over c of CE(c out, y) by golden-section search on log c (no derivatives: another method than Newton's)."""
    f = lambda u: F.cross_entropy(math.exp(u) * out, y).item()  # noqa: E731
    a, b = math.log(lo), math.log(hi)
    r = (math.sqrt(5) - 1) / 2
    c, d = b - r * (b - a), a + r * (b - a)
    for _ in range(200):
        if f(c) < f(d):
            b, d = d, c
            c = b - r * (b - a)
        else:
            a, c = c, d
            d = a + r * (b - a)
    return math.exp((a + b) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitted_scale_is_the_cross_entropys_minimiser(seed):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(64, 5, dtype=torch.float64, generator=g) * (0.05 + seed)  # small to large logits
    y = torch.randint(0, 5, (64,), generator=g)
    out[:40] += 0.5 * F.one_hot(y[:40], 5)  # mostly right, some wrong: a finite minimiser
    c = fitted_scale(out, y)
    assert c.dtype == torch.float64 and c.dim() == 0 and not c.requires_grad
    assert c.item() == pytest.approx(_golden_min_scale(out, y), rel=1e-6)
    cc = c.clone().requires_grad_()
    (grad,) = torch.autograd.grad(F.cross_entropy(cc * out, y), cc)
    assert abs(grad.item()) < 1e-10  # a stationary point of a convex function: the minimum
    # Scale-free: the fitted scale of k * out is c / k, so the fitted loss is the same.
    torch.testing.assert_close(fitted_scale(3.0 * out, y), c / 3.0, rtol=1e-9, atol=0)


def test_fitted_scale_stays_in_its_range_when_the_minimiser_is_outside():
    y = torch.tensor([0, 1, 2, 0])
    right = 2.0 * F.one_hot(y, 3).double()  # every row right: the loss falls as c grows, the range's top
    assert fitted_scale(right, y).item() == pytest.approx(SCALE_RANGE[1], rel=1e-4)
    assert fitted_scale(-right, y).item() == pytest.approx(SCALE_RANGE[0], rel=1e-4)  # every row wrong: the bottom
    out32 = torch.randn(8, 3)
    assert fitted_scale(out32, torch.zeros(8, dtype=torch.long)).dtype == torch.float32  # the logits' dtype


def test_fitted_ridge_label_gradient_is_the_gradient_of_the_minimised_loss():
    learner, state, xb, yb, xt, yt = _ridge_setup(seed=4)
    w_old = state.head["w"][0].detach().clone()
    params0 = {n: p[0].detach().clone() for n, p in state.params.items()}
    feats_mod = TinyMLP(12, 5, 3).double().features
    feats = lambda x: functional_call(feats_mod, params0, (x,))  # noqa: E731

    def min_loss(y: torch.Tensor) -> float:
        """min over c of the target cross-entropy at labels y, recomputed by hand."""
        _, w, _ = _ridge_target_loss_by_hand(feats, w_old, 1.3, xb, y, xt, yt)
        zt = torch.cat([feats(xt), torch.ones(xt.shape[0], 1, dtype=torch.float64)], 1)
        out = zt @ (1.3 * w)
        return F.cross_entropy(_golden_min_scale(out, yt) * out, yt).item()

    fitted = STRATEGIES.get("ridge")(target_scale="fitted").step(learner, state, xb, yb, xt, yt)
    with torch.no_grad():
        fd = _central_differences(min_loss, yb, eps=1e-5)
        assert fitted.loss.item() == pytest.approx(min_loss(yb), rel=1e-8)
    assert fd.abs().max() > 1e-6
    torch.testing.assert_close(fitted.label_grad, fd, rtol=1e-4, atol=1e-8)
    # Another gradient than the paper's shared scale, on the same state.
    learner2, state2, *_ = _ridge_setup(seed=4)
    shared = STRATEGIES.get("ridge")().step(learner2, state2, xb, yb, xt, yt)
    assert not torch.allclose(shared.label_grad, fitted.label_grad, atol=1e-6)
    assert fitted.loss <= shared.loss
    torch.testing.assert_close(state.head["w"], state2.head["w"], rtol=0, atol=0)  # the model's own steps are the paper's


def test_a_fitted_scale_run_differs_and_resumes_bit_for_bit(tmp_path):
    plain = Distiller(_config("ridge", epochs=4), blob_problem(), model_factory=TinyNet, progress=False)
    plain.run()
    (straight, res_a), (_, res_b) = straight_and_resumed(tmp_path, "ridge", target_scale="fitted")
    assert not torch.allclose(straight.labels.seen(), plain.labels.seen(), atol=1e-4)
    assert torch.equal(res_a.labels, res_b.labels)


def test_names_and_errors(tmp_path):
    assert DistillConfig().resolve("mnist", 1).target_scale == "shared"
    assert DistillConfig(method="implicit", test_protocol="dc", select_protocol="dc").resolve("mnist", 1).target_scale == "fitted"
    old = {k: v for k, v in DistillConfig(method="ridge").resolve("mnist", 1).to_dict().items() if k != "target_scale"}
    assert DistillConfig.from_dict(old).with_method_defaults().target_scale == "shared"  # records from before: the paper's
    with pytest.raises(UserError, match="--target-scale fitted is not available with --method second-order"):
        DistillConfig(method="second-order", target_scale="fitted").validate()
    with pytest.raises(UserError, match="--target-scale exact is not available with --method ridge"):
        DistillConfig(method="ridge", target_scale="exact").validate()
    from test_cli import assert_clean_error, run_cli

    assert_clean_error(run_cli("distill", "--method", "dd", "--target-scale", "fitted", "--out", str(tmp_path / "b")),
                       "--target-scale does not apply to --method dd")
