"""Fetching catalog datasets with torchvision, only when the user asks (``download=True``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, UserError
from .catalog import DatasetEntry
from .raw import describe


def fetch_with_torchvision(entry: DatasetEntry, root: Path) -> None:
    """Download ``entry``'s official files into ``root`` in torchvision's layout.

    Args:
        entry: a catalog entry with ``torchvision`` set.
        root: the data root.
    """
    if entry.torchvision is None:
        raise DataError(f"Dataset '{entry.name}' cannot be downloaded automatically: {entry.how_to_get}")
    try:
        import torchvision.datasets as tvd  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise UserError(f"Downloading '{entry.name}' needs torchvision: pip install 'labeldistill[download]'") from None
    class_name, extra = entry.torchvision
    cls = getattr(tvd, class_name)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(root=str(root), train=train, download=True, **dict(extra))
    except Exception as e:  # network, disk and checksum failures all end the same way for the user
        raise DataError(f"Downloading '{entry.name}' into {root} failed ({describe(e)}); {entry.how_to_get}") from e
