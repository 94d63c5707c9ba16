"""Executors (local, ray) and ``labeldistill sweep``: real tiny runs on the bundled digits.

The Ray tests start a local two-CPU Ray cluster in this process (skipped without Ray) and check
that a cell computed as a Ray task is bit for bit the cell the local executor computes, also
when the worker computing it is killed mid-cell and Ray re-runs it from its checkpoint.
"""
from __future__ import annotations

import json
import os
import sys
import threading

import pytest
import torch

import labeldistill
from labeldistill.cli import main
from labeldistill.errors import UserError
from labeldistill.numerics import NUMERICS_VERSION
from labeldistill.experiments import Options, plan, run_cells
from labeldistill.experiments.executors import get_executor, list_executors
from labeldistill.runs import RunLock, read_json

SWEEP = ["sweep", "--target", "digits", "--base", "10,20", "--seed", "0,1", "--method", "ridge", "--epochs", "2",
         "--test-models", "2"]


def _same_runs(a, b, names: list[str], opts_a: Options, opts_b: Options) -> None:
    """The cells' runs in two output folders: equal accuracies, T and distilled labels, bit for bit."""
    from labeldistill.experiments import DataView, parse_cell, plan_cell

    for name in names:
        p = plan_cell(parse_cell(name), opts_a, DataView(None))
        ra, rb = read_json(p.run_dir(a) / "result.json"), read_json(p.run_dir(b) / "result.json")
        assert ra["accuracies"] == rb["accuracies"] and ra["T"] == rb["T"], name
        la, lb = labeldistill.load(p.run_dir(a)), labeldistill.load(p.run_dir(b))
        assert torch.equal(la.labels, lb.labels) and torch.equal(la.images, lb.images), name


def test_registry_lists_local_first():
    assert list_executors()[0] == "local" and "ray" in list_executors()
    with pytest.raises(UserError, match="Unknown executor"):
        get_executor("nope")


