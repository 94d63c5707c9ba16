"""The distilled set: base images + learned labels + how to train on them, in one safe file.

Format: one safetensors file (tensors ``images`` N x C x H x W normalised float32 and
``labels`` N x C) whose header metadata holds a JSON document with the format version,
the number of training steps T, the preprocessing, class names, the recommended
training recipe and provenance, and a SHA-256 over all of it. Nothing is pickled;
``load`` refuses a file whose contents do not match its hash or whose format is newer
than this library.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch.utils.data import TensorDataset

from .data import Preprocessing
from .errors import ArtifactError
from .runs.files import atomic_write_bytes
from .runs.tensorstate import content_digest

FORMAT = "labeldistill.distilled-set"
FORMAT_VERSION = 1
FILE_NAME = "distilled.safetensors"


@dataclass
class DistilledSet:
    """N base images with learned soft labels.

    Attributes:
        images: N x C x H x W, normalised with ``preprocessing``.
        labels: N x C probabilities over ``class_names``.
        steps: T, the number of training steps the labels were selected for.
        recipe: how the paper trains on them (optimizer, lr, batch size, arch, head).
        provenance: where the base images come from (dataset, indices, licence note).
    Example:
        >>> ds = labeldistill.load("runs/mnist-rr")
        >>> loader = torch.utils.data.DataLoader(ds.to_dataset(), batch_size=50, shuffle=True)
    """

    images: torch.Tensor
    labels: torch.Tensor
    steps: int
    preprocessing: Preprocessing
    class_names: list[str]
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # test result; never saved

    @property
    def num_classes(self) -> int:
        return int(self.labels.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_dataset(self) -> TensorDataset:
        """A torch Dataset of (image, label distribution) pairs for any training loop."""
        return TensorDataset(self.images, self.labels)

    def to(self, device: str | torch.device) -> DistilledSet:
        return DistilledSet(self.images.to(device), self.labels.to(device), self.steps, self.preprocessing,
                            list(self.class_names), dict(self.recipe), dict(self.provenance))

    # -- file format ------------------------------------------------------------------
    def _document(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "steps": int(self.steps),
            "preprocessing": self.preprocessing.to_dict(), "class_names": list(self.class_names),
            "recipe": self.recipe, "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tensors = {"images": self.images.detach().float().cpu().contiguous(), "labels": self.labels.detach().float().cpu().contiguous()}
        doc = json.dumps(self._document(), sort_keys=True)
        meta = {"labeldistill": doc, "sha256": content_digest(doc, tensors)}
        atomic_write_bytes(path, st_save(tensors, metadata=meta))
        return path


def load(path: str | Path, device: str | torch.device = "cpu") -> DistilledSet:
    """Read a distilled set from a run directory or a ``.safetensors`` file, verifying it.

    Example:
        >>> ds = labeldistill.load("runs/mnist-ld")
        >>> ds.images.shape, ds.labels.shape, ds.steps
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found: pass a run directory made by 'labeldistill distill' or an exported file.") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path} is a directory without {FILE_NAME}.") from None
    try:
        tensors = st_load(raw)
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        meta = header["__metadata__"]
        doc_json = meta["labeldistill"]
        doc = json.loads(doc_json)
        version = int(doc["format_version"])
    except (SafetensorError, KeyError, TypeError, ValueError, json.JSONDecodeError, UnicodeDecodeError, OverflowError):
        raise ArtifactError(f"{path} is not a labeldistill distilled-set file (unreadable or truncated).") from None
    if doc.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a labeldistill distilled-set file (format {doc.get('format')!r}).")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{path} has format version {version}, newer than this library reads ({FORMAT_VERSION}): upgrade labeldistill.")
    if set(tensors) != {"images", "labels"} or content_digest(doc_json, tensors) != meta.get("sha256"):
        raise ArtifactError(f"{path} does not match its recorded hash: it is corrupt or was modified.")
    images, labels = tensors["images"], tensors["labels"]
    if images.dim() != 4 or labels.dim() != 2 or images.shape[0] != labels.shape[0]:
        raise ArtifactError(f"{path} holds images {tuple(images.shape)} and labels {tuple(labels.shape)} that do not match.")
    try:
        pre = Preprocessing.from_dict(doc["preprocessing"])
        return DistilledSet(images.to(device), labels.to(device), int(doc["steps"]), pre, list(doc["class_names"]),
                            dict(doc.get("recipe", {})), dict(doc.get("provenance", {})))
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{path} has an invalid field ({e}).") from None
