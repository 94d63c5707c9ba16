"""A ledger of finished models, so that a long evaluation resumes model by model.

Training fresh models under the field's protocols is long on a CPU (ConvNet-3 under ``dc-dsa``:
1,000 epochs, over a quarter of an hour per model on one core), and a model's result depends only
on its own seed. So an evaluation writes each finished model's result to a ledger and, run again
after an interruption, trains only the models the ledger lacks: the same numbers as one
uninterrupted evaluation (bit for bit on a CPU, where the engine trains models one by one anyway).

A ledger is a JSON-lines file in a folder the caller chooses (a run directory's, usually): a
header line with the *key* (everything that decides the models' results: the set's content, the
test data's, the protocol, the architecture, the seeds' origin, the numerics), then one line per
finished model, appended and synced as it finishes. The file is named after a hash of the key,
so evaluations with different settings never share one, and a ledger is reused only by an
evaluation with the same key (a larger ``models`` reuses a smaller run's models: model k's seed
does not depend on how many there are). A line cut short by a kill is ignored.

Because a file's name and header are its key, a ledger means the same models wherever it lies: within a
:func:`ledger_sources` block, a ledger that has no file of its own adopts a copy of the file of the same key
from another run's folder (``reproduce`` lends each cell its sibling runs': a teacher-label row and a
teacher-started distillation choose their temperature with the same students, trained once).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write_bytes

LEDGER_FORMAT = "labeldistill-model-ledger"
LEDGER_VERSION = 1

# Where a run directory keeps its ledgers: the loop's own (validation students, the final test) at RUN_LEDGER,
# later evaluations' (`evaluate RUN`, an unrolled run's final test) in the evaluations folder.
RUN_LEDGER = "ledger"
EVALUATIONS = "evaluations"


def run_ledger(run_dir: str | Path) -> Path:
    """The ledger folder of a run directory's own loop (validation students, the final test)."""
    return Path(run_dir) / RUN_LEDGER


def evaluations_dir(run_dir: str | Path) -> Path:
    """The folder of a run directory's later evaluations: one JSON result each, and their ledger."""
    return Path(run_dir) / EVALUATIONS


def evaluation_ledger(run_dir: str | Path) -> Path:
    """The ledger folder of a run directory's later evaluations (``evaluate RUN``; an unrolled run's test)."""
    return evaluations_dir(run_dir) / RUN_LEDGER


# Folders of other runs' ledgers that a ledger without a file of its own may adopt from (ledger_sources()).
_SOURCES: ContextVar[tuple[Path, ...]] = ContextVar("labeldistill_ledger_sources", default=())


@contextmanager
def ledger_sources(folders: Iterable[str | Path]) -> Iterator[None]:
    """Within the block, a :class:`ModelLedger` whose file does not exist yet first copies in the file of the same
    key from ``folders`` (the one with the most finished models), so models another run finished are not trained
    again. Its own file then goes on alone: nothing is written back to ``folders``."""
    token = _SOURCES.set(tuple(Path(f) for f in folders))
    try:
        yield
    finally:
        _SOURCES.reset(token)


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """A content hash of tensors (shape, dtype and values; on any device)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach()
        h.update(json.dumps([list(t.shape), str(t.dtype)]).encode())
        h.update(t.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def key_sha256(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class ModelLedger:
    """The finished models of one evaluation (``key``), kept in ``folder``.

    Args:
        folder: where ledgers live (created on the first record).
        key: JSON-able description of everything that decides the results.
        prefix: the start of the file name (e.g. the protocol's name), for people looking at the folder.
    Example:
        >>> book = ModelLedger(run_dir / "ledger", key, prefix="dc-dsa")
        >>> done = book.done()                       # {model index: record}
        >>> book.record(3, accuracy=97.1, seconds=812.4)
    """

    def __init__(self, folder: str | Path, key: dict[str, Any], *, prefix: str = "models") -> None:
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))  # as it reads back from the file
        self.path = Path(folder) / f"{prefix}-{key_sha256(self.key)[:16]}.jsonl"

    def done(self) -> dict[int, dict[str, Any]]:
        """The finished models' records by model index (empty when there is no ledger, or its key differs)."""
        lines = self._text().splitlines()
        if not lines or not self._is_header(lines[0]):
            return {}  # no ledger, a header cut short, a hash collision or a foreign file: trust nothing in it
        records: dict[int, dict[str, Any]] = {}
        for line in lines[1:]:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: that model is trained again
            if isinstance(item, dict) and isinstance(item.get("model"), int):
                records[item["model"]] = item
        return records

    def record(self, model: int, **values: Any) -> None:
        """Append model ``model``'s result (synced to disk before returning)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = self._text()
        fresh = not self._is_header(text.split("\n", 1)[0])
        with open(self.path, "w" if fresh else "a") as f:
            if fresh:
                f.write(json.dumps({"format": LEDGER_FORMAT, "version": LEDGER_VERSION, "key": self.key}, sort_keys=True) + "\n")
            elif not text.endswith("\n"):
                f.write("\n")  # end a line cut short, so that this record stands on a line of its own
            f.write(json.dumps({"model": int(model), **values}, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _adopt(self) -> str:
        """Copy in the :func:`ledger_sources` file of this key that holds the most models; its text ("" when none)."""
        best, best_lines = "", 1
        for folder in _SOURCES.get():
            try:
                text = (folder / self.path.name).read_text()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            lines = text.splitlines()
            if lines and self._is_header(lines[0]) and len(lines) > best_lines:
                best, best_lines = text, len(lines)
        if best:
            atomic_write_bytes(self.path, best.encode())
        return best

    def _text(self) -> str:
        """The ledger file's text; with no file of its own, what it adopts from :func:`ledger_sources` ("" when none)."""
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return self._adopt()

    def _is_header(self, line: str) -> bool:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            return False
        return isinstance(item, dict) and item.get("format") == LEDGER_FORMAT and item.get("key") == self.key
