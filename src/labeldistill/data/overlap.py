"""Which base-image candidates of a source are the target's own images.

A source and its target may read the same files: ``--source mnist --target mnist``, or
``--source npz:.../mnist_train.npz --target mnist``. The source's pool is its whole training part,
which then holds the target's validation images (and, for a file that is the target's test part,
its test images). :func:`own_train_mask` tells, for every candidate, whether it may be a base
image: candidates read from a file the target also reads are kept only when they are in the
target's *training split*; candidates from other files are all kept.

Images are identified by (file, position in that file). Files are compared by their real path,
so two spellings of one file match; a part with no file (a built-in dataset) is identified by
the dataset name and part.
"""

from __future__ import annotations

import os

import numpy as np

from .tensors import SourceData, TargetData


def _file_ids(files: dict[str, str], dataset: str) -> dict[str, str]:
    """part -> an id of the file it was read from (real path; part-qualified when two parts share one)."""
    ids = {}
    for part in ("train", "test"):
        path = files.get(part)
        if path is None:
            ids[part] = f"{dataset}#{part}"
            continue
        real = os.path.realpath(path) if os.path.isabs(path) else path
        others = [files[p] for p in ("train", "test") if p != part and p in files]
        ids[part] = f"{real}#{part}" if path in others else real  # e.g. CUB: both parts from one folder
    return ids


def locate(
    files: dict[str, str], pool_sizes: dict[str, int], dataset: str, index: np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Split pooled positions ``index`` by the file they come from.

    Returns:
        (file id, mask over ``index``, positions within that file) per part that holds any of them.
    """
    index = np.asarray(index, dtype=np.int64)
    n_train = int(pool_sizes["train"]) if "train" in pool_sizes else int(index.max(initial=-1)) + 1
    ids = _file_ids(files, dataset)
    in_train = index < n_train
    out = []
    if in_train.any():
        out.append((ids["train"], in_train, index[in_train]))
    if (~in_train).any():
        out.append((ids["test"], ~in_train, index[~in_train] - n_train))
    return out


def _source_files(target: TargetData, source: SourceData) -> tuple[dict[str, str], dict[str, int]]:
    # A SourceData made by hand without its files, but named like the target, reads the target's files.
    if not source.files and source.name == target.name:
        return target.split_record.get("files") or {}, target.split_record.get("pool_sizes") or {}
    return source.files, source.pool_sizes


def shared_files(target: TargetData, source: SourceData) -> list[str]:
    """The files (ids) that both the target and the source's candidate pool read, sorted."""
    t_ids = set(_file_ids(target.split_record.get("files") or {}, target.name).values())
    files, sizes = _source_files(target, source)
    return sorted({fid for fid, _, _ in locate(files, sizes, source.name, source.images.index) if fid in t_ids})


def own_train_mask(target: TargetData, source: SourceData) -> np.ndarray:
    """True for each source candidate that may be a base image for ``target``.

    A candidate read from a file the target also reads is allowed only when it is in the
    target's training split (never its validation or test split); other candidates are allowed.
    """
    rec = target.split_record
    t_files, t_sizes = rec.get("files") or {}, rec.get("pool_sizes") or {}
    t_ids = set(_file_ids(t_files, target.name).values())
    train_by_file = {fid: pos for fid, _, pos in locate(t_files, t_sizes, target.name, target.train.index)}
    keep = np.ones(len(source.images), dtype=bool)
    files, sizes = _source_files(target, source)
    for fid, where, pos in locate(files, sizes, source.name, source.images.index):
        if fid in t_ids:
            keep[np.flatnonzero(where)] = np.isin(pos, train_by_file.get(fid, np.empty(0, dtype=np.int64)))
    return keep
