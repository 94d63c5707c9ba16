"""Atomic file writes (temporary file + fsync + rename) and safe JSON reading."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ArtifactError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


INLINE_AT = 16  # a list of more numbers than this is written on one line


def dumps(obj: Any) -> str:
    """``obj`` as indented JSON (sorted keys), except that a long list of numbers stands on one line: a run's split
    (tens of thousands of indices) took a line each, most of a record's bytes and of a reader's scrolling."""
    inline: dict[str, str] = {}

    def mark(o: Any) -> Any:
        if hasattr(o, "tolist") and not isinstance(o, (str, bytes)):
            o = o.tolist()
        if isinstance(o, dict):
            return {k: mark(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            if len(o) > INLINE_AT and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in o):
                key = f"\x00inline{len(inline)}\x00"  # a string no value holds: a NUL cannot come from a config
                inline[json.dumps(key)] = json.dumps(list(o), allow_nan=True)
                return key
            return [mark(x) for x in o]
        return o

    text = json.dumps(mark(obj), indent=2, sort_keys=True, default=_jsonable)
    for key, value in inline.items():
        text = text.replace(key, value, 1)
    return text


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (dumps(obj) + "\n").encode())


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON ({e.__class__.__name__}); the file is corrupt.") from None


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
