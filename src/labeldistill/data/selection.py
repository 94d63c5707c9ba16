"""Choosing the base examples: the N real images whose labels get learned."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError


def select_base(
    y: np.ndarray | torch.Tensor, n: int, *, num_classes: int | None, generator: np.random.Generator
) -> np.ndarray:
    """Pick ``n`` base examples from a labelled pool.

    Within-dataset runs use class-balanced base sets: ``n // C`` images per class, and the
    remaining ``n % C`` go one each to distinct classes drawn at random (so class counts differ
    by at most one). Cross-dataset runs pass ``num_classes=None``: ``n`` images at random, their
    source classes ignored.

    Args:
        y: labels of the pool (e.g. ``target.train.y``).
        n: how many base examples.
        num_classes: C for a class-balanced draw, or None for a uniform random draw.
        generator: the caller's stream (e.g. ``seeding.numpy_generator(seed, "base")``).

    Returns:
        int64 positions in ``y``: ordered by class then draw when balanced, as drawn when random.

    Example:
        >>> select_base(np.repeat(np.arange(10), 20), 100, num_classes=10,
        ...             generator=np.random.default_rng(0)).shape
        (100,)
    """
    labels = _check(y, n, num_classes)
    n = int(n)
    if num_classes is None:
        return generator.choice(len(labels), size=n, replace=False).astype(np.int64)
    counts, take = _quota(labels, n, num_classes, generator)
    # One permutation of the pool, then a stable sort by class: each class's images in random
    # order, so taking the first k of each class is a draw without replacement.
    perm = generator.permutation(len(labels))
    by_class = perm[np.argsort(labels[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(labels)) - np.repeat(starts, counts)
    chosen = by_class[rank < np.repeat(take, counts)]
    return chosen.astype(np.int64)


def class_quota(y: np.ndarray | torch.Tensor, n: int, *, num_classes: int, generator: np.random.Generator) -> np.ndarray:
    """How many base examples each class gets in a balanced set of ``n``: ``n // C`` each, and
    the remaining ``n % C`` one each to distinct classes drawn from ``generator`` (the same
    draw, from the same stream position, as :func:`select_base` makes).

    Args:
        y: labels of the pool; n: how many base examples; num_classes: C.
        generator: the selector's stream.

    Returns:
        int64 ``C`` counts summing to ``n``.

    Example:
        >>> class_quota(np.repeat(np.arange(10), 20), 25, num_classes=10, generator=np.random.default_rng(0)).sum()
        25
    """
    if num_classes is None:
        raise UserError("class_quota needs the number of classes (a within-dataset, class-balanced base set)")
    labels = _check(y, n, num_classes)
    return _quota(labels, int(n), num_classes, generator)[1]


def _check(y: np.ndarray | torch.Tensor, n: int, num_classes: int | None) -> np.ndarray:
    """The labels as numpy, after checking ``n`` and (when balanced) ``num_classes``."""
    labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if labels.ndim != 1:
        raise UserError(f"select_base needs a 1-D label vector, got shape {labels.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise UserError(f"The number of base examples must be an integer, got {n!r}")
    if n < 1:
        raise UserError(f"Asked for {n} base examples; need at least 1")
    if n > len(labels):
        raise UserError(f"Asked for {n} base examples but the pool has only {len(labels)} images")
    if num_classes is None:
        return labels
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer or None, got {num_classes!r}")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"Labels span {labels.min()}..{labels.max()}, outside 0..{num_classes - 1}")
    return labels


def _quota(labels: np.ndarray, n: int, num_classes: int, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(pool count per class, base examples per class); draws the classes that get one more."""
    counts = np.bincount(labels, minlength=num_classes)
    per_class = n // num_classes
    short = np.flatnonzero(counts < per_class)
    if len(short):
        c = int(short[0])
        raise UserError(
            f"Asked for {n} base examples but class {c} has only {counts[c]} images in the training split "
            f"(a balanced draw needs {per_class} per class)"
        )
    extra = np.zeros(num_classes, dtype=np.int64)
    remainder = n - per_class * num_classes
    if remainder:
        spare = np.flatnonzero(counts > per_class)
        if len(spare) < remainder:
            raise UserError(
                f"Asked for {n} base examples but only {len(spare)} classes have more than {per_class} images"
            )
        extra[generator.choice(spare, size=remainder, replace=False)] = 1
    return counts, per_class + extra
