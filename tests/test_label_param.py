"""Labels learned as logits (``--label-param logits``, distill/labels.py): the chain rule through the softmax, the start,
checkpoints, a run end to end and its resume, errors."""
from __future__ import annotations

import pytest
import torch

from labeldistill.distill import DistillConfig, Distiller
from labeldistill.distill.labels import Labels, LogitLabels
from labeldistill.errors import UserError
from labeldistill.runs import load_state, save_state

from test_distill_loop import TinyNet, _config, blob_problem, straight_and_resumed


def _teacher_like(n: int = 5, c: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64) / 2, dim=-1)


def test_a_start_distribution_is_what_models_see():
    torch.set_default_dtype(torch.float64)
    try:
        init = _teacher_like()
        lab = LogitLabels(5, 4, init=init)
        assert torch.allclose(lab.seen(), init, atol=1e-15) and torch.allclose(lab.batch(torch.tensor([3, 1])), init[[3, 1]], atol=1e-15)
        assert torch.equal(LogitLabels(5, 4).value, torch.zeros(5, 4))  # uniform start: zero logits
        assert torch.allclose(LogitLabels(5, 4).seen(), torch.full((5, 4), 0.25), atol=0)
        onehot = torch.eye(4)[[0, 1, 2, 3, 0]]
        seen = LogitLabels(5, 4, init=onehot).seen()  # zeros start at the floor, not at -inf
        assert torch.allclose(seen[onehot == 0], torch.full((15,), LogitLabels.FLOOR), rtol=1e-5)
        assert torch.all(seen[onehot == 1] > 0.99999)
    finally:
        torch.set_default_dtype(torch.float32)


def test_step_applies_the_chain_rule_through_the_softmax_float64():
    """The logits' gradient equals autograd's and central finite differences of <g, softmax(z)[rows]> (float64),
    repeated rows accumulating as the probabilities' own step does."""
    torch.set_default_dtype(torch.float64)
    try:
        lab = LogitLabels(5, 4, lr=1e-2, init=_teacher_like())
        z0 = lab.value.detach().clone()
        rows = torch.tensor([4, 0, 4, 2])
        g = torch.randn(4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        lab.step(rows, g)
        f = lambda z: (g * torch.softmax(z[rows], dim=-1)).sum()  # noqa: E731
        z = z0.clone().requires_grad_()
        (auto,) = torch.autograd.grad(f(z), z)
        assert torch.allclose(lab.value.grad, auto, atol=1e-14)
        fd = torch.zeros_like(z0)
        for i in range(5):
            for k in range(4):
                e = torch.zeros_like(z0)
                e[i, k] = 1e-6
                fd[i, k] = (f(z0 + e) - f(z0 - e)) / 2e-6
        assert torch.allclose(lab.value.grad, fd, atol=1e-9)
        assert torch.all(lab.value.grad[[1, 3]] == 0)  # rows not in the minibatch
        assert not torch.equal(lab.value.detach(), z0)  # Adam stepped the logits
        assert torch.allclose(lab.seen().sum(-1), torch.ones(5), atol=1e-15)  # still distributions, no renormalising needed
    finally:
        torch.set_default_dtype(torch.float32)


def test_logit_steps_keep_a_starts_small_entries_where_probability_steps_flatten_them():
    """The reason for the option: the same gradient, same Adam lr, 50 steps. A teacher-like row's two small entries
    (0.02 and 0.005, ratio 4) keep their ratio within a few percent when logits are stepped (a gradient that does not
    single them out moves them by the same factor); stepped as probabilities, each moves by about lr per step and the
    ratio collapses toward 1."""
    start = torch.tensor([[0.9, 0.075, 0.02, 0.005]])
    g = torch.tensor([[-1.0, 1.0, 1.0, 1.0]])  # push the top class up, the others down alike
    by_logits, by_probs = LogitLabels(1, 4, lr=1e-3, init=start), Labels(1, 4, lr=1e-3, init=start)
    for _ in range(50):
        by_logits.step(torch.tensor([0]), g)
        by_probs.step(torch.tensor([0]), g)
    ratio = lambda y: float(y[0, 2] / y[0, 3])  # noqa: E731
    assert ratio(by_logits.seen()) == pytest.approx(4.0, rel=0.05)
    assert ratio(by_probs.seen()) < 2.0 or by_probs.seen()[0, 3] == 0


def test_checkpoint_round_trip_continues_identically(tmp_path):
    init = _teacher_like().float()
    a, b = LogitLabels(5, 4, lr=1e-2, init=init), LogitLabels(5, 4, lr=1e-2, init=init)
    g = torch.Generator().manual_seed(2)
    grads = [torch.randn(3, 4, generator=g) for _ in range(4)]
    rows = torch.tensor([0, 2, 4])
    for gr in grads[:2]:
        a.step(rows, gr)
    state = a.state_dict()
    assert set(state) == {"label_logits", "labels_opt"}  # not "labels": a probabilities checkpoint cannot be read as logits
    save_state(tmp_path / "ckpt.safetensors", state)  # through the file, as a checkpoint goes
    b.load_state_dict(load_state(tmp_path / "ckpt.safetensors"))
    for gr in grads[2:]:
        a.step(rows, gr)
        b.step(rows, gr)
    assert torch.equal(a.value, b.value) and torch.equal(a.seen(), b.seen())


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_a_run_learns_logits_and_resumes_bit_for_bit(tmp_path, method):
    plain = Distiller(_config(method, epochs=4), blob_problem(), model_factory=TinyNet, progress=False)
    plain.run()
    (straight, res_a), (second, res_b) = straight_and_resumed(tmp_path, method, label_param="logits")
    assert isinstance(straight.labels, LogitLabels)
    assert torch.allclose(res_a.labels.sum(-1), torch.ones(6), atol=1e-6) and torch.all(res_a.labels > 0)
    assert not torch.allclose(straight.labels.seen(), plain.labels.seen(), atol=1e-3)  # another parametrisation, another path
    assert torch.equal(straight.labels.value, second.labels.value) and torch.equal(res_a.labels, res_b.labels)


def test_names_and_errors(tmp_path):
    assert DistillConfig().resolve("mnist", 1).label_param == "probabilities"  # the paper's methods' default
    assert DistillConfig(method="implicit", test_protocol="dc", select_protocol="dc").resolve("mnist", 1).label_param == "logits"
    old = {k: v for k, v in DistillConfig().resolve("mnist", 1).to_dict().items() if k != "label_param"}  # a record from before
    assert DistillConfig.from_dict(old).with_method_defaults().label_param == "probabilities"
    with pytest.raises(UserError, match="--label-param must be one of probabilities, logits"):
        DistillConfig(label_param="logit").validate()
    from test_cli import assert_clean_error, run_cli

    assert_clean_error(run_cli("distill", "--method", "dd", "--label-param", "logits", "--out", str(tmp_path / "b")),
                       "--label-param does not apply to --method dd")
