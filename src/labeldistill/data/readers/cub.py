"""CUB-200-2011: ``CUB_200_2011/images/<class dir>/*.jpg`` plus its three index files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..raw import RawDataset, describe
from .images import decode

INDEX_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt")


def _read_table(path: Path) -> dict[int, str]:
    """``<id> <value>`` lines -> {id: value}."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({describe(e)})") from e
    table: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}:{lineno}: expected '<id> <value>', found {line[:60]!r}")
        table[int(parts[0])] = parts[1].strip()
    if not table:
        raise DataError(f"{path}: empty")
    return table


def _tables(base: Path) -> tuple[list[int], dict[int, str], dict[int, str], dict[int, str]]:
    images, labels, is_train = (_read_table(base / f) for f in INDEX_FILES)
    ids = sorted(images)
    for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train)):
        if set(table) != set(ids):
            raise DataError(f"{base / name}: image ids differ from images.txt")
    return ids, images, labels, is_train


def count_cub(base: Path) -> dict[str, int]:
    """Official train/test counts from ``train_test_split.txt``."""
    _, _, _, is_train = _tables(base)
    n_train = sum(v == "1" for v in is_train.values())
    return {"train": n_train, "test": len(is_train) - n_train}


def read_cub(base: Path, size: int) -> RawDataset:
    """Read CUB-200-2011 at ``size×size`` RGB (squashed, like the paper's 32×32 resize).

    Args:
        base: the ``CUB_200_2011`` folder.
        size: output side in pixels.
    """
    ids, images, labels, is_train = _tables(base)
    try:
        y = np.array([int(labels[i]) for i in ids], dtype=np.int64) - 1  # files count classes from 1
        train_mask = np.array([int(is_train[i]) for i in ids]) == 1
    except ValueError as e:
        raise DataError(f"{base}: non-numeric label or split value ({describe(e)})") from e
    if y.min() < 0:
        raise DataError(f"{base / 'image_class_labels.txt'}: labels out of range (classes count from 1)")
    # Class names from the image folders: "001.Black_footed_Albatross" -> "Black_footed_Albatross".
    names: dict[int, str] = {}
    for i, label in zip(ids, y, strict=True):
        folder = images[i].replace("\\", "/").split("/")[0]
        names.setdefault(int(label), re.sub(r"^\d+\.", "", folder))
    num_classes = int(y.max()) + 1
    if len(names) != num_classes:
        raise DataError(f"{base / 'image_class_labels.txt'}: classes 1..{num_classes} are not all used")
    x = np.empty((len(ids), size, size, 3), dtype=np.uint8)
    img_root = base / "images"
    for k, i in enumerate(ids):
        rel = Path(images[i])
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"{base / 'images.txt'}: image path {images[i]!r} leaves the images folder")
        path = img_root / rel
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        x[k] = decode(path, "RGB", (size, size))
    return RawDataset(
        train_x=x[train_mask],
        train_y=y[train_mask],
        test_x=x[~train_mask],
        test_y=y[~train_mask],
        class_names=[names[c] for c in range(num_classes)],
        files={"train": str(base), "test": str(base)},
    )
