"""What a run records about the software it ran on."""
from __future__ import annotations

import platform
import sys

import numpy as np
import torch


def versions() -> dict[str, str]:
    from .. import __version__

    return {
        "labeldistill": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cuda": torch.version.cuda or "none",
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
