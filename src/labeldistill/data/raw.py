"""Raw datasets as read from disk: uint8 images and int64 labels, validated once.

Images are kept as stored: ``N×H×W`` (greyscale) or ``N×H×W×3`` (RGB, channels last).
Every reader funnels its arrays through :func:`check_images` and :func:`check_labels`, so a
bad file fails the same way whatever its format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError


def describe(exc: BaseException) -> str:
    """A short one-line description of a low-level exception, for wrapping in DataError."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def check_images(x: object, where: str) -> np.ndarray:
    """Validate an image array and return it as C-contiguous uint8 ``N×H×W`` or ``N×H×W×3``.

    Args:
        x: the array read from a file.
        where: the file (or file and array name) named in error messages.
    """
    if not isinstance(x, np.ndarray):
        raise DataError(f"{where}: images are not an array")
    if x.dtype.kind not in "ui":
        raise DataError(
            f"{where}: images have dtype {x.dtype}, expected uint8 pixels 0..255"
            + (" (convert floats with (x*255).round().astype('uint8'))" if x.dtype.kind == "f" else "")
        )
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        hint = "; channels-first? use x.transpose(0, 2, 3, 1)" if x.ndim == 4 and x.shape[1] in (1, 3) else ""
        raise DataError(f"{where}: images have shape {x.shape}, expected N×H×W or N×H×W×3{hint}")
    if min(x.shape[:3]) == 0:
        raise DataError(f"{where}: images have shape {x.shape}, which holds no pixels")
    if x.dtype != np.uint8:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: pixel values span {lo}..{hi}, expected 0..255")
        x = x.astype(np.uint8)
    return np.ascontiguousarray(x)


def check_labels(y: object, n: int, where: str, num_classes: int | None = None) -> np.ndarray:
    """Validate a label vector for ``n`` images and return it as int64.

    Args:
        y: the array read from a file.
        n: the number of images the labels belong to.
        where: the file named in error messages.
        num_classes: when given, labels must lie in ``0..num_classes-1``; otherwise only >= 0.
    """
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "ui":
        kind = getattr(y, "dtype", type(y).__name__)
        raise DataError(f"{where}: labels have type {kind}, expected integers")
    if y.ndim != 1:
        raise DataError(f"{where}: labels have shape {y.shape}, expected a 1-D vector")
    if len(y) != n:
        raise DataError(f"{where}: {len(y)} labels for {n} images")
    if y.dtype == np.uint64 and len(y) and int(y.max()) > np.iinfo(np.int64).max:
        raise DataError(f"{where}: labels out of range (max {int(y.max())})")
    y = y.astype(np.int64)
    if len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            expected = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
            raise DataError(f"{where}: labels out of range: found {lo}..{hi}, expected {expected}")
    return y


@dataclass
class RawDataset:
    """The official parts of a dataset, as validated uint8/int64 arrays.

    The *pooled raw array* is the official train part followed by the official test part;
    provenance indices (``LabelledTensors.index``) are positions in it.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    class_names: list[str] | None = None
    files: dict[str, str] = field(default_factory=dict)  # part -> file or folder it came from

    @property
    def has_test(self) -> bool:
        return self.test_x is not None

    @property
    def n_train(self) -> int:
        return len(self.train_y)

    @property
    def n_test(self) -> int:
        return 0 if self.test_y is None else len(self.test_y)

    @property
    def pooled_y(self) -> np.ndarray:
        if self.test_y is None:
            return self.train_y
        return np.concatenate([self.train_y, self.test_y])

    def take(self, index: np.ndarray) -> np.ndarray:
        """Images at pooled positions ``index`` (copied, uint8)."""
        index = np.asarray(index, dtype=np.int64)
        if self.test_x is None:
            return self.train_x[index]
        n = self.n_train
        in_train = index < n
        if in_train.all():
            return self.train_x[index]
        if not in_train.any():
            return self.test_x[index - n]
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DataError("train and test images differ in shape; cannot mix them in one split")
        out = np.empty((len(index), *self.train_x.shape[1:]), dtype=np.uint8)
        out[in_train] = self.train_x[index[in_train]]
        out[~in_train] = self.test_x[index[~in_train] - n]
        return out
