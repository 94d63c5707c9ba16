"""Label sets learned on the same images, averaged into one (an ensemble of label sets).

Two runs that learn labels for the same base images from different starts (two teachers' labels, say) end at different
label sets of similar quality; their mean, class by class, is a label set too (each row still sums to one) and can
carry what each learned alone: on CIFAR-10-100 under ``dc-dsa`` the mean of two implicit runs' labels tested 0.57
above the better of them, model for model (docs/results.md, session 47). It costs the parts' distillations and nothing
more. ``labeldistill export RUN_A RUN_B --out FILE`` writes it; ``evaluate FILE`` tests it like any set.

Only sets that mean the same thing average: the same images bit for bit, classes, preprocessing, whitening and way of
training (T and the recipe's training fields); learned images never average (their mean is not a base image).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from .artifact import DistilledSet
from .errors import UserError

# The format of a run directory whose set is the mean of other runs' sets (``reproduce``'s mean cells:
# experiments/means.py): named here, where the mean is, so that readers of run directories know one without the planner.
MEAN_RUN_FORMAT = "labeldistill-label-mean"

# What trains a set: sets that differ here would be trained differently, so their labels' mean has no one recipe.
TRAINING_FIELDS = ("optimizer", "lr", "batch_size", "arch", "head", "ridge_lambda", "ridge_step", "test_protocol")


def average_labels(sets: Sequence[DistilledSet], names: Sequence[str] | None = None) -> DistilledSet:
    """The first set with the mean of every set's labels (in float64, stored as float32); its provenance lists each
    part's content hash (``averaged_from``). ``names``: how errors name the sets (default: their positions)."""
    names = [f"set {i + 1}" for i in range(len(sets))] if names is None else list(names)
    if len(sets) < 2:
        raise UserError("Averaging needs two or more label sets.")
    first, head = sets[0], names[0]
    for s, name in zip(sets, names):
        if s.learned != "labels":
            raise UserError(f"{name} learned {s.learned}: only label sets on the same real images average.")
    for s, name in zip(sets[1:], names[1:]):
        if tuple(s.images.shape) != tuple(first.images.shape) or not torch.equal(s.images.cpu(), first.images.cpu()):
            raise UserError(f"{name}: its images differ from {head}'s; only labels on the same images average.")
        if list(s.class_names) != list(first.class_names) or s.preprocessing != first.preprocessing:
            raise UserError(f"{name}: its classes or preprocessing differ from {head}'s.")
        if not _same_zca(s, first):
            raise UserError(f"{name}: its ZCA whitening differs from {head}'s.")
        trains = {k: s.recipe.get(k) for k in TRAINING_FIELDS}, s.steps
        if trains != ({k: first.recipe.get(k) for k in TRAINING_FIELDS}, first.steps):
            raise UserError(f"{name} trains otherwise than {head} (T {s.steps} against {first.steps}, or its recipe): "
                            "its labels' mean would have no one way to train.")
    labels = torch.stack([s.labels.detach().cpu().double() for s in sets]).mean(0)
    provenance = {**first.provenance, "averaged_from": [s.content_sha256() for s in sets]}
    return dataclasses.replace(first, images=first.images.cpu(), labels=labels.float(), provenance=provenance,
                               evaluation=None, initial_images=None)


def _same_zca(a: DistilledSet, b: DistilledSet) -> bool:
    if a.zca is None or b.zca is None:
        return a.zca is None and b.zca is None
    return (a.zca.applied_to_images == b.zca.applied_to_images and torch.equal(a.zca.matrix.cpu(), b.zca.matrix.cpu())
            and torch.equal(a.zca.mean.cpu(), b.zca.mean.cpu()))
