"""A distillation problem: the target data and the base images whose labels are learned.

Shared by ``distill`` and ``baseline`` so that, given the same seed, both use exactly
the same split and base set (the paper's fair comparison).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .data import SourceData, TargetData, load_target, select_base
from .data.overlap import own_train_mask, shared_files
from .errors import UserError
from .seeding import numpy_generator
from .selectors._base import Selector
from .selectors._choose import content_sha256

_DEFAULT_CACHE = object()


@dataclass
class Problem:
    target: TargetData
    base_x: torch.Tensor  # N x C x H x W, with the target's preprocessing, on the device
    base_y: torch.Tensor  # the base images' own classes (target classes within-dataset, source classes across)
    base_index: np.ndarray  # dataset indices of the base images in their source dataset
    base_dataset: str  # where the base images come from
    base_class_names: list[str]
    base_licence: str
    base_pool: dict | None = None  # cross-dataset: the candidate pool, and what was excluded from it
    base_select: dict | None = None  # how the base set was chosen: selector, settings, what it saw and measured
    base_sha256: str | None = None  # content hash of the base set (images as preprocessed, then labels)

    @property
    def cross_dataset(self) -> bool:
        return self.base_dataset != self.target.name

    @property
    def n_base(self) -> int:
        return int(self.base_x.shape[0])

    def provenance(self) -> dict:
        out = {
            "base_dataset": self.base_dataset,
            "base_indices": [int(i) for i in self.base_index],
            "base_licence": self.base_licence,
            "cross_dataset": self.cross_dataset,
        }
        if self.base_pool is not None:
            out["base_pool"] = dict(self.base_pool)
        if self.base_select is not None:
            out["base_select"] = dict(self.base_select)
        if self.base_sha256 is not None:
            out["base_sha256"] = self.base_sha256
        return out


def build_problem(target: TargetData, n_base: int, seed: int, source: SourceData | None = None, *,
                  select: str | Selector = "random", select_cache: str | os.PathLike | None | object = _DEFAULT_CACHE) -> Problem:
    """Pick the base set: class-balanced from the target's training split (within-dataset),
    or at random from the source, its classes ignored (cross-dataset).

    Within a dataset, ``select`` names the base selector (``labeldistill.selectors.list_selectors()``):
    ``"random"`` is the seeded balanced draw (bit for bit that of earlier versions), others choose
    from the training split (and, for ``"paper-table7"``, score on the validation split). Selectors
    that train models keep their choice in ``select_cache`` (default:
    :func:`labeldistill.selectors.default_cache_dir`; None: no cache), so every method of one seed
    reuses it. The choice is recorded in :meth:`Problem.provenance` (``base_select``, ``base_sha256``).

    A source that reads some of the target's own files (``--source mnist --target mnist``, or an
    ``npz:`` copy of them) gives from those files only images of the target's training split:
    its validation and test images are never base images. The draw is otherwise the same (one
    uniform draw from the remaining candidates, same seed stream), and ``base_pool`` in the
    provenance records the shared files and how many candidates were left out.
    """
    from .selectors import canonical_selector, choose_base  # noqa: I001  (selectors import the engine: only when used)

    select = canonical_selector(select) if isinstance(select, str) else select
    chosen_by = select if isinstance(select, str) else select.name
    g = numpy_generator(seed, "base")
    pool_record = None
    select_record: dict = {"name": chosen_by}
    if source is None:
        if select == "random":  # the draw of earlier versions, inline (no selector machinery in between)
            sel = select_base(target.train.y, n_base, num_classes=target.num_classes, generator=g)
            select_record.update(sees="train labels")
        else:
            kwargs = {} if select_cache is _DEFAULT_CACHE else {"cache_dir": select_cache}
            sel, select_record = choose_base(target, n_base, seed, select, **kwargs)
        pool, names, licence, name = target.train, target.class_names, target.licence, target.name
    else:
        if chosen_by != "random":
            raise UserError(f"--base-select {chosen_by} chooses among the target's own training images; a cross-dataset base set "
                            f"(--source {source.name}) is drawn at random. Drop --base-select or the source.")
        pool, names, licence, name = source.images, source.class_names, source.licence, source.name
        shared = shared_files(target, source)
        candidates = np.flatnonzero(own_train_mask(target, source)) if shared else np.arange(len(pool))
        if shared and isinstance(n_base, (int, np.integer)) and len(candidates) < n_base:
            raise UserError(
                f"Asked for {n_base} base examples from '{source.name}', but only {len(candidates)} of its {len(pool)} "
                f"images may be used: those it shares with the target '{target.name}' count only if in its training split")
        if shared:
            y = pool.y[torch.as_tensor(candidates, device=pool.y.device)]
            sel = candidates[select_base(y, n_base, num_classes=None, generator=g)]
        else:  # exactly the draw of a source with no file in common with the target
            sel = select_base(pool.y, n_base, num_classes=None, generator=g)
        pool_record = {
            "candidates": len(pool),
            "excluded": len(pool) - len(candidates),
            "shared_files": shared,
            "rule": "images from files the target also reads are used only if in the target's training split",
        }
    sel_t = torch.as_tensor(sel, device=pool.x.device)
    base_x, base_y = pool.x[sel_t].contiguous(), pool.y[sel_t].contiguous()
    return Problem(
        target=target,
        base_x=base_x,
        base_y=base_y,
        base_index=np.asarray(pool.index)[sel],
        base_dataset=name,
        base_class_names=list(names),
        base_licence=licence,
        base_pool=pool_record,
        base_select=select_record,
        base_sha256=content_sha256(base_x, base_y),
    )


def run_target(target: str, data_root, run_cfg: dict, seed: int, device, size: int):
    """The target split as the run made it: the run's own seed draws the split, whatever the
    evaluation's seed. Another seed would move images between the run's training part (its base images) and the
    validation / test parts that choose and score, a leak; the evaluation's seed draws only its models."""
    split_seed = int(run_cfg.get("seed", seed))
    return load_target(target, data_root=data_root, seed=split_seed, split=tuple(run_cfg["split"]) if run_cfg.get("split") else None,
                       device=device, image_size=size)