def test_ray_missing_is_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    assert main(SWEEP + ["--out", str(tmp_path), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'labeldistill[ray]'" in err[0]
    assert not (tmp_path / "runs").exists()


def test_wait_for_lock_returns_once_the_holder_releases(tmp_path):
    from labeldistill.experiments.executors.ray import wait_for_lock

    held = RunLock(tmp_path).acquire()
    wait_for_lock(tmp_path, 0.0, poll=0.01)  # held and no time to wait: returns, the cell's own lock reports it
    threading.Timer(0.2, held.release).start()
    wait_for_lock(tmp_path, 60.0, poll=0.01)
    RunLock(tmp_path).acquire().release()  # free now


def test_local_sweep_prints_table_and_reuses_points(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(SWEEP + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("| digits | ") == 4 and "4 of 4 points computed" in text
    assert main(SWEEP + ["--out", str(out), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [p["action"] for p in obj["points"]] == ["stored cell"] * 4
    assert {(p["base"], p["seed"]) for p in obj["points"]} == {(10, 0), (10, 1), (20, 0), (20, 1)}
    assert all(p["numerics_version"] == NUMERICS_VERSION and p["T"] for p in obj["points"])


def test_local_stack_equals_one_by_one(tmp_path, monkeypatch):
    """--stack 4: the three LD RR seeds step together (one stack), LD alone (another method); every
    number and label equals the cells computed one after another."""
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 3)
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    names = ["digits/ld-rr/10", "digits/ld/10", "digits/ld-rr/10@seed=1", "digits/ld-rr/10@seed=2"]
    alone, stacked = Options(out=tmp_path / "alone", quick=True, device="cpu"), Options(out=tmp_path / "stacked", quick=True, device="cpu")
    a = run_cells(names, alone)
    logs: list[str] = []
    b = run_cells(names, stacked, executor=get_executor("local", stack=4), log=logs.append)
    assert [o.status for o in b] == ["done"] * 4, [o.message for o in b]
    assert [o.action for o in b] == ["ran (stacked x3)", "ran", "ran (stacked x3)", "ran (stacked x3)"]
    assert [o.record["result"]["accuracies"] for o in a] == [o.record["result"]["accuracies"] for o in b]
    _same_runs(alone.out, stacked.out, names, alone, stacked)
    assert [o.action for o in run_cells(names, stacked, executor=get_executor("local", stack=4))] == ["stored cell"] * 4


def test_local_batched_stack_through_reproduce(tmp_path, monkeypatch):
    """reproduce --stack 3 --batched: the three LD RR seeds take their steps as one batched step; each cell is recorded as
    without batching, its numbers the lockstep stack's up to rounding (the same T)."""
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 3)
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    names = ["digits/ld-rr/10", "digits/ld-rr/10@seed=1", "digits/ld-rr/10@seed=2"]
    lock = run_cells(names, Options(out=tmp_path / "lock", quick=True, device="cpu"), executor=get_executor("local", stack=3))
    b = run_cells(names, Options(out=tmp_path / "batched", quick=True, device="cpu", batched=True), executor=get_executor("local", stack=3))
    assert [o.action for o in b] == ["ran (stacked x3, batched)"] * 3, [o.message for o in b]
    for x, y in zip(lock, b):
        assert x.record["result"]["T"] == y.record["result"]["T"]
        assert abs(x.record["result"]["accuracy_mean"] - y.record["result"]["accuracy_mean"]) < 5.0


def test_stack_option_errors(tmp_path, capsys):
    assert main(SWEEP + ["--out", str(tmp_path), "--stack", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stack must be at least 1" in err[0]


def test_stored_executor_reads_finished_cells_beside_a_running_lane(tmp_path, capsys):
    """--executor stored: a stored point is shown as it is, one not stored as not run (exit 0: nothing was attempted),
    and nothing is computed or written under runs/, even where a live process holds a run directory's lock."""
    one = ["sweep", "--target", "digits", "--base", "10", "--method", "ridge", "--epochs", "2", "--test-models", "2",
           "--out", str(tmp_path)]
    assert main(one + ["--seed", "0", "--json"]) == 0
    made = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["points"][0]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    lock = RunLock(tmp_path / "runs" / runs[0]).acquire()  # a lane still running there
    try:
        assert main(one + ["--seed", "0,1", "--executor", "stored", "--json"]) == 0
    finally:
        lock.release()
    out = capsys.readouterr()
    seen = json.loads(out.out.strip().splitlines()[-1])["points"]
    assert [(p["seed"], p["status"], p["action"]) for p in seen] == [(0, "done", "stored cell"), (1, "not run", "")]
    assert seen[0]["accuracy_mean"] == made["accuracy_mean"] and "computes nothing" in seen[1]["message"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs  # seed 1's run was not started
    assert "not run (not stored" in out.err
    assert main(one + ["--seed", "0", "--executor", "stored", "--stack", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "computes nothing" in err[0]


def test_stored_executor_table_with_nothing_stored(tmp_path, shared_data, capsys):
    """reproduce --executor stored on an empty --out: every selected cell (each seed) not run, the table written,
    exit 0, no run directory made."""
    assert main(["reproduce", "field", "--only", "mnist/baseline-teacher", "--seeds", "0,1", "--executor", "stored",
                 "--data-root", str(shared_data), "--out", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr()
    obj = json.loads(out.out.strip().splitlines()[-1])
    assert obj["selected"] == {"mnist/baseline-teacher/100@protocol=dc-dsa": "incomplete"}
    assert "2 of 2 selected cells are not stored yet" in out.out
    assert (tmp_path / "table-field-seeds0-1.md").exists() and not (tmp_path / "runs").exists()


# ---- Ray -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_quick_table_equals_local(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 3)  # planned in the driver: the tasks get these configurations
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    names = ["digits/ld-rr/10", "digits/ld-rr/10@seed=1"]
    local, remote = Options(out=tmp_path / "local", quick=True, device="cpu"), Options(out=tmp_path / "ray", quick=True, device="cpu")
    a = run_cells(names, local)
    logs: list[str] = []
    b = run_cells(names, remote, executor=get_executor("ray", threads=torch.get_num_threads()), log=logs.append)
    assert [o.status for o in a] == [o.status for o in b] == ["done", "done"], [o.message for o in b]
    assert [o.action for o in b] == ["ran", "ran"] and sum("submitted" in m for m in logs) == 2
    assert [o.record["result"]["accuracies"] for o in a] == [o.record["result"]["accuracies"] for o in b]
    _same_runs(local.out, remote.out, names, local, remote)
    # The local executor then finds the Ray executor's cells stored (same files, same places).
    assert [o.action for o in run_cells(names, remote)] == ["stored cell", "stored cell"]


def test_ray_stack_task_equals_local(ray_cluster, tmp_path, monkeypatch):
    """--executor ray --stack 2: two seeds in one Ray task, their loops stepped together; same as local."""
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 3)
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    names = ["digits/ld-rr/10", "digits/ld-rr/10@seed=1"]
    local, remote = Options(out=tmp_path / "local", quick=True, device="cpu"), Options(out=tmp_path / "ray", quick=True, device="cpu")
    run_cells(names, local)
    logs: list[str] = []
    b = run_cells(names, remote, executor=get_executor("ray", threads=torch.get_num_threads(), stack=2), log=logs.append)
    assert [o.action for o in b] == ["ran (stacked x2)"] * 2, [o.message for o in b]
    _same_runs(local.out, remote.out, names, local, remote)


def test_ray_worker_killed_mid_cell_resumes_from_checkpoint(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "QUICK_EPOCHS", 6)  # a checkpoint at epoch 5 (val_every 5) with one epoch still to go
    monkeypatch.setattr(plan, "TEST_MODELS", 2)
    names = ["digits/ld-rr/10"]
    local, remote = Options(out=tmp_path / "local", quick=True, device="cpu"), Options(out=tmp_path / "ray", quick=True, device="cpu")
    assert run_cells(names, local)[0].done
    marker = tmp_path / "killed"

    def kill_after_first_checkpoint():  # runs in the Ray worker before the cell
        import os
        import signal

        from labeldistill.distill import loop

        original = loop.Distiller.checkpoint

        def checkpoint(self, session_seconds):
            original(self, session_seconds)
            if not marker.exists():  # first attempt only
                marker.write_text(f"{os.getpid()} step {self.step} of {self.total_steps}")
                os.kill(os.getpid(), signal.SIGKILL)

        loop.Distiller.checkpoint = checkpoint

    ex = get_executor("ray", threads=torch.get_num_threads(), max_retries=2, worker_setup=kill_after_first_checkpoint)
    out = run_cells(names, remote, executor=ex)
    assert out[0].done, out[0].message
    assert out[0].action == "resumed run"  # the retry found the checkpoint, not a fresh directory
    pid, _, step, _, total = marker.read_text().split()
    assert 0 < int(step) < int(total)  # killed mid-loop
    p = out[0].plan
    assert len(read_json(p.run_dir(remote.out) / "config.json").get("resumes") or []) == 1
    _same_runs(local.out, remote.out, names, local, remote)


def test_ray_sweep_then_local_reuses(ray_cluster, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(SWEEP + ["--out", str(out), "--executor", "ray"]) == 0
    assert "4 of 4 points computed" in capsys.readouterr().out
    assert main(SWEEP + ["--out", str(out), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [p["action"] for p in obj["points"]] == ["stored cell"] * 4


def test_ray_task_resources_pin_threads_and_share_gpus(monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("LABELDISTILL_DATA", "/shared/data")
    ex = get_executor("ray", threads=3)
    cpu = ex.resources(Options(device="cpu"))
    assert cpu["num_cpus"] == 3 and cpu["num_gpus"] == 0 and cpu["max_retries"] == 3 and cpu["retry_exceptions"] is False
    env = cpu["runtime_env"]["env_vars"]  # threads pinned; the data root and cache passed on (the conftest sets the cache)
    assert env == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "LABELDISTILL_DATA": "/shared/data",
                   "LABELDISTILL_CACHE": os.environ["LABELDISTILL_CACHE"]}
    assert ex.resources(Options(device="cuda"))["num_gpus"] == 0.5
    assert get_executor("ray").resources(Options())["num_cpus"] == torch.get_num_threads()  # default: the local executor's count
