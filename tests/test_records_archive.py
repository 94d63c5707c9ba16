"""records/archive.py: a parked run comes back byte for byte; large files and the budget are enforced."""
import importlib.util
import json
from pathlib import Path

import pytest

from labeldistill.runs.metrics import read_metrics

SCRIPT = Path(__file__).resolve().parent.parent / "records" / "archive.py"


@pytest.fixture
def archive(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("records_archive", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "HERE", tmp_path / "records")
    return mod


def _run_dir(root: Path) -> Path:
    run = root / "run"
    (run / "evaluations").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"split": list(range(5000))}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": i}) + "\n" for i in range(50)))
    (run / "evaluations" / "dc.json").write_text("{}")
    (run / "checkpoint.safetensors").write_bytes(bytes(range(256)) * 12_000)  # 3 MB: over the large-file limit
    (run / "snapshots.bin").write_bytes(b"\x01" * 3_000_000)
    (run / ".lock").write_text("123")
    return run


def test_parked_run_round_trip(archive, tmp_path):
    run = _run_dir(tmp_path)
    dest = archive.store(run, "r", in_progress=True)
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert sorted(manifest["files"]) == ["checkpoint.safetensors", "config.json", "evaluations/dc.json", "metrics.jsonl"]
    assert manifest["left_out"] == ["snapshots.bin (2.9 MB)"]
    assert (dest / "config.json").read_bytes() == (run / "config.json").read_bytes()  # a run directory the library reads
    assert read_metrics(dest / "metrics.jsonl.gz") == read_metrics(run / "metrics.jsonl")
    archive.restore("r", tmp_path / "back")
    for rel in manifest["files"]:
        assert (tmp_path / "back" / rel).read_bytes() == (run / rel).read_bytes()
    assert not (tmp_path / "back" / ".lock").exists()


def test_finished_run_leaves_checkpoint_out_and_restore_checks_digest(archive, tmp_path):
    run = _run_dir(tmp_path)
    dest = archive.store(run, "f", in_progress=False)
    assert not (dest / "checkpoint.safetensors").exists() and dest.parent.name == "runs"
    assert "checkpoint.safetensors" not in json.loads((dest / "MANIFEST.json").read_text())["files"]
    parked = archive.store(run, "p", in_progress=True)
    (parked / "checkpoint.safetensors").write_bytes(b"damaged")
    with pytest.raises(SystemExit, match="does not match its recorded sha256"):
        archive.restore("p", tmp_path / "back")
    assert not (tmp_path / "back").exists()  # every file is checked before any is written
    archive.store(run, "p", in_progress=True)
    archive.restore("p", tmp_path / "back")
    with pytest.raises(SystemExit, match="exists and is not empty"):
        archive.restore("p", tmp_path / "back")


def test_budget(archive, tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "BUDGET_MB", 0.01)
    run = _run_dir(tmp_path)
    archive.store(run, "parked", in_progress=True)  # a parked checkpoint is not counted
    with pytest.raises(SystemExit, match="over its 0 MB budget"):
        archive.store(run, "big", in_progress=False)


def test_compact_keeps_values_and_restores(archive, tmp_path):
    """An old record's JSON (a line per index) is rewritten with the same values; the manifest follows, keeping the
    digest as stored, and a parked run still restores (the restore checks the new digest)."""
    run = _run_dir(tmp_path)
    old = json.dumps({"split": list(range(5000)), "seed": 1, "name": "x"}, indent=2, sort_keys=True) + "\n"
    (run / "config.json").write_text(old)
    dest = archive.store(run, "p", in_progress=True)
    stored = json.loads((dest / "MANIFEST.json").read_text())["files"]["config.json"]
    archive.compact()
    new = (dest / "config.json").read_text()
    assert json.loads(new) == json.loads(old) and len(new) < 0.6 * len(old) and "\n    1,\n" not in new
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert manifest["rewritten"]["config.json"]["was_sha256"] == stored != manifest["files"]["config.json"]
    assert list(manifest["rewritten"]) == ["config.json"]  # dc.json ("{}") and the metrics log are not touched
    archive.restore("p", tmp_path / "back")
    assert json.loads((tmp_path / "back" / "config.json").read_text()) == json.loads(old)
    archive.compact()  # a second pass finds nothing shorter to write
    assert json.loads((dest / "MANIFEST.json").read_text()) == manifest
