"""CIFAR-10 / CIFAR-100 python batches, read with a restricted unpickler.

The batches are pickles; a plain ``pickle.load`` of a file from the internet can run any code.
The unpickler below only rebuilds numpy arrays and plain containers and refuses everything else.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..raw import check_images, check_labels, describe


def _latin1_encode(text: object, encoding: str = "latin1") -> bytes:
    # Python 3 pickles bytes with protocol 2 as _codecs.encode(str, "latin1"); allow only that.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("refusing _codecs.encode with arguments other than (str, 'latin1')")
    return text.encode("latin1")


def _allowed() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _numeric_dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    # Files pickled under numpy 1 name numpy.core, under numpy 2 numpy._core.
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = _frombuffer_safe
    return allowed


_NUMERIC = "biufc"  # the dtype kinds a batch holds; object, void, string and structured dtypes are refused


def _numeric_dtype(spec: object, *args: object) -> np.dtype:
    # np.dtype as the pickle calls it; a dtype of another kind (objects: pointers read from the file) is refused.
    try:
        d = np.dtype(spec)  # type: ignore[call-overload]
    except Exception as e:  # noqa: BLE001  (any malformed spec)
        raise DataError(f"refusing dtype {spec!r} ({type(e).__name__})") from None
    if d.kind not in _NUMERIC or d.fields is not None or d.subdtype is not None:
        raise DataError(f"refusing non-numeric dtype {d}")
    return d


def _frombuffer_safe(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    # numpy's protocol-5 rebuild helper; reimplemented so nothing outside numpy arrays is reachable.
    arr = np.frombuffer(buf, dtype=_numeric_dtype(dtype))  # type: ignore[arg-type]
    return arr.reshape(shape, order=order)  # type: ignore[arg-type]


def _check_dtype_state(d: np.dtype, state: object) -> None:
    # A dtype's pickled state sets its byte order, item size, alignment and flags; any but the ones numpy itself gives that
    # dtype (its byte order aside) make an inconsistent dtype (forged flags: numpy's "Internal error" or SystemError). A
    # fuzzed batch crashed the process inside this unpickler (session 51; the input was not kept): this is the path found.
    own = d.__reduce__()[2]
    if not (isinstance(state, tuple) and len(state) == len(own) and state[0] == own[0] and state[1] in ("<", ">", "|", "=")
            and state[2:] == own[2:]):
        raise DataError(f"refusing a dtype state {state!r} for {d}")


class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """An unpickler that can only rebuild numpy arrays of numeric dtypes and plain Python containers.

    Python's own unpickler (not the C one) so that BUILD, which calls ``__setstate__`` with whatever the file holds, can be
    checked: a dtype's state must be numpy's own for that dtype, an array's is numpy's to check (its size against its
    shape); nothing else is built. It costs about 25 ms more on a 10,000-image CIFAR-10 batch (247 against 223 ms with the
    C unpickler, protocol 2, one thread; session 51)."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file, *, where: str) -> None:
        super().__init__(file, encoding="bytes")
        self._where = where
        self._allowed = _allowed()

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
        elif not isinstance(inst, np.ndarray):
            raise DataError(f"refusing to set the state of a {type(inst).__name__} in {self._where}")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"refusing to unpickle {module}.{name} in {self._where}") from None

    def persistent_load(self, pid: object) -> object:
        raise DataError(f"refusing persistent ids in {self._where}")


def load_restricted_pickle(path: Path) -> object:
    """Unpickle ``path`` allowing only numpy arrays and plain containers.

    Args:
        path: the pickle file.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        # Unpickle from memory: from a file, a corrupt length field makes pickle ask read()
        # for gigabytes up front; BytesIO just returns what is there.
        data = path.read_bytes()
        return RestrictedUnpickler(io.BytesIO(data), where=str(path)).load()
    except DataError:
        raise
    except Exception as e:  # corrupt pickles raise nearly any type (UnpicklingError, struct, Unicode, ...)
        raise DataError(f"{path}: cannot read CIFAR batch ({describe(e)})") from e


def _str_keys(obj: dict) -> dict[str, object]:
    out = {}
    for k, v in obj.items():
        if isinstance(k, bytes):
            k = k.decode("latin1")
        if isinstance(k, str):
            out[k] = v
    return out


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR batch: images ``N×32×32×3`` uint8 and labels.

    Args:
        path: a batch file (``data_batch_1``, ``test_batch``, ``train``, ``test``).
        label_key: ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100).
    """
    obj = load_restricted_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR batch (expected a dict, found {type(obj).__name__})")
    d = _str_keys(obj)
    if "data" not in d or label_key not in d:
        raise DataError(f"{path}: not a CIFAR batch (needs keys 'data' and '{label_key}')")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be an N×3072 array, found {getattr(data, 'shape', type(data).__name__)}")
    # Rows hold the red, green and blue 32×32 planes one after another (channels first).
    x = check_images(np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), f"{path} (data)")
    labels = d[label_key]
    try:
        y = np.asarray(labels) if isinstance(labels, (list, tuple, np.ndarray)) else None
    except Exception as e:  # ragged or odd lists
        raise DataError(f"{path}: bad '{label_key}' ({describe(e)})") from e
    y = check_labels(y, len(x), f"{path} ({label_key})")
    return x, y


def count_cifar_batch(path: Path, label_key: str) -> int:
    """Number of images in a batch (unpickles it: about 0.1 s per batch)."""
    return len(read_cifar_batch(path, label_key)[1])
