"""The append-only JSON-lines metrics log of a run.

Lines are buffered and flushed at checkpoints; the checkpoint records the byte offset,
and a resumed run truncates the log back to it, so after a resume the log has no
duplicated and no missing steps.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError


class MetricsLog:
    def __init__(self, path: str | Path, *, resume_offset: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_offset is None:
            self.path.write_bytes(b"")
        else:
            with open(self.path, "r+b" if self.path.exists() else "w+b") as f:
                f.truncate(resume_offset)
        self._f = open(self.path, "ab")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write((json.dumps(record, separators=(",", ":")) + "\n").encode())

    def flush(self) -> int:
        """Flush to disk; returns the byte offset a checkpoint should record."""
        self._f.flush()
        os.fsync(self._f.fileno())
        return self._f.tell()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._f.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a metrics log (plain or gzip), in order."""
    return [json.loads(line) for line in read_metrics_lines(Path(path)) if line.strip()]


def last_epoch(path: str | Path, *, tail_bytes: int = 65536) -> int | None:
    """The epoch of the last record that has one (a run's progress, read from the log's end), or None.

    A killed run's log ends at its last checkpoint (the log is flushed there), which is where it resumes.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the tail window or by a kill
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int):
            return rec["epoch"]
    return None


def metrics_path(run_dir: Path) -> Path | None:
    """``RUN_DIR/metrics.jsonl``, else an archived ``metrics.jsonl.gz``, else None."""
    for name in ("metrics.jsonl", "metrics.jsonl.gz"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def read_metrics_lines(path: Path) -> list[str]:
    """The lines of a metrics log (``metrics.jsonl``, or the gzip file ``records/archive.py`` makes of it); a one-line
    :class:`UserError` when it cannot be read."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as f:
                return f.read().splitlines()
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as e:  # gzip: BadGzipFile is an OSError, a cut file an EOFError
        raise UserError(f"Cannot read {path} ({type(e).__name__}).") from None
