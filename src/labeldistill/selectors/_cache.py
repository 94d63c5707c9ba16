"""Selections kept on disk, so that every method of one seed (LD, LD RR, the baselines) reuses
one selected base set instead of recomputing it.

A file per (target data, N, seed, selector and its settings, numerics): its name is readable,
its key's hash makes it unique. It stores the dataset indices (not tensor positions), what the
selector measured and the base set's content hash, which is checked on reuse.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch

from ..numerics import NUMERICS_VERSION

_UNSET = object()
_CACHE_DIR: ContextVar[object] = ContextVar("labeldistill_selection_cache", default=_UNSET)


@contextmanager
def selection_cache(path: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, selections are cached in ``path`` (None: not cached). ``reproduce``
    uses ``OUT/selections`` so that all cells of one seed share one selection."""
    token = _CACHE_DIR.set(None if path is None else Path(path))
    try:
        yield
    finally:
        _CACHE_DIR.reset(token)


def default_cache_dir() -> Path | None:
    """The block's :func:`selection_cache`, else ``$LABELDISTILL_CACHE/selections`` (``off``: none),
    else ``~/.cache/labeldistill/selections``."""
    v = _CACHE_DIR.get()
    if v is not _UNSET:
        return v  # type: ignore[return-value]
    env = os.environ.get("LABELDISTILL_CACHE")
    if env is not None and env.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    from ..data.cache import default_cache_dir as data_cache

    return (Path(env).expanduser().absolute() if env else data_cache()) / "selections"


def numerics_key() -> dict:
    """What of the arithmetic can change a trained selector's choice: the numerics version and TF32."""
    return {"version": NUMERICS_VERSION,
            "tf32": bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)}


def cache_file(folder: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    target = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(key["target"]).split(":", 1)[-1]).name)[:40]
    return folder / f"{target}-N{key['n_base']}-seed{key['seed']}-{key['selector']}-{digest}.json"
