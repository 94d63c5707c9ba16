"""A distillation problem: the target data and the base images whose labels are learned.

Shared by ``distill`` and ``baseline`` so that, given the same seed, both use exactly
the same split and base set (the paper's fair comparison).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import SourceData, TargetData, select_base
from .seeding import numpy_generator


@dataclass
class Problem:
    target: TargetData
    base_x: torch.Tensor  # N x C x H x W, with the target's preprocessing, on the device
    base_y: torch.Tensor  # the base images' own classes (target classes within-dataset, source classes across)
    base_index: np.ndarray  # dataset indices of the base images in their source dataset
    base_dataset: str  # where the base images come from
    base_class_names: list[str]
    base_licence: str

    @property
    def cross_dataset(self) -> bool:
        return self.base_dataset != self.target.name

    @property
    def n_base(self) -> int:
        return int(self.base_x.shape[0])

    def provenance(self) -> dict:
        return {
            "base_dataset": self.base_dataset,
            "base_indices": [int(i) for i in self.base_index],
            "base_licence": self.base_licence,
            "cross_dataset": self.cross_dataset,
        }


def build_problem(target: TargetData, n_base: int, seed: int, source: SourceData | None = None) -> Problem:
    """Pick the base set: class-balanced from the target's training split (within-dataset),
    or at random from the source, its classes ignored (cross-dataset)."""
    g = numpy_generator(seed, "base")
    if source is None:
        sel = select_base(target.train.y, n_base, num_classes=target.num_classes, generator=g)
        pool, names, licence, name = target.train, target.class_names, target.licence, target.name
    else:
        sel = select_base(source.images.y, n_base, num_classes=None, generator=g)
        pool, names, licence, name = source.images, source.class_names, source.licence, source.name
    sel_t = torch.as_tensor(sel, device=pool.x.device)
    return Problem(
        target=target,
        base_x=pool.x[sel_t].contiguous(),
        base_y=pool.y[sel_t].contiguous(),
        base_index=np.asarray(pool.index)[sel],
        base_dataset=name,
        base_class_names=list(names),
        base_licence=licence,
    )
