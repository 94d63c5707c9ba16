"""Keep freed CPU memory inside the process (glibc on Linux), so that a training step does not page-fault
its tensors in again every time.

PyTorch allocates CPU tensors with ``malloc``. glibc serves a block above its mmap threshold (128 KiB, rising
up to 32 MiB with use) with fresh pages from ``mmap`` and returns them with ``munmap`` on ``free``; a step
that allocates the same activations every time then has the kernel zero and map every page again. One
ConvNet-3 training step on 100 MNIST images on one thread of our CPU: 110,000 minor page faults and 0.23 s of
system time per step, 1.03 s -> 0.71 s with the threshold raised (session 9; the long runs spent a quarter of
their CPU time in the kernel). Where memory comes from never changes arithmetic: the same numbers bit for bit
(tests/test_allocator.py).

:func:`keep_freed_memory` raises the mmap threshold to 1 GiB and the trim threshold to 2 GiB with
``mallopt``: blocks below 1 GiB are then served from, and freed back to, the process's heap. The price is
that the process keeps its peak memory until it ends, which suits the one-job processes of the
``labeldistill`` command (it calls this at start, as does each Ray task); a program that imports the library
decides for itself (nothing happens on import). ``LABELDISTILL_KEEP_FREED_MEMORY=0`` turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks above this still get their own mapping
TRIM_THRESHOLD = (1 << 31) - 1  # free heap top kept up to this (an int for mallopt)
ENV = "LABELDISTILL_KEEP_FREED_MEMORY"

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True when they were set.

    False (and nothing changed) off Linux, on a C library without ``mallopt`` (musl), or with
    ``LABELDISTILL_KEEP_FREED_MEMORY=0``.
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; setting either threshold also stops glibc's dynamic threshold.
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done

