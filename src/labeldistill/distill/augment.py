"""Augmentation inside the loop (beyond the paper): ``--augment dsa``.

The paper's loop trains its persistent model, and takes its virtual step, on the base images
as they are, which is how its own test trains (no augmentation). A set tested under ``dc-dsa``
is trained on DSA views of its images for 1,000 epochs instead, and labels tuned for clean
views are tuned for another learner (docs/results.md, "The field table"). With ``augment`` set
to a protocol that augments (``dsa`` is ``dc-dsa``'s alias), every step's inner minibatch is
augmented by that protocol's transforms, per image, before the strategy sees it: the persistent
model then trains on the views a test model trains on, and the meta-gradient asks what labels
do for a step on such views. The target minibatch stays clean (its loss is the objective), and
label selection is unchanged (the paper's, on clean images).

The draws come from the run's own generators (:class:`~labeldistill.engine.augment.DSAugmenter`
seeded from ``(seed, "loop-augmentation")``), saved in every checkpoint, so a resumed run
augments exactly as an uninterrupted one. The transform of each step is chosen on the host, so
such steps run eagerly (no CUDA graph). The transforms are differentiable, so learned images get
their meta-gradient through them.
"""
from __future__ import annotations

import torch

from ..engine.augment import DSAugmenter
from ..errors import UserError
from ..seeding import derive_seed

NONE = "none"


def canonical_augment(name: str | None) -> str:
    """``none``, or the canonical name of a registered protocol that augments (a one-line error otherwise)."""
    if name is None or name == NONE:
        return NONE
    from ..protocols import canonical_protocol, get_protocol, list_protocols

    proto = get_protocol(canonical_protocol(name))
    if proto.augmentation is None:
        with_aug = [n for n in list_protocols() if get_protocol(n).augmentation is not None]
        raise UserError(f"--augment {name}: that protocol has no augmentation; use none or one of {', '.join(with_aug)}.")
    return proto.name


def loop_augmenter(name: str, seed: int, channels: int, device: torch.device | str) -> DSAugmenter | None:
    """The loop's augmenter for ``augment`` = ``name`` (None for ``none``): the protocol's transforms for images of
    ``channels`` channels (no flips for one-channel digits and characters under ``dc-dsa``), one seeded stream."""
    if canonical_augment(name) == NONE:
        return None
    from ..protocols import get_protocol

    params = get_protocol(name).augmentation_for(channels)
    assert params is not None
    return DSAugmenter(params, seeds=[derive_seed(seed, "loop-augmentation")], device=device)
