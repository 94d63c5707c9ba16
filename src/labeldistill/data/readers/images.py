"""Decoding single image files with Pillow, turning every decoder failure into DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..raw import describe

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# Modes whose pixels carry no colour; a folder of only these is read as greyscale.
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F", "La"})


def _pil():
    from PIL import Image  # noqa: PLC0415  (Pillow comes with matplotlib; import only when reading images)

    return Image


def peek(path: Path) -> tuple[tuple[int, int], str]:
    """``((width, height), mode)`` from the header, without decoding the pixels."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except Exception as e:  # Pillow raises many types on corrupt headers (OSError, SyntaxError, struct.error, ...)
        raise DataError(f"{path}: cannot read image ({describe(e)})") from e


def decode(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """Decode ``path`` to a uint8 array in ``mode`` ("L" or "RGB"), resized to ``size`` (w, h) if given.

    Args:
        path: the image file.
        mode: "L" or "RGB".
        size: (width, height) to resize to with Pillow's antialiased bilinear filter, or None.
    """
    Image = _pil()
    try:
        with Image.open(path) as im:
            if size is not None and im.format == "JPEG":
                # Let libjpeg decode at a reduced scale (still >= 2x the target): CUB's 11,788
                # photos otherwise spend most of their time in full-size decoding.
                im.draft(mode, (2 * size[0], 2 * size[1]))
            im = im.convert(mode)
            if size is not None and im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # truncated data, bad CRCs, decompression bombs, unknown formats, ...
        raise DataError(f"{path}: cannot decode image ({describe(e)})") from e
    expected = (im.size[1], im.size[0]) if mode == "L" else (im.size[1], im.size[0], 3)
    if arr.shape != expected:
        raise DataError(f"{path}: decoded to shape {arr.shape}, expected {expected}")
    return arr
