"""NumPy ``.npz`` archives: plain ``x``/``y`` pairs and the official KMNIST/K-49 ``arr_0`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..cache import cached_npz_arrays
from ..raw import check_images, check_labels, describe


def _load(path: Path, keys: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as z:
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: not an npz archive")
        for k in keys:
            if k not in z.files:
                raise DataError(f"{path}: no array '{k}' (it holds: {', '.join(z.files) or 'nothing'})")
            out[k] = z[k]
        for k in optional:
            if k in z.files:
                out[k] = z[k]
    return out


def read_npz_arrays(
    path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = (), *, use_cache: bool = True
) -> dict[str, np.ndarray]:
    """Read arrays ``keys`` (required) and ``optional`` from an npz file, never unpickling.

    Args:
        path: the ``.npz`` file.
        keys: array names that must be present.
        optional: array names read when present.
        use_cache: serve LZMA/bzip2 archives from a decoded copy (see :mod:`..cache`).
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if use_cache:
            return cached_npz_arrays(path, keys, optional, _load)
        return _load(path, keys, optional)
    except DataError:
        raise
    except Exception as e:  # np.load on a corrupt zip raises a zoo of types (zlib, lzma, struct, ...)
        raise DataError(f"{path}: cannot read npz ({describe(e)})") from e


def read_xy_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Read an ``x``/``y`` npz (``x`` uint8 N×H×W[×3], ``y`` integer N; optional ``class_names``).

    Args:
        path: the ``.npz`` file.
    """
    arrays = read_npz_arrays(path, ("x", "y"), ("class_names",))
    x = check_images(arrays["x"], f"{path} (array x)")
    y = check_labels(arrays["y"], len(x), f"{path} (array y)")
    names = arrays.get("class_names")
    if names is not None:
        if names.dtype.kind != "U" or names.ndim != 1:
            raise DataError(f"{path}: class_names must be a 1-D array of strings")
        names = [str(s) for s in names]
    return x, y, names


def read_npz_labels(path: Path) -> np.ndarray:
    """Only the ``y`` array of an ``x``/``y`` npz (cheap: ``x`` is not decompressed)."""
    # No cache: decoding (and caching) x just to count labels would cost ~10 s on LZMA files.
    y = read_npz_arrays(path, ("y",), use_cache=False)["y"]
    if not isinstance(y, np.ndarray) or y.ndim != 1:
        raise DataError(f"{path}: array y must be 1-D")
    return y


def read_arr0(path: Path) -> np.ndarray:
    """The ``arr_0`` array of an official KMNIST / Kuzushiji-49 npz file."""
    return read_npz_arrays(path, ("arr_0",))["arr_0"]
