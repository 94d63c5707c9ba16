"""A decoded copy of slowly-compressed npz files (LZMA / bzip2 members), as plain ``.npy``.

The shared CIFAR-10 npz files use LZMA and take ~11 s to load; the ``.npy`` copy loads in well
under a second. Entries are keyed by the source's absolute path, size, mtime and member CRCs,
so an edited file is never served stale (old entries are not pruned; delete the folder freely).
Copies are read with ``allow_pickle=False`` like the originals.
Set ``LABELDISTILL_CACHE`` to a directory to move the cache, or to ``off`` to disable it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

_SLOW = (zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/labeldistill``, else ``~/.cache/labeldistill``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "labeldistill"


def decoded_cache_dir() -> Path | None:
    """Where decoded copies go, or None when caching is off."""
    env = os.environ.get("LABELDISTILL_CACHE")
    if env is not None and env.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    return Path(env).expanduser().absolute() if env else default_cache_dir() / "decoded-npz"


def _slow_members(path: Path) -> tuple[tuple[str, ...], str] | None:
    """``(array names, content fingerprint)`` if any member is LZMA/bzip2-compressed, else None."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None  # let the real loader report the problem
    if not any(info.compress_type in _SLOW for info in infos):
        return None
    names = tuple(i.filename[:-4] for i in infos if i.filename.endswith(".npy"))
    # Member names become file names in the cache: refuse anything that could escape it.
    if not all(_SAFE_NAME.fullmatch(n) for n in names):
        return None
    # Member CRCs make the key follow the content even when size and mtime do not change
    # (a file rewritten within one clock tick).
    fingerprint = ";".join(f"{i.filename}:{i.CRC:08x}:{i.file_size}" for i in infos)
    return names, fingerprint


def _entry_dir(path: Path, fingerprint: str) -> Path | None:
    root = decoded_cache_dir()
    if root is None:
        return None
    st = path.stat()
    key = hashlib.sha256(f"{path.absolute()}|{st.st_size}|{st.st_mtime_ns}|{fingerprint}".encode()).hexdigest()[:24]
    return root / f"{path.stem}-{key}"


def _save_atomic(target: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_npz_arrays(
    path: Path,
    keys: tuple[str, ...],
    optional: tuple[str, ...],
    load: Callable[[Path, tuple[str, ...], tuple[str, ...]], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """``load(path, keys, optional)``, served from a decoded ``.npy`` copy when ``path`` is slow to decode.

    Args:
        path: the npz file.
        keys: required array names.
        optional: array names read when present.
        load: the real loader.
    """
    slow = _slow_members(path)
    entry = _entry_dir(path, slow[1]) if slow else None
    if entry is None or slow is None:
        return load(path, keys, optional)
    members = slow[0]
    if (entry / ".complete").is_file() and all(k in members for k in keys):
        try:
            return {k: np.load(entry / f"{k}.npy", allow_pickle=False) for k in (*keys, *optional) if k in members}
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            pass
    # Decode every member once, so later calls asking for other arrays hit the cache too.
    arrays = load(path, keys, tuple(m for m in members if m not in keys))
    try:
        entry.mkdir(parents=True, exist_ok=True)
        for k, arr in arrays.items():
            _save_atomic(entry / f"{k}.npy", arr)
        (entry / ".complete").touch()
    except OSError:
        pass  # a read-only or full cache only costs speed
    return {k: arrays[k] for k in (*keys, *optional) if k in arrays}
