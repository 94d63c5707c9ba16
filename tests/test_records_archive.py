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


def _field_out(root: Path) -> Path:
    """A reproduce --out folder: a cell, a run with its checkpoint and lock, a teacher, and the caches never parked."""
    out = root / "out"
    for rel, data in {"cells/c.json": b"{}", "runs/r/checkpoint.safetensors": b"\x02" * 3_000_000,
                      "runs/r/.lock": b"1", "teachers/t.partial.safetensors": b"\x03" * 100,
                      "runs/r/distilled.safetensors": b"\x07" * 3_000_000, "runs/r/result.json": b"{}",  # rewritten by its resume
                      "runs/s/distilled.safetensors": b"\x08" * 100, "runs/s/result.json": b"{}",  # a small set: kept
                      "cifar10_train-abc/x.npy": b"\x04" * 100, "cifar10_train-abc/.complete": b"",
                      "zca/f.safetensors": b"\x05" * 100}.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return out


def test_park_mirrors_a_folder_of_runs_without_caches_and_writes_only_changes(archive, tmp_path, capsys):
    out = _field_out(tmp_path)
    archive.park(out, "f", delete=False)
    dest = tmp_path / "records" / "in-progress" / "f"
    parked = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert parked == ["cells/c.json", "runs/r/checkpoint.safetensors", "runs/s/distilled.safetensors", "runs/s/result.json",
                      "teachers/t.partial.safetensors"]  # large files kept, but a large set its checkpoint rewrites
    assert "5 files written" in capsys.readouterr().out
    # the next park: a changed cell, a teacher finished (its partial gone), nothing else touched
    (out / "cells" / "c.json").write_bytes(b'{"done": 1}')
    (out / "teachers" / "t.partial.safetensors").unlink()
    (out / "teachers" / "t.safetensors").write_bytes(b"\x06")
    archive.park(out, "f", delete=False)
    said = capsys.readouterr().out
    assert "2 files written, 3 unchanged" in said and "1 not in" in said and "kept" in said
    assert (dest / "teachers" / "t.partial.safetensors").is_file() and (dest / "cells" / "c.json").read_bytes() == b'{"done": 1}'
    (dest / "runs" / "r" / "distilled.safetensors").write_bytes(b"\x07" * 3_000_000)  # parked by hand before the rule
    archive.park(out, "f", delete=True)
    assert not (dest / "teachers" / "t.partial.safetensors").exists()
    assert not (dest / "runs" / "r" / "distilled.safetensors").exists()
    # unpark: a new folder gets exactly the parked files; a non-empty one is refused
    back = tmp_path / "back"
    archive.unpark("f", back)
    assert {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()} == \
        {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit, match="not empty"):
        archive.unpark("f", back)


def test_park_refuses_a_missing_folder_and_a_parked_run(archive, tmp_path):
    with pytest.raises(SystemExit, match="is not a folder"):
        archive.park(tmp_path / "nothing", "f", delete=False)
    archive.store(_run_dir(tmp_path), "r", in_progress=True)
    with pytest.raises(SystemExit, match="is a parked run"):
        archive.park(_field_out(tmp_path), "r", delete=False)
    with pytest.raises(SystemExit, match="no parked folder"):
        archive.unpark("r", tmp_path / "new")
