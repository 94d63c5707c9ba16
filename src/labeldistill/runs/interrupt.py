"""A stop request for long loops: Ctrl-C (SIGINT) or SIGTERM asks the loop to checkpoint and stop.

The first signal sets ``requested``; the loop checks it between steps, writes its checkpoint and
stops with a one-line message. A second one stops at once (``KeyboardInterrupt``). SIGTERM is what
batch schedulers (SLURM, Kubernetes) send before they kill a preempted job, so a preempted run
loses nothing: it resumes from the step it stopped at. Handlers are installed only in the main
thread (Python allows no other) and restored on exit, so nested or repeated loops compose.
"""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager; ``requested`` turns True on the first SIGINT / SIGTERM inside it."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None  # which signal asked, for messages
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:  # the second signal stops at once
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()
