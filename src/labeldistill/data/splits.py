"""Seeded, stratified splits of a labelled pool, and the record that makes them reproducible."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..errors import DataError, UserError

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def stratified_partition(y: np.ndarray, sizes: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Partition positions ``0..len(y)-1`` into parts of exactly ``sizes``, spreading every class
    over the parts in proportion (each class's count in a part is within about one of its share).

    Every item gets a key = its (random) rank within its class divided by the class size; sorting
    by the key and cutting at the cumulative sizes gives each class its share of every part, and
    no per-class loop. Ties between classes are broken at random, so class-sorted input (e.g. the
    shared ``cifar10_train.npz``) gives mixed parts.

    Args:
        y: int labels.
        sizes: part sizes, summing to ``len(y)``.
        rng: the random stream (e.g. ``seeding.numpy_generator(seed, "split")``).

    Returns:
        One sorted int64 index array per part.
    """
    y = np.asarray(y)
    n = len(y)
    if sum(sizes) != n or any(s < 0 for s in sizes):
        raise ValueError(f"part sizes {list(sizes)} do not partition {n} items")
    order = rng.permutation(n)
    order = order[np.argsort(y[order], kind="stable")]  # grouped by class, random within
    _, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(n) - starts[group]
    key = (rank + 0.5) / counts[group]
    tiebreak = rng.permutation(n)
    final = order[np.lexsort((tiebreak, key))]
    return [np.sort(p).astype(np.int64) for p in np.split(final, np.cumsum(sizes)[:-1])]


def check_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    """Validate ``(train, val, test)`` fractions: three numbers > 0 summing to 1."""
    try:
        fr = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        raise UserError(f"split must be three fractions (train, val, test), got {split!r}") from None
    if len(fr) != 3 or not all(np.isfinite(fr)) or min(fr) <= 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise UserError(f"split must be three fractions (train, val, test), each > 0, summing to 1; got {split!r}")
    return fr  # type: ignore[return-value]


def split_by_fractions(
    y: np.ndarray, fractions: Sequence[float], rng: np.random.Generator, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/val/test split of one pool by fractions.

    Args:
        y: labels of the pool.
        fractions: (train, val, test), validated by :func:`check_fractions`.
        rng: the split stream.
        where: dataset named in errors.
    """
    n = len(y)
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise DataError(
            f"{where}: {n} images are too few to split {list(fractions)} into non-empty train/val/test parts"
        )
    train, val, test = stratified_partition(y, (n_train, n_val, n_test), rng)
    return train, val, test


def validation_count(val_size: int | float, n_train: int) -> int:
    """Validation images for a train part of ``n_train``: a count, or a fraction of it."""
    return int(val_size) if isinstance(val_size, int) else round(n_train * float(val_size))


def split_off_validation(
    y: np.ndarray, n_val: int, rng: np.random.Generator, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/val split of an official train part.

    Args:
        y: labels of the official train part.
        n_val: validation images to set aside.
        rng: the split stream.
        where: dataset named in errors.
    """
    n = len(y)
    if not 1 <= n_val < n:
        raise DataError(f"{where}: the training part has {n} images; cannot set aside {n_val} for validation")
    train, val = stratified_partition(y, (n - n_val, n_val), rng)
    return train, val


def stratified_subset(y: np.ndarray, index: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """A stratified random subset of ``m`` of ``index`` (paper Table 8: smaller target sets).

    Args:
        y: labels of the items in ``index`` (same length).
        index: the candidate positions.
        m: how many to keep.
        rng: the ``target-subset`` stream.
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= len(index):
        raise UserError(f"target_size must be an integer from 1 to {len(index)} (the training split), got {m!r}")
    if m == len(index):
        return index
    keep, _ = stratified_partition(y, (int(m), len(index) - int(m)), rng)
    return index[keep]


def index_sha256(*parts: np.ndarray) -> str:
    """sha256 of the concatenated index arrays as little-endian int64."""
    cat = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
    return hashlib.sha256(cat.astype("<i8").tobytes()).hexdigest()
