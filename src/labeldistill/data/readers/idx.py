"""IDX files (MNIST, KMNIST, EMNIST), plain or gzipped, as torchvision stores them."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..raw import describe

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_READ_CHUNK = 1 << 24


def _read_up_to(f, count: int) -> bytes:
    # Read in chunks: a corrupt header may claim terabytes, and f.read(count) would try to
    # allocate all of it before noticing the file is short.
    parts: list[bytes] = []
    remaining = count
    while remaining > 0:
        block = f.read(min(remaining, _READ_CHUNK))
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


def idx_header(path: Path) -> tuple[int, ...]:
    """The dimensions stored in an IDX file's header (cheap: reads a few bytes)."""
    try:
        with _open(path) as f:
            head = _read_up_to(f, 4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[3] == 0:
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            raw_dims = _read_up_to(f, 4 * head[3])
            if len(raw_dims) < 4 * head[3]:
                raise DataError(f"{path}: truncated IDX header")
            return struct.unpack(">" + "I" * head[3], raw_dims)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, ValueError, struct.error) as e:
        raise DataError(f"{path}: cannot read ({describe(e)})") from e


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX array with ``ndim`` dimensions (3 for images, 1 for labels).

    Args:
        path: the file, ``.gz`` or not.
        ndim: the number of dimensions the file must have.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with _open(path) as f:
            head = _read_up_to(f, 4)
            if len(head) < 4 or head[:2] != b"\0\0":
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            code, nd = head[2], head[3]
            if nd != ndim:
                raise DataError(f"{path}: IDX file has {nd} dimensions, expected {ndim}")
            if code not in _DTYPES:
                raise DataError(f"{path}: unknown IDX element type 0x{code:02x}")
            raw_dims = _read_up_to(f, 4 * nd)
            if len(raw_dims) < 4 * nd:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(">" + "I" * nd, raw_dims)
            dtype = np.dtype(_DTYPES[code])
            count = math.prod(dims) * dtype.itemsize
            data = _read_up_to(f, count)
            if len(data) < count:
                raise DataError(f"{path}: truncated: header promises {count} bytes of data, found {len(data)}")
            if f.read(1):  # also makes gzip verify its CRC at the end of the stream
                raise DataError(f"{path}: longer than its IDX header says")
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, ValueError, struct.error) as e:
        raise DataError(f"{path}: cannot read ({describe(e)})") from e
    arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native order, writable copy
