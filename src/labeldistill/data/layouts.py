"""Where each on-disk layout keeps its files under the data root, and how to read it.

A *finder* looks for one layout (torchvision's IDX folders, the KMNIST npz files, the CIFAR
python batches, the CUB folder, a ``<name>_train.npz`` / ``<name>_test.npz`` pair) and returns a
:class:`Located` when any of its files exist: complete (``missing`` empty) or not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .raw import RawDataset, check_images, check_labels
from .readers.cifar import count_cifar_batch, read_cifar_batch
from .readers.cub import INDEX_FILES, count_cub, read_cub
from .readers.idx import idx_header, read_idx
from .readers.npz import read_arr0, read_npz_labels, read_xy_npz


@dataclass
class Located:
    """One layout found under the data root.

    Attributes:
        where: the folder (or file) it was found in.
        read: reads it (``read(size)``; ``size`` matters only for layouts that resize, i.e. CUB).
        count: cheap official counts ``{"train": n, "test": n or None}``.
        missing: files the layout needs but that are absent (empty when complete).
        present: the files that were found (for messages).
    """

    where: Path
    read: Callable[[int | None], RawDataset]
    count: Callable[[], dict[str, int | None]]
    missing: tuple[Path, ...] = ()
    present: tuple[Path, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing


Finder = Callable[[Path, str], "Located | None"]


def file_stems(name: str) -> list[str]:
    """File-name stems for a dataset name: itself and with ``-`` written as ``_``."""
    stems = [name, name.replace("-", "_")]
    return list(dict.fromkeys(stems))


def _pick(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def idx_layout(dirs: Sequence[str], train: str, test: str, *, transform: Callable | None = None) -> Finder:
    """torchvision's IDX layout: ``<dir>/{train}-images-idx3-ubyte[.gz]`` and friends.

    Args:
        dirs: folders under the root to search, first match wins.
        train: file prefix of the train part ("train", "emnist-letters-train").
        test: file prefix of the test part ("t10k", "emnist-letters-test").
        transform: applied to ``(x, y)`` of each part after reading (EMNIST's transpose).
    """
    stems = {
        "train_x": f"{train}-images-idx3-ubyte",
        "train_y": f"{train}-labels-idx1-ubyte",
        "test_x": f"{test}-images-idx3-ubyte",
        "test_y": f"{test}-labels-idx1-ubyte",
    }

    def find(root: Path, name: str) -> Located | None:
        for d in dirs:
            folder = root / d
            found = {k: _pick(folder, s) for k, s in stems.items()}
            present = tuple(p for p in found.values() if p is not None)
            if not present:
                continue
            missing = tuple(folder / f"{stems[k]}.gz" for k, p in found.items() if p is None)

            def read(_size: int | None, found=found) -> RawDataset:
                parts = {}
                for part in ("train", "test"):
                    px, py = found[f"{part}_x"], found[f"{part}_y"]
                    x = check_images(read_idx(px, 3), str(px))
                    y = check_labels(read_idx(py, 1), len(x), str(py))
                    parts[part] = transform(x, y, py) if transform else (x, y)
                return RawDataset(
                    *parts["train"],
                    *parts["test"],
                    files={"train": str(found["train_x"]), "test": str(found["test_x"])},
                )

            def count(found=found) -> dict[str, int | None]:
                return {part: idx_header(found[f"{part}_x"])[0] for part in ("train", "test")}

            return Located(folder, read, count, missing, present)
        return None

    return find


def arr0_layout(prefix: str, dirs: Sequence[str]) -> Finder:
    """The official KMNIST / Kuzushiji-49 npz files: ``{prefix}-{train,test}-{imgs,labels}.npz`` (array ``arr_0``).

    Args:
        prefix: "kmnist" or "k49".
        dirs: folders under the root to search ("" is the root itself).
    """
    names = {
        f"{part}_{kind}": f"{prefix}-{part}-{kind}.npz" for part in ("train", "test") for kind in ("imgs", "labels")
    }

    def find(root: Path, name: str) -> Located | None:
        for d in dirs:
            folder = root / d
            found = {k: folder / f for k, f in names.items()}
            present = tuple(p for p in found.values() if p.is_file())
            if not present:
                continue
            missing = tuple(p for p in found.values() if not p.is_file())

            def read(_size: int | None, found=found) -> RawDataset:
                parts = {}
                for part in ("train", "test"):
                    px, py = found[f"{part}_imgs"], found[f"{part}_labels"]
                    x = check_images(read_arr0(px), str(px))
                    parts[part] = (x, check_labels(read_arr0(py), len(x), str(py)))
                return RawDataset(
                    *parts["train"],
                    *parts["test"],
                    files={"train": str(found["train_imgs"]), "test": str(found["test_imgs"])},
                )

            def count(found=found) -> dict[str, int | None]:
                return {part: len(read_arr0(found[f"{part}_labels"])) for part in ("train", "test")}

            return Located(folder, read, count, missing, present)
        return None

    return find


def cifar_layout(folder: str, train_files: Sequence[str], test_file: str, label_key: str) -> Finder:
    """The CIFAR python batches folder (``cifar-10-batches-py`` or ``cifar-100-python``).

    Args:
        folder: the batches folder name, searched in the root and in ``<root>/<name>``.
        train_files: training batch file names, in order.
        test_file: the test batch file name.
        label_key: "labels" or "fine_labels".
    """

    def find(root: Path, name: str) -> Located | None:
        for base in (root / folder, root / name / folder):
            train = [base / f for f in train_files]
            test = base / test_file
            present = tuple(p for p in (*train, test) if p.is_file())
            if not present:
                continue
            missing = tuple(p for p in (*train, test) if not p.is_file())

            def read(_size: int | None, train=train, test=test, base=base) -> RawDataset:
                batches = [read_cifar_batch(p, label_key) for p in train]
                tx, ty = read_cifar_batch(test, label_key)
                return RawDataset(
                    np.concatenate([b[0] for b in batches]),
                    np.concatenate([b[1] for b in batches]),
                    tx,
                    ty,
                    files={"train": str(base), "test": str(test)},
                )

            def count(train=train, test=test) -> dict[str, int | None]:
                return {
                    "train": sum(count_cifar_batch(p, label_key) for p in train),
                    "test": count_cifar_batch(test, label_key),
                }

            return Located(base, read, count, missing, present)
        return None

    return find


def cub_layout(default_size: int) -> Finder:
    """``CUB_200_2011/`` (with ``images/`` and its index files), in the root or ``<root>/<name>``.

    Args:
        default_size: side to resize to when the caller does not ask for one.
    """

    def find(root: Path, name: str) -> Located | None:
        for base in (root / "CUB_200_2011", root / name / "CUB_200_2011"):
            needed = [base / f for f in INDEX_FILES] + [base / "images"]
            present = tuple(p for p in needed if p.exists())
            if not present:
                continue
            missing = tuple(p for p in needed if not p.exists())
            return Located(
                base,
                lambda size, base=base: read_cub(base, size or default_size),
                lambda base=base: dict(count_cub(base)),
                missing,
                present,
            )
        return None

    return find


def test_part_layout(npz_stem: str, cifar_folder: str, label_key: str) -> Finder:
    """A dataset of which only the official *test* images are here, read as one pool (no test part):
    ``<npz_stem>_test.npz`` (arrays ``x``, ``y``; other arrays such as ``names`` are ignored) in the
    root, else the test batch of the python CIFAR folder (``<cifar_folder>/test``).

    The pool is then split by fractions like any single file, so its "test" split is a part of
    the official test images. Used for stand-ins (``cifar100-test-stand-in``).

    Args:
        npz_stem: file stem of the npz pair ("cifar100" -> ``cifar100_test.npz``).
        cifar_folder: the python batches folder ("cifar-100-python").
        label_key: "labels" or "fine_labels" for the batch file.
    """

    def find(root: Path, name: str) -> Located | None:
        npz = root / f"{npz_stem}_test.npz"
        if npz.is_file():

            def read(_size: int | None, npz=npz) -> RawDataset:
                x, y, _names = read_xy_npz(npz)
                return RawDataset(x, y, files={"train": str(npz)})

            return Located(npz, read, lambda npz=npz: {"train": len(read_npz_labels(npz)), "test": None}, (), (npz,))
        for batch in (root / cifar_folder / "test", root / name / cifar_folder / "test"):
            if batch.is_file():

                def read_batch(_size: int | None, batch=batch) -> RawDataset:
                    x, y = read_cifar_batch(batch, label_key)
                    return RawDataset(x, y, files={"train": str(batch)})

                count = lambda batch=batch: {"train": count_cifar_batch(batch, label_key), "test": None}  # noqa: E731
                return Located(batch, read_batch, count, (), (batch,))
        return None

    return find


def pair_layout(root: Path, name: str) -> Located | None:
    """``<name>_train.npz`` (+ optional ``<name>_test.npz``) in the root, ``-`` also written ``_``."""
    for stem in file_stems(name):
        train, test = root / f"{stem}_train.npz", root / f"{stem}_test.npz"
        if not train.is_file() and not test.is_file():
            continue
        if not train.is_file():
            return Located(test, _unreadable(train), lambda: {}, missing=(train,), present=(test,))
        has_test = test.is_file()

        def read(_size: int | None, train=train, test=test, has_test=has_test) -> RawDataset:
            x, y, names = read_xy_npz(train)
            tx = ty = None
            if has_test:
                tx, ty, test_names = read_xy_npz(test)
                if tx.shape[1:] != x.shape[1:]:
                    raise DataError(f"{test}: images are {tx.shape[1:]}, but {train} holds {x.shape[1:]}")
                names = names or test_names
            files = {"train": str(train)} | ({"test": str(test)} if has_test else {})
            return RawDataset(x, y, tx, ty, class_names=names, files=files)

        def count(train=train, test=test, has_test=has_test) -> dict[str, int | None]:
            return {"train": len(read_npz_labels(train)), "test": len(read_npz_labels(test)) if has_test else None}

        return Located(train, read, count, (), (train, test) if has_test else (train,))
    return None


def _unreadable(path: Path) -> Callable[[int | None], RawDataset]:
    def read(_size: int | None) -> RawDataset:
        raise DataError(f"{path}: file not found")

    return read
