"""A stack's steps as one batched step (distill/batched.py): the same runs as in lockstep up to float rounding, each
run's checkpoint state in the single-run format (views into the stack), and a run handed back as a plain run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from labeldistill.distill import DistillConfig, distill_many
from labeldistill.distill.batched import BatchedStep, batchable
from labeldistill.distill.run import RunSession
from labeldistill.distill.stack import _batched_round


def _cfg(mnist_small: Path, **kw) -> DistillConfig:
    base = dict(target=f"npz:{mnist_small}", base=20, method="ridge", meta_gradient="jvp", epochs=4, val_every=2, val_group=2,
                test_models=2, reset_window=3, target_batch=256, device="cpu", seed=3)
    return DistillConfig(**{**base, **kw})


@pytest.mark.parametrize("method", ["ridge", "second-order"])
def test_a_batched_stack_equals_the_stack_in_lockstep(mnist_small, method):
    """Three seeds, 4 epochs with resets: labels within float rounding of the lockstep stack (itself bit for bit the runs
    alone), the same T, resets and selected epochs. LD's first label gradients are tiny (about 1e-6 at uniform
    labels), and Adam steps by their sign: where rounding flips one, that entry moves by the lr (1e-3) the other way,
    so LD's labels agree to a few 1e-4 (its step losses to 1e-6; measured), LD RR's to 1e-6."""
    cfgs = [_cfg(mnist_small, method=method, seed=s) for s in (3, 4, 5)]
    lock = distill_many(cfgs, progress=False)
    batched = distill_many(cfgs, progress=False, batched=True)
    for a, b in zip(lock, batched):
        torch.testing.assert_close(b.labels, a.labels, rtol=0, atol=1e-5 if method == "ridge" else 2e-3)
        assert b.evaluation["batched_stack"] == 3 and "batched_stack" not in a.evaluation  # recorded with the run
        assert (b.steps, b.evaluation["resets"], b.evaluation["selected_epoch"]) == (a.steps, a.evaluation["resets"], a.evaluation["selected_epoch"])
    assert sum(a.evaluation["resets"] for a in lock) > 0  # the resets (per-run masks, Adam restarts) were exercised


def _sessions(cfgs):
    return [RunSession(c, out=None, resume=False, progress=False) for c in cfgs]


def test_runs_of_a_batched_stack_keep_their_own_state_and_go_on_alone(mnist_small):
    """After batched rounds each run's checkpoint state (labels, model, both Adams) is its own, in the single-run format,
    close to the same run stepped alone; released, each run goes on as a plain run."""
    cfgs = [_cfg(mnist_small, seed=s, epochs=3) for s in (3, 4)]
    alone = [s.distiller for s in _sessions(cfgs)]
    stacked = [s.distiller for s in _sessions(cfgs)]
    for d in alone + stacked:
        d.start(bar=False)
    assert batchable(stacked) is None
    batch = BatchedStep(stacked)
    rounds = stacked[0].steps_per_epoch + 3  # past an epoch's end (its snapshot reads the labels through the views)
    for _ in range(rounds):
        for d in alone:
            d.advance()
        results, finishing = [None, None], []
        assert _batched_round(batch, stacked, [0, 1], results, finishing) == [] and not finishing
    for a, b in zip(alone, stacked):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and sb["step"] == sa["step"] == rounds
        torch.testing.assert_close(sb["labels"], sa["labels"], rtol=0, atol=1e-5)
        for part in ("params", "head"):
            for n in sa["model"][part]:
                torch.testing.assert_close(sb["model"][part][n], sa["model"][part][n], rtol=1e-4, atol=1e-5)
        oa, ob = sa["model_opt"]["state"], sb["model_opt"]["state"]
        assert oa.keys() == ob.keys()
        for i in oa:
            assert float(ob[i]["step"]) == float(oa[i]["step"])
            torch.testing.assert_close(ob[i]["exp_avg"], oa[i]["exp_avg"], rtol=1e-3, atol=1e-6)
        assert float(sb["labels_opt"]["state"][0]["step"]) == float(sa["labels_opt"]["state"][0]["step"]) == rounds
    batch.release()
    for a, b in zip(alone, stacked):
        while a.advance():
            pass
        while b.advance():
            pass
        torch.testing.assert_close(b.labels.value, a.labels.value, rtol=0, atol=1e-4)
        assert b.monitor.t_list == a.monitor.t_list


def test_a_stack_that_cannot_be_batched_steps_in_lockstep_and_says_why(mnist_small):
    cfgs = [_cfg(mnist_small, seed=s, epochs=1, method="second-order", meta_gradient="double-backward") for s in (3, 4)]
    with pytest.warns(UserWarning, match="JVP"):
        got = distill_many(cfgs, progress=False, batched=True)
    lock = distill_many(cfgs, progress=False)
    assert all(torch.equal(a.labels, b.labels) and "batched_stack" not in b.evaluation for a, b in zip(lock, got))


def test_what_cannot_be_batched_says_why(mnist_small):
    sessions = _sessions([_cfg(mnist_small, seed=3), _cfg(mnist_small, seed=4, label_lr=3e-3)])
    assert "label_lr" in batchable([s.distiller for s in sessions])
    sessions = _sessions([_cfg(mnist_small, seed=3, method="second-order", meta_gradient="double-backward")] * 2)
    assert "JVP" in batchable([s.distiller for s in sessions])


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["ridge", "second-order"])
def test_a_batched_stack_on_a_gpu_equals_the_stack_in_lockstep(mnist_small, method):
    """On a GPU the batched step is replayed as one CUDA graph; its runs stay within rounding of the lockstep stack."""
    cfgs = [_cfg(mnist_small, method=method, seed=s, device="cuda", epochs=2) for s in (3, 4, 5)]
    lock = distill_many(cfgs, progress=False)
    batched = distill_many(cfgs, progress=False, batched=True)
    diffs = [float((a.labels - b.labels).abs().max()) for a, b in zip(lock, batched)]
    print("max label difference, batched vs lockstep on", torch.cuda.get_device_name(), method, diffs)
    assert max(diffs) <= 1e-4
    assert [a.steps for a in lock] == [b.steps for b in batched]
