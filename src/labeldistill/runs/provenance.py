"""What a run records about the software it ran on: versions, the code, the numerics."""
from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..numerics import NUMERICS_VERSION

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def source_sha256(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 over the package's ``.py`` files (relative path + bytes, in sorted order).

    Identifies the code where no git is present (a copied tree, an installed wheel)."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        h.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_identity() -> dict:
    """The code that makes a result: git commit and dirty flag (None without git) and a source hash.

    ``dirty`` is True when tracked files of the checkout differ from the commit; the source hash
    tells two dirty (or git-less) copies apart.
    """
    # Only a checkout that tracks this package counts (not a repository the install happens to sit in).
    tracked = _git(["ls-files", "__init__.py"], PACKAGE_DIR)
    commit = _git(["rev-parse", "HEAD"], PACKAGE_DIR) if tracked else None
    dirty = None
    if commit is not None:
        status = _git(["status", "--porcelain", "--untracked-files=no"], PACKAGE_DIR)
        dirty = bool(status) if status is not None else None
    return {"numerics_version": NUMERICS_VERSION, "git_commit": commit, "git_dirty": dirty, "source_sha256": source_sha256()}


def pin_code_identity() -> dict:
    """Take :func:`code_identity` now, at the start of a job, so that every record of the process names the code it
    started with: the first call is kept, and a long run writes its records hours later, when the tree on disk may hold
    other code (session 32: a run started at one commit recorded the commit made an hour into it)."""
    return code_identity()


def versions() -> dict:
    return {
        "labeldistill": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cuda": torch.version.cuda or "none",
        **code_identity(),
    }


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> 'cuda' when available, else 'cpu'."""
    from ..errors import UserError

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} asked for, but no CUDA device is available; use --device cpu.")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise UserError(f"Unknown device '{device}'. Known: auto, cpu, cuda, cuda:N.")
    return device


def numerics_of(record: dict) -> int | None:
    """The numerics version a run record (config.json or a baseline's result.json) was made with."""
    v = (record.get("versions") or {}).get("numerics_version")
    return int(v) if isinstance(v, int) else None
