"""Augmentation inside the loop (``--augment``, distill/augment.py): which views each step sees, resume, errors."""
from __future__ import annotations

import pytest
import torch

from labeldistill.distill import DistillConfig, Distiller
from labeldistill.distill.augment import canonical_augment, loop_augmenter
from labeldistill.engine.augment import DSAParams, DSAugmenter
from labeldistill.errors import UserError
from labeldistill.runs import read_metrics
from labeldistill.seeding import derive_seed

from test_distill_loop import TinyNet, _config, blob_problem


def _record_steps(d: Distiller) -> dict[str, list[torch.Tensor]]:
    """The clean inner minibatch, the inner minibatch the strategy is handed, and the target minibatch, per step."""
    seen: dict[str, list[torch.Tensor]] = {"clean": [], "inner": [], "target": []}
    batch, step = d.synthetic.batch, d.strategy.step

    def recording_batch(inner):
        xb, yb = batch(inner)
        seen["clean"].append(xb.detach().clone())
        return xb, yb

    def recording_step(learner, model, xb, yb, xt, yt, wrt):
        seen["inner"].append(xb.detach().clone())
        seen["target"].append(xt.detach().clone())
        return step(learner, model, xb, yb, xt, yt, wrt)

    d.synthetic.batch, d.strategy.step = recording_batch, recording_step  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_each_step_trains_on_its_own_dsa_view_and_the_target_stays_clean(method):
    problem = blob_problem()
    plain = Distiller(_config(method, epochs=2), problem, model_factory=TinyNet, progress=False)
    aug = Distiller(_config(method, epochs=2, augment="dsa"), problem, model_factory=TinyNet, progress=False)
    seen_plain, seen_aug = _record_steps(plain), _record_steps(aug)
    plain.run()
    aug.run()
    assert len(seen_aug["inner"]) == aug.step == 8
    # Without --augment the strategy gets the minibatch as it is.
    assert all(torch.equal(a, b) for a, b in zip(seen_plain["clean"], seen_plain["inner"]))
    # With it: dc-dsa's transforms for one-channel images (no flip), one stream seeded from (seed, "loop-augmentation"),
    # one draw per step in step order.
    ref = DSAugmenter(DSAParams().without("flip"), seeds=[derive_seed(3, "loop-augmentation")])
    for clean, inner in zip(seen_aug["clean"], seen_aug["inner"]):
        assert torch.equal(inner, ref.augment_one(0, clean))
    assert sum(not torch.equal(c, i) for c, i in zip(seen_aug["clean"], seen_aug["inner"])) >= 6
    # The same inner rows and target minibatches as the plain run (other streams): only the views differ.
    assert all(torch.equal(a, b) for a, b in zip(seen_plain["clean"], seen_aug["clean"]))
    assert all(torch.equal(a, b) for a, b in zip(seen_plain["target"], seen_aug["target"]))
    assert not torch.equal(plain.labels.value, aug.labels.value)


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_an_augmented_run_resumes_bit_for_bit(tmp_path, method):
    """Stopped after 2 epochs and resumed to 4, an augmented run equals a straight one (the augmenter's streams are
    in the checkpoint; without them the resumed run would draw the first epochs' views again)."""
    problem = blob_problem()
    straight = Distiller(_config(method, epochs=4, augment="dsa"), problem, model_factory=TinyNet, run_dir=tmp_path / "a", progress=False)
    straight.open_log(resume=False)
    res_a = straight.run()
    straight.close()
    first = Distiller(_config(method, epochs=2, augment="dsa"), problem, model_factory=TinyNet, run_dir=tmp_path / "b", progress=False)
    first.open_log(resume=False)
    first.run()
    first.close()
    second = Distiller(_config(method, epochs=4, augment="dsa"), problem, model_factory=TinyNet, run_dir=tmp_path / "b", progress=False)
    second.open_log(resume=True)
    res_b = second.run()
    second.close()
    steps = lambda d: [r for r in read_metrics(d / "metrics.jsonl") if r["kind"] == "step"]  # noqa: E731
    assert steps(tmp_path / "a") == steps(tmp_path / "b")
    assert torch.equal(straight.labels.value, second.labels.value) and torch.equal(res_a.labels, res_b.labels)
    for n, p in straight.model.params.items():
        assert torch.equal(p, second.model.params[n]), n


def test_names_and_errors():
    assert canonical_augment(None) == canonical_augment("none") == "none"
    assert canonical_augment("dsa") == canonical_augment("dc-dsa") == "dc-dsa"
    assert loop_augmenter("none", 0, 1, "cpu") is None
    assert loop_augmenter("dsa", 0, 3, "cpu").params == DSAParams()  # colour images keep the flip
    with pytest.raises(UserError, match="no augmentation; use none or one of dc-dsa"):
        canonical_augment("dc")
    with pytest.raises(UserError, match="Unknown"):
        canonical_augment("jitter")
    cfg = DistillConfig(augment="dsa")
    cfg.validate()
    assert cfg.augment == "dc-dsa"
    assert DistillConfig.from_dict({k: v for k, v in DistillConfig().to_dict().items() if k != "augment"}).augment == "none"


def test_cli_rejects_a_protocol_without_augmentation_and_dd(tmp_path):
    from test_cli import assert_clean_error, run_cli

    assert_clean_error(run_cli("distill", "--augment", "dc", "--out", str(tmp_path / "a")), "--augment dc", "no augmentation")
    assert_clean_error(run_cli("distill", "--method", "dd", "--augment", "dsa", "--out", str(tmp_path / "b")),
                       "--augment does not apply to --method dd")
