"""``choose_base``: run a selector by name on a target (with the on-disk cache) and record the choice."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..data.tensors import TargetData
from ..errors import ArtifactError, UserError
from ..runs import atomic_write_json, read_json
from ._base import SELECTORS, SelectionContext, Selector, check_selection
from ._cache import cache_file, default_cache_dir, numerics_key

_DEFAULT = object()


def content_sha256(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of a base set's content: its images (float32, as preprocessed, C order) then its
    labels (little-endian int64). Two runs with the same hash trained on the same base set."""
    h = hashlib.sha256()
    h.update(images.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes())
    h.update(labels.detach().cpu().numpy().astype("<i8").tobytes())
    return h.hexdigest()


def get_selector(name: str, **settings) -> Selector:
    """A selector by name (``Unknown base selector 'x'. Known: ...`` for a bad one), with settings."""
    from . import _load

    _load()
    return SELECTORS.get(name)(**settings)


def choose_base(target: TargetData, n_base: int, seed: int, select: str | Selector = "random", *,
                cache_dir: str | os.PathLike | None | object = _DEFAULT) -> tuple[np.ndarray, dict]:
    """Pick the base set of a within-dataset problem with a selector.

    Args:
        target: the loaded target; the selector gets its training and validation splits only.
        n_base, seed: N and the run seed.
        select: a registered selector name (``list_selectors()``) or a :class:`Selector` instance.
        cache_dir: where trained selectors keep their choice (default: :func:`default_cache_dir`;
            None: no cache).
    Returns:
        (positions in ``target.train``, the record for the provenance: name, settings, what it
        sees, what it measured, the cache file and whether it was reused).
    Example:
        >>> pos, rec = choose_base(target, 100, 0, "paper-table7")
    """
    selector = get_selector(select) if isinstance(select, str) else select
    ctx = SelectionContext.from_target(target, n_base, seed)
    record = {"name": selector.name, "settings": selector.settings(), "sees": selector.sees}
    folder = default_cache_dir() if cache_dir is _DEFAULT else (None if cache_dir is None else Path(cache_dir))  # type: ignore[arg-type]
    path = None
    if selector.cached and folder is not None:
        key = {"target": target.name, "split_sha256": target.split_record.get("index_sha256"),
               "preprocessing": target.preprocessing.to_dict(), "n_base": int(n_base), "seed": int(seed),
               "selector": selector.name, "settings": selector.settings(), "arch": ctx.arch, "numerics": numerics_key()}
        path = cache_file(folder, key)
        stored = _read(path, key, target)
        if stored is not None:
            positions, details, seconds = stored
            return _checked(positions, ctx, selector.balanced), {**record, "details": details, "seconds": seconds,
                                              "cache": {"file": str(path), "reused": True}}
    start = time.perf_counter()
    result = selector.select(ctx)
    seconds = round(time.perf_counter() - start, 1)  # the choice's wall time (on reuse: when it was made)
    positions = _checked(result.positions, ctx, selector.balanced)
    record["details"] = result.details
    record["seconds"] = seconds
    if path is not None:
        index = np.asarray(target.train.index)[positions]
        atomic_write_json(path, {"key": key, "dataset_indices": [int(i) for i in index], "details": result.details,
                                 "seconds": seconds,
                                 "sha256": content_sha256(target.train.x[torch.as_tensor(positions, device=target.train.x.device)],
                                                          target.train.y[torch.as_tensor(positions, device=target.train.y.device)])})
        record["cache"] = {"file": str(path), "reused": False}
    return positions, record


def _checked(positions: np.ndarray, ctx: SelectionContext, balanced: bool = True) -> np.ndarray:
    p = check_selection(positions, ctx)
    if not balanced:
        return p
    counts = np.bincount(ctx.labels[p], minlength=ctx.num_classes)
    low = ctx.n_base // ctx.num_classes
    if counts.min() < low or counts.max() > low + 1:
        raise UserError(f"Selector returned an unbalanced set (class counts {counts.min()}..{counts.max()}, expected {low} or {low + 1})")
    return p


def _read(path: Path, key: dict, target: TargetData) -> tuple[np.ndarray, dict, float | None] | None:
    """The cached positions, details and seconds the choice took (None in files from before it was
    recorded), or None when absent, for another key, or not this data any more."""
    if not path.is_file():
        return None
    try:
        rec = read_json(path)
    except ArtifactError:
        return None
    if not isinstance(rec, dict) or rec.get("key") != _jsonish(key):
        return None
    index = np.asarray(target.train.index)
    where = {int(v): i for i, v in enumerate(index)}
    try:
        positions = np.array([where[int(i)] for i in rec["dataset_indices"]], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        return None
    t = torch.as_tensor(positions, device=target.train.x.device)
    if content_sha256(target.train.x[t], target.train.y[t]) != rec.get("sha256"):
        return None
    return positions, rec.get("details") or {}, rec.get("seconds")


def _jsonish(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d, default=str))
