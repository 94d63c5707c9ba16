"""Checks shared by the report tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path, min_side: int = 300) -> tuple[int, int]:
    """A real PNG, at least ``min_side`` pixels each way, and not blank."""
    path = Path(path)
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        w, h = im.size
        grey = np.asarray(im.convert("L"), dtype=np.float64)
    assert w >= min_side and h >= min_side, f"{path.name} is only {w}x{h}"
    assert grey.var() > 20.0, f"{path.name} looks blank (pixel variance {grey.var():.1f})"
    return w, h
