"""The loaded datasets the rest of the package sees: normalised tensors on the device."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .preprocess import Preprocessing


@dataclass
class LabelledTensors:
    """Images and labels of one split, resident on a device.

    Attributes:
        x: float32 ``N×C×H×W``, normalised.
        y: int64 ``N`` class labels, on the same device.
        index: int64 ``N`` positions in the dataset's pooled raw array (official train part
            followed by the official test part), for provenance.
    """

    x: torch.Tensor
    y: torch.Tensor
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def same_as(self, other: LabelledTensors) -> bool:
        """The same examples in the same order: what runs may share (:func:`same_examples`)."""
        return same_examples(self.x, self.y, other.x, other.y)


def same_examples(x: torch.Tensor, y: torch.Tensor, x2: torch.Tensor, y2: torch.Tensor) -> bool:
    """(x, y) and (x2, y2) hold the same examples in the same order (the same tensors, or equal ones)."""
    return (x is x2 and y is y2) or (x.shape == x2.shape and torch.equal(x, x2) and torch.equal(y, y2))


@dataclass
class TargetData:
    """A target dataset split into train / validation / test.

    Attributes:
        name: canonical dataset argument ("mnist", "npz:/abs/file.npz", "folder:/abs/dir", ...).
        class_names: one name per class.
        train, val, test: the three splits.
        preprocessing: how raw images were turned into ``x`` (apply it to source images too).
        split_record: JSON-able record of the split (seed, sizes, files, index lists, sha256).
        licence: short licence / provenance note.
    """

    name: str
    class_names: list[str]
    train: LabelledTensors
    val: LabelledTensors
    test: LabelledTensors
    preprocessing: Preprocessing
    split_record: dict
    licence: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class SourceData:
    """A pool of base-image candidates from another dataset (cross-dataset distillation).

    Attributes:
        name: canonical dataset argument.
        images: the source's training part, preprocessed like the target; ``y`` are source labels.
        class_names: the source's class names.
        licence: short licence / provenance note.
        files: part ("train" / "test") -> the file or folder it was read from, as in
            :attr:`TargetData.split_record` ``["files"]``; lets :func:`labeldistill.problem.build_problem`
            see when a source and its target read the same files.
        pool_sizes: {"train": n, "test": n} of the pooled raw array that ``images.index`` points into.
    """

    name: str
    images: LabelledTensors
    class_names: list[str]
    licence: str
    files: dict[str, str] = field(default_factory=dict)
    pool_sizes: dict[str, int] = field(default_factory=dict)
