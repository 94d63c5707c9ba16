"""Interrupted runs: SIGKILL at an arbitrary moment or Ctrl-C, then --resume, ends bit-identical
to an uninterrupted run with the same seed (CPU), with a metrics log that has every step once."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import labeldistill
from labeldistill.errors import UserError
from labeldistill.runs import RunLock

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labeldistill", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def config(mnist_small, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "run.toml"
    path.write_text(
        f'target = "npz:{mnist_small}"\nbase = 20\nmethod = "ridge"\nepochs = 24\nval_every = 2\nval_group = 2\n'
        "test_models = 2\nreset_window = 4\ncheckpoint_minutes = 0.004\ndevice = \"cpu\"\nseed = 3\n"
    )
    return path


@pytest.fixture(scope="module")
def straight(config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    p = cli("distill", "--config", str(config), "--out", str(out), "--no-progress")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return out


def steps_of(run: Path) -> list[dict]:
    """The step records of a run's log, whole lines only: a running run's last line may be half flushed."""
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_bytes().split(b"\n")[:-1]]
    return [r for r in recs if r["kind"] == "step"]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    wait_until(path.exists, proc, timeout)


def wait_until(done, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.time()
    while not done():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "finished early"
        assert time.time() - t0 < timeout
        time.sleep(0.02)


@pytest.mark.slow
# SIGINT and SIGTERM reach one handler (runs/interrupt.py; both tested in test_interrupt.py): the LD loop is stopped
# here with SIGTERM (a scheduler's preemption), DD's trainer with SIGINT (test_dd_run.py), each also killed outright.
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_then_resumed_equals_straight_run(config, straight, tmp_path, sig):
    out = tmp_path / "run"
    p = cli("distill", "--config", str(config), "--out", str(out), "--no-progress")
    # An arbitrary moment, usually between checkpoints, but always in the first half of the loop: chosen by progress
    # (the log is flushed at each checkpoint), not by wall time, which a fast machine outruns (the run then finishes).
    rng = random.Random(int(sig))
    target = rng.randint(1, len(steps_of(straight)) // 2)
    wait_for(out / "checkpoint.safetensors", p)
    wait_until(lambda: len(steps_of(out)) >= target, p)
    time.sleep(rng.uniform(0.0, 0.05))
    p.send_signal(sig)
    _, err = p.communicate(timeout=300)
    if p.returncode == 0:
        pytest.fail("the run finished before it could be interrupted; make it longer")
    if sig != signal.SIGKILL:
        assert p.returncode == 130 and f"--resume {out}" in err, err
        assert "labeldistill: Stopped" in err and "error" not in err, err  # a requested stop, not an error
    assert not (out / "result.json").exists()
    r = cli("distill", "--resume", str(out), "--no-progress", "--json")
    stdout, err = r.communicate(timeout=600)
    assert r.returncode == 0, err
    a, b = labeldistill.load(straight), labeldistill.load(out)
    assert torch.equal(a.labels, b.labels) and a.steps == b.steps
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (straight, out))
    assert ra["accuracies"] == rb["accuracies"]
    sa, sb = steps_of(straight), steps_of(out)
    assert [s["step"] for s in sb] == list(range(1, len(sa) + 1))  # no duplicated, no missing steps
    assert [(s["error"], s["loss"]) for s in sa] == [(s["error"], s["loss"]) for s in sb]


def held(run: Path) -> bool:
    try:
        RunLock.check_free(run)
    except UserError:
        return True
    return False


def test_second_run_on_same_directory_is_refused(config, tmp_path):
    out = tmp_path / "run"
    p = cli("distill", "--config", str(config), "--out", str(out), "--no-progress")
    try:
        wait_for(out / ".lock", p)
        while not held(out):  # the file exists a moment before it is locked
            assert p.poll() is None, "the first run finished before it took its lock"
            time.sleep(0.01)
        # Freeze the first run: it keeps its lock but cannot finish (on a fast machine it used to end
        # before the second started, and the second then resumed a finished run and exited 0).
        p.send_signal(signal.SIGSTOP)
        assert p.poll() is None, "the first run finished before it could be frozen; make it longer"
        q = cli("distill", "--resume", str(out), "--no-progress")
        _, err = q.communicate(timeout=300)
        assert q.returncode != 0 and "in use" in err, err
    finally:
        p.kill()
        p.communicate()


def test_same_seed_same_labels_and_accuracies(mnist_small, tmp_path):
    """Determinism on the CPU, in process, and independence of the validation frequency:
    validating more often never changes the training trajectory."""
    kw = dict(base=10, method="second-order", epochs=4, test_models=2, seed=5, progress=False, device="cpu", reset_window=3)
    a = labeldistill.distill(f"npz:{mnist_small}", val_every=2, out=tmp_path / "a", **kw)
    b = labeldistill.distill(f"npz:{mnist_small}", val_every=2, out=tmp_path / "b", **kw)
    assert torch.equal(a.labels, b.labels) and a.evaluation["accuracies"] == b.evaluation["accuracies"]
    c = labeldistill.distill(f"npz:{mnist_small}", val_every=1, out=tmp_path / "c", **kw)
    trajectory = lambda run: [(s["error"], s["loss"], s.get("reset")) for s in steps_of(run)]  # noqa: E731
    assert trajectory(tmp_path / "a") == trajectory(tmp_path / "c")
    assert a.evaluation["T_list"] == c.evaluation["T_list"]


def test_resume_of_a_directory_just_taken_says_in_use(tmp_path, capsys):
    """A run holds its directory's lock before it writes config.json: a resume in between is told the directory is in
    use (not that it is no run directory); once the lock is gone, it is told there is nothing to resume."""
    from labeldistill.cli import main
    from labeldistill.runs import RunLock

    out = tmp_path / "run"
    lock = RunLock(out).acquire()
    try:
        assert main(["distill", "--resume", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "in use by another running labeldistill process" in err[0]
    finally:
        lock.release()
    assert main(["distill", "--resume", str(out)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_resuming_a_finished_run_changes_nothing(straight, tmp_path, capsys):
    """A finished run asked to resume is reported as it is: before, it was tested again from its ledger and its result
    rewritten (the test's time, the finishing code's identity), and a resume was added to its config.json."""
    import shutil

    from labeldistill.cli import main

    run = tmp_path / "done"
    shutil.copytree(straight, run)
    before = _files(run)
    assert main(["distill", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "The run had finished: nothing was run" in out
    assert _files(run) == before
    ds = labeldistill.distill(out=run, resume=True)
    assert ds.evaluation["already_finished"] and ds.evaluation["accuracies"] == json.loads((run / "result.json").read_text())["accuracies"]
    assert _files(run) == before
