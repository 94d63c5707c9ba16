"""Run-directory files: safe state files, atomic writes, the writer lock, the metrics log."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from labeldistill.errors import ArtifactError, UserError
from labeldistill.runs import MetricsLog, RunLock, atomic_write_json, load_state, read_json, read_metrics, save_state


def _assert_same(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a.cpu(), b.cpu()), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, list) and len(a) == len(b), path  # tuples come back as lists (JSON)
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, path


def _adam_with_state():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    return net, opt


def test_state_round_trip_nested(tmp_path):
    _, opt = _adam_with_state()
    g = torch.Generator().manual_seed(123)
    torch.rand(3, generator=g)
    state = {
        "opt": opt.state_dict(),  # int keys, tuples, tensors, floats, bools, None
        "gen": g.get_state(),
        "none": None,
        "ints": {0: "zero", 7: [1, 2.5, None, True], "7": "string seven"},
        "nested": [{"a": torch.arange(6).reshape(2, 3)}, [torch.zeros(0), torch.tensor(3.5, dtype=torch.float64)]],
        "half": torch.ones(2, dtype=torch.bfloat16),
        "flag": False,
        "name": "run",
        "inf": float("inf"),
    }
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert list(back["opt"]["state"]) == list(opt.state_dict()["state"])
    assert all(isinstance(k, int) for k in back["opt"]["state"])
    assert back["ints"][7] == [1, 2.5, None, True] and back["ints"]["7"] == "string seven"
    _assert_same(state, back)


def test_key_collisions_do_not_lose_tensors(tmp_path):
    # Keys that flatten to the same dotted path, and an int key next to its string twin.
    state = {"a.b": torch.tensor([1.0]), "a": {"b": torch.tensor([2.0])}, 1: torch.tensor([3.0]), "1": torch.tensor([4.0])}
    save_state(tmp_path / "s.safetensors", state)
    _assert_same(state, load_state(tmp_path / "s.safetensors"))


def test_optimizer_and_generator_continue_identically(tmp_path):
    net, opt = _adam_with_state()
    g = torch.Generator().manual_seed(5)
    save_state(tmp_path / "s.safetensors", {"opt": opt.state_dict(), "gen": g.get_state(), "params": dict(net.state_dict())})
    back = load_state(tmp_path / "s.safetensors")

    net2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    net2.load_state_dict(back["params"])
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.01)
    opt2.load_state_dict(back["opt"])
    g2 = torch.Generator()
    g2.set_state(back["gen"])
    for n_, o_, gen in ((net, opt, g), (net2, opt2, g2)):
        x = torch.randn(4, 3, generator=gen)
        o_.zero_grad()
        n_(x).pow(2).sum().backward()
        o_.step()
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)


def test_tampered_and_truncated_state(tmp_path):
    path = tmp_path / "s.safetensors"
    save_state(path, {"x": torch.arange(100, dtype=torch.float32), "meta": {"epoch": 3}})
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    raw[8 + n + 17] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="hash"):
        load_state(path)
    save_state(path, {"x": torch.arange(100, dtype=torch.float32)})
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(ArtifactError):
        load_state(path)
    with pytest.raises(ArtifactError):
        load_state(tmp_path / "missing.safetensors")


def test_atomic_write_json_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1, "t": torch.tensor([1, 2])})
    atomic_write_json(tmp_path / "a.json", {"x": 2})  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert read_json(tmp_path / "a.json") == {"x": 2}
    # A failed write leaves the old file and no temporary file.
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "a.json", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert read_json(tmp_path / "a.json") == {"x": 2}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ArtifactError):
        read_json(tmp_path / "bad.json")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from labeldistill.runs import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_run_lock_across_processes(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match="in use"):
            RunLock(run_dir).acquire()
        assert (run_dir / ".lock").read_text() == str(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        lock = RunLock(run_dir).acquire()
        assert (run_dir / ".lock").read_text() == str(os.getpid())
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_lock_context_manager_releases(tmp_path):
    with RunLock(tmp_path):
        pass
    with RunLock(tmp_path):
        pass


def test_metrics_log_truncates_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for i in range(1, 4):
        log.write({"kind": "step", "step": i})
    offset = log.flush()
    assert offset == path.stat().st_size
    log.write({"kind": "step", "step": 4})
    log.write({"kind": "step", "step": 5})
    log.close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    # Resume from the checkpoint taken after step 3: steps 4, 5 are dropped, then re-written.
    log = MetricsLog(path, resume_offset=offset)
    log.write({"kind": "step", "step": 4, "again": True})
    log.close()
    recs = read_metrics(path)
    assert [r["step"] for r in recs] == [1, 2, 3, 4] and recs[-1]["again"] is True
    # A fresh (non-resumed) log starts empty.
    MetricsLog(path).close()
    assert read_metrics(path) == []
    # Each line is one JSON object.
    log = MetricsLog(path)
    log.write({"a": 1})
    log.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}]


def test_archived_metrics_log_reads_as_the_plain_one(tmp_path):
    """results/archive.py gzips a finished run's log: every reader finds it and reads the same records;
    a damaged file is a one-line UserError."""
    import gzip

    from labeldistill.runs.metrics import metrics_path

    plain, archived = tmp_path / "plain", tmp_path / "archived"
    plain.mkdir(), archived.mkdir()
    log = MetricsLog(plain / "metrics.jsonl")
    for i in range(3):
        log.write({"kind": "step", "step": i, "loss": 0.5 * i})
    log.close()
    (archived / "metrics.jsonl.gz").write_bytes(gzip.compress((plain / "metrics.jsonl").read_bytes()))
    assert metrics_path(plain) == plain / "metrics.jsonl" and metrics_path(archived) == archived / "metrics.jsonl.gz"
    assert metrics_path(tmp_path) is None
    assert read_metrics(metrics_path(archived)) == read_metrics(metrics_path(plain)) == [
        {"kind": "step", "step": i, "loss": 0.5 * i} for i in range(3)]
    (archived / "metrics.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(UserError, match="Cannot read"):
        read_metrics(archived / "metrics.jsonl.gz")


def test_last_epoch_reads_a_runs_progress_from_the_logs_end(tmp_path):
    from labeldistill.runs.metrics import last_epoch

    path = tmp_path / "metrics.jsonl"
    assert last_epoch(path) is None  # no log yet
    log = MetricsLog(path)
    for step in range(1, 60 * 49 + 1):  # 60 epochs of 49 steps: longer than the tail window, only the end is read
        log.write({"kind": "step", "step": step, "epoch": (step - 1) // 49 + 1, "loss": 2.3})
    log.write({"kind": "validation", "epoch": 60, "val_accuracy": 81.5})
    log.write({"kind": "grad_var", "step": 60 * 49})  # a record without an epoch
    log.close()
    assert path.stat().st_size > 65536 and last_epoch(path) == 60
    with open(path, "a") as f:
        f.write('{"kind": "step", "step": 2941, "epo')  # a line cut by a kill
    assert last_epoch(path) == 60
    path.write_text('{"kind": "step", "step": 1}\n')  # records without epochs only
    assert last_epoch(path) is None


def test_json_records_keep_long_number_lists_on_one_line(tmp_path):
    """A run's split (tens of thousands of indices) is one line of config.json, not one line per index; what is read back
    is what was written, and everything else keeps its indented layout."""
    import numpy as np

    split = {"train": list(range(1000)), "val": np.arange(1000, 1040), "test": torch.arange(5)}
    obj = {"config": {"lr": 0.001, "name": "a\u0000b"}, "split": split, "mixed": [1, "x"] * 20, "flags": [True] * 30,
           "floats": [0.5] * 17, "nested": [[1, 2]] * 20, "path": tmp_path}
    atomic_write_json(tmp_path / "c.json", obj)
    text = (tmp_path / "c.json").read_text()
    back = read_json(tmp_path / "c.json")
    assert back == {**obj, "split": {"train": list(range(1000)), "val": list(range(1000, 1040)), "test": [0, 1, 2, 3, 4]},
                    "path": str(tmp_path)}
    lines = text.splitlines()
    assert any(line.strip().startswith('"train": [0, 1, 2,') for line in lines)  # one line
    assert any(line.strip().startswith('"floats": [0.5, 0.5') for line in lines)
    assert len(lines) < 200  # indices one per line would be over 1,000
    assert '"flags": [\n' in text and '"mixed": [\n' in text  # not numbers (booleans, strings): laid out as before
    assert json.dumps(json.loads(text), indent=2, sort_keys=True) == json.dumps(back, indent=2, sort_keys=True)
