"""An image folder: one sub-folder of images per class (class names = sorted sub-folder names)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import DataError
from .images import GREY_MODES, IMAGE_SUFFIXES, decode, peek

# Images of mixed sizes are all resized to this side (the paper's colour size).
MIXED_SIZE = 32


def list_image_folder(root: Path) -> tuple[list[str], list[list[Path]]]:
    """Class names and the image files of each class, both sorted.

    Args:
        root: a folder with one sub-folder per class.
    """
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(f"{root}: an image folder needs at least two class sub-folders, found {len(class_dirs)}")
    files = []
    for d in class_dirs:
        fs = sorted(
            p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
        if not fs:
            raise DataError(f"{d}: class folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files.append(fs)
    return [d.name for d in class_dirs], files


def read_image_folder(root: Path, size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read every image of an image folder.

    Images are converted to greyscale ("L") when all are greyscale, else to RGB. They are
    resized to ``size×size`` when it is given (squashed, not cropped); else they keep their size
    when all share one, and are all resized to 32×32 otherwise.

    Args:
        root: a folder with one sub-folder of images per class.
        size: side to resize every image to while reading, or None.
    """
    class_names, files = list_image_folder(root)
    flat = [p for fs in files for p in fs]
    y = np.repeat(np.arange(len(files), dtype=np.int64), [len(fs) for fs in files])
    headers = [peek(p) for p in flat]  # header-only pass: decide mode and size before decoding
    mode = "L" if all(m in GREY_MODES for _, m in headers) else "RGB"
    sizes = Counter(s for s, _ in headers)
    target = (size, size) if size else None if len(sizes) == 1 else (MIXED_SIZE, MIXED_SIZE)
    w, h = target or next(iter(sizes))
    x = np.empty((len(flat), h, w) if mode == "L" else (len(flat), h, w, 3), dtype=np.uint8)
    for i, p in enumerate(flat):
        arr = decode(p, mode, target)
        if arr.shape != x.shape[1:]:
            raise DataError(f"{p}: decoded to shape {arr.shape}, its header said {x.shape[1:]}")
        x[i] = arr
    return x, y, class_names


def count_image_folder(root: Path) -> int:
    """Number of image files (no decoding)."""
    return sum(len(fs) for fs in list_image_folder(root)[1])
