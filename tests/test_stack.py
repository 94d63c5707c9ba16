"""Stacked runs (``distill_many``): the runs of a stack stepped together equal the same runs alone,
bit for bit on the CPU, on real MNIST images; grouping into stacks; one failed run stops alone."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import labeldistill
from labeldistill.distill import DistillConfig, distill_many, stack_groups, stack_key
from labeldistill.errors import UserError


def _cfg(mnist_small: Path, **kw) -> DistillConfig:
    base = dict(target=f"npz:{mnist_small}", base=20, method="ridge", epochs=6, val_every=2, val_group=2, test_models=2,
                reset_window=4, device="cpu", seed=3)
    return DistillConfig(**{**base, **kw})


def _steps(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] in ("step", "validation")]


def _same_run(a: Path, b: Path) -> None:
    sa, sb = labeldistill.load(a), labeldistill.load(b)
    assert torch.equal(sa.labels, sb.labels) and torch.equal(sa.images, sb.images) and sa.steps == sb.steps
    assert _steps(a) == _steps(b)
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a, b))
    assert ra["accuracies"] == rb["accuracies"] and ra["T_list"] == rb["T_list"] and ra["selected_epoch"] == rb["selected_epoch"]


@pytest.mark.parametrize("method", ["ridge", "second-order"])
def test_stacked_runs_equal_single_runs_bit_for_bit(mnist_small, tmp_path, method):
    # Different seeds, and a per-run setting that does not change shapes (the label lr).
    cfgs = [_cfg(mnist_small, method=method, seed=3), _cfg(mnist_small, method=method, seed=4, label_lr=3e-3)]
    alone = [tmp_path / f"alone{i}" for i in range(2)]
    for cfg, out in zip(cfgs, alone):
        labeldistill.distill(config=cfg, out=out, progress=False)
    stacked = [tmp_path / f"stacked{i}" for i in range(2)]
    sets = distill_many(cfgs, outs=stacked, progress=False)
    assert len(sets) == 2 and all(isinstance(s, labeldistill.DistilledSet) for s in sets)
    for a, b in zip(alone, stacked):
        _same_run(a, b)
    # The two runs of the stack really are different runs.
    assert not torch.equal(sets[0].labels, sets[1].labels)


def test_stack_resumes_runs_at_different_points(mnist_small, tmp_path):
    """One run of the stack starts from a checkpoint written mid-run, the other from scratch: both end as alone."""
    cfgs = [_cfg(mnist_small, seed=5, checkpoint_minutes=0.0), _cfg(mnist_small, seed=6)]
    alone = tmp_path / "alone"
    labeldistill.distill(config=cfgs[0], out=alone, progress=False)
    # A copy of run 0 stopped part-way: replay it with fewer epochs is not the same run, so stop it by a failing hook.
    part = tmp_path / "part"
    from labeldistill.distill.loop import Distiller

    calls = {"n": 0}
    orig = Distiller.advance

    def stop_after_some(self, on_epoch=None):
        calls["n"] += 1
        if calls["n"] == 8:
            self.save_now()
            raise KeyboardInterrupt
        return orig(self, on_epoch)

    Distiller.advance = stop_after_some
    try:
        with pytest.raises(KeyboardInterrupt):
            labeldistill.distill(config=cfgs[0], out=part, progress=False)
    finally:
        Distiller.advance = orig
    assert (part / "checkpoint.safetensors").exists() and not (part / "result.json").exists()
    fresh = tmp_path / "fresh"
    distill_many(cfgs, outs=[part, fresh], resume=[True, False], progress=False)
    _same_run(alone, part)
    alone1 = tmp_path / "alone1"
    labeldistill.distill(config=cfgs[1], out=alone1, progress=False)
    _same_run(alone1, fresh)


def test_a_failed_run_stops_alone(mnist_small, tmp_path):
    cfgs = [_cfg(mnist_small, seed=3), _cfg(mnist_small, seed=4)]
    taken = tmp_path / "taken"
    labeldistill.distill(config=cfgs[0], out=taken, progress=False)  # a finished run: starting it again is refused
    ok = tmp_path / "ok"
    got = distill_many(cfgs, outs=[taken, ok], errors="return", progress=False)
    assert isinstance(got[0], UserError) and "already holds a run" in str(got[0])
    assert isinstance(got[1], labeldistill.DistilledSet) and (ok / "result.json").exists()
    with pytest.raises(UserError, match="already holds a run"):
        distill_many(cfgs[:1], outs=[taken], progress=False)


def test_stack_groups_by_shape_and_schedule():
    a = DistillConfig(target="mnist", base=100, method="ridge", seed=0)
    cfgs = [a, dataclasses.replace(a, seed=1), dataclasses.replace(a, method="second-order"), dataclasses.replace(a, seed=2, label_lr=0.01),
            dataclasses.replace(a, base=10), dataclasses.replace(a, seed=3)]
    assert stack_key(cfgs[0]) == stack_key(cfgs[3]) != stack_key(cfgs[2])
    assert stack_groups(cfgs, 8) == [[0, 1, 3, 5], [2], [4]]
    assert stack_groups(cfgs, 2) == [[0, 1], [2], [3, 5], [4]]
    assert stack_groups(cfgs, 1) == [[i] for i in range(6)]
    with pytest.raises(ValueError):
        stack_groups(cfgs, 0)


def test_resume_with_another_config_is_refused(mnist_small, tmp_path):
    cfg = _cfg(mnist_small, seed=3, epochs=2)
    out = tmp_path / "run"
    labeldistill.distill(config=cfg, out=out, progress=False)
    (out / "result.json").unlink()
    with pytest.raises(UserError, match="another configuration .*label_lr"):
        distill_many([dataclasses.replace(cfg, label_lr=0.5)], outs=[out], resume=True, progress=False)
    # Where it runs and how often it checkpoints may change.
    distill_many([dataclasses.replace(cfg, checkpoint_minutes=1.0, val_group=1)], outs=[out], resume=True, progress=False)
    assert (out / "result.json").exists()


def test_bench_stack_runs_and_checks_equality(tmp_path):
    """benchmarks/bench_stack.py (built-in digits, tiny runs): stacked and one-by-one labels compared, JSON written."""
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_stack.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LABELDISTILL_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, str(script), "--target", "digits", "--base", "10", "--k", "1,3", "--epochs", "1",
                          "--test-models", "2", "--out", str(tmp_path / "b.json")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    obj = json.loads(out.stdout.strip().splitlines()[-1])
    assert obj == json.loads((tmp_path / "b.json").read_text())
    assert [(r["k"], r["alone_runs"], r["labels_equal"], r["max_label_diff"]) for r in obj["results"]] == [(1, 1, True, 0.0), (3, 3, True, 0.0)]
    assert obj["results"][1]["accuracy_alone"] == obj["results"][1]["accuracy_stacked"]
    for r in obj["results"]:  # where the time went, inside each measurement
        assert set(r["alone_phases"]) == set(r["stack_phases"]) == {"validation", "test"}
        assert 0 < r["stack_phases"]["test"] < r["stack_seconds"] and 0 < r["stack_phases"]["validation"] < r["stack_seconds"]


def test_profile_stack_steps_k_runs_in_rounds(tmp_path):
    """benchmarks/profile_stack.py (built-in digits): K runs stepped in lockstep rounds, timed and profiled (on a CPU
    the profile holds no kernels), one record per K."""
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "profile_stack.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LABELDISTILL_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, str(script), "--target", "digits", "--base", "10", "--k", "1,2", "--rounds", "3",
                          "--warmup", "2", "--out", str(tmp_path / "p.json")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    obj = json.loads((tmp_path / "p.json").read_text())
    assert [(r["k"], r["rounds"], r["kernels_per_round"]) for r in obj["results"]] == [(1, 3, 0.0), (2, 3, 0.0)]
    assert all(0 < r["host_ms_per_round"] <= r["wall_ms_per_round"] * 1.01 for r in obj["results"])


@pytest.mark.gpu
@pytest.mark.parametrize("deterministic", [False, True])
def test_stacked_runs_on_a_gpu_equal_runs_alone(mnist_small, tmp_path, deterministic):
    """On a GPU each run of a stack has its own CUDA stream with a single run's kernels (and CUDA
    graph); the validations of its runs are trained together. By default the labels equal the run alone within 1e-6
    (two runs alone differ by as much: an H200, 2026-12-04, docs/benchmarks.md); in deterministic mode bit for bit."""
    cfgs = [_cfg(mnist_small, device="cuda", seed=s, deterministic=deterministic) for s in (3, 4, 5)]
    alone = [labeldistill.distill(config=c, progress=False) for c in cfgs]
    stacked = distill_many(cfgs, progress=False)
    diffs = [float((a.labels - b.labels).abs().max()) for a, b in zip(alone, stacked)]
    print("max label difference, stacked vs alone on", torch.cuda.get_device_name(), "deterministic" * deterministic, diffs)
    assert max(diffs) <= (0.0 if deterministic else 1e-6)
    assert [a.steps for a in alone] == [b.steps for b in stacked]


@pytest.mark.gpu
def test_a_stack_larger_than_the_stream_pool_runs_on_a_gpu(mnist_small):
    """12 runs: their 12 streams and (before session 24's fix) 3 warm-up streams each outnumber PyTorch's pool of 32, so
    pooled streams were shared between runs; a stack of 8 on an H200 then failed with an illegal memory access. Each
    run now warms up and captures on its own stream: the stack finishes, with finite labels, and the device is sane."""
    cfgs = [_cfg(mnist_small, device="cuda", seed=s, epochs=3) for s in range(12)]
    stacked = distill_many(cfgs, progress=False)
    torch.cuda.synchronize()
    assert all(bool(torch.isfinite(s.labels).all()) and s.steps > 0 for s in stacked)
    assert stacked[0].labels.shape == (20, 10) and not torch.equal(stacked[0].labels, stacked[1].labels)  # two seeds

