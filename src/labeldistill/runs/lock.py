"""One writer per run directory: an OS lock that disappears with its process.

``fcntl.flock`` is released by the kernel when the process dies (even on SIGKILL), so a
killed run can always be resumed, while a second live run on the same directory is refused.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import UserError


class RunLock:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{self.path.parent} is in use by another running labeldistill process; use another --out.") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    @staticmethod
    def check_free(run_dir: str | Path) -> None:
        """Raise the "in use" error when a live process holds ``run_dir``'s lock (creates nothing)."""
        path = Path(run_dir) / ".lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return  # no lock file: nobody has taken the directory
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            raise UserError(f"{path.parent} is in use by another running labeldistill process; use another --out.") from None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
