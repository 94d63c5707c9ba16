"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (bad name, missing file, bad shape).
The command line prints its message in at most three lines, without a traceback, and
exits non-zero. Library code raises it instead of ``assert`` so that Python users get
the same clear message.
"""
from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input; the message says what is wrong and how to fix it."""

    exit_code = 2
    prefix = "error: "  # how the command line introduces the message ("labeldistill: error: ...")


class DataError(UserError):
    """A dataset file is missing, truncated, corrupt or of the wrong shape."""


class ArtifactError(UserError):
    """A distilled-set or run file is unreadable, tampered with, or too new."""


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else raise a one-line UserError listing them."""
    options = sorted(choices)
    if value not in options:
        raise UserError(f"Unknown {kind} '{value}'. Known: {', '.join(options)}.")
    return value
