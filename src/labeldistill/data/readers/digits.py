"""scikit-learn's bundled 8×8 digits (1,797 images, no download, no official test split)."""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..raw import RawDataset, describe


def read_digits() -> RawDataset:
    """Load ``sklearn.datasets.load_digits`` as uint8 8×8 images (values 0..16 scaled to 0..255)."""
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415  (import only when asked for)

        bunch = load_digits()
    except Exception as e:  # missing scikit-learn or a broken install
        raise DataError(f"cannot load scikit-learn's digits ({describe(e)}); pip install scikit-learn") from e
    x = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    y = np.asarray(bunch.target, dtype=np.int64)
    return RawDataset(
        train_x=x, train_y=y, class_names=[str(i) for i in range(10)], files={"train": "sklearn.datasets.load_digits"}
    )
