import numpy as np
import pytest
import torch

from labeldistill.data import select_base
from labeldistill.errors import UserError


def rng(seed=0):
    return np.random.default_rng(seed)


def test_balanced_counts_and_class_order():
    y = np.random.default_rng(1).permutation(np.repeat(np.arange(10), 30))
    idx = select_base(y, 100, num_classes=10, generator=rng())
    assert len(set(idx)) == 100 and np.bincount(y[idx]).tolist() == [10] * 10
    assert np.all(np.diff(y[idx]) >= 0)  # ordered by class


def test_balanced_remainder_goes_to_distinct_classes():
    y = np.repeat(np.arange(10), 30)
    idx = select_base(torch.from_numpy(y), 15, num_classes=10, generator=rng(2))
    counts = np.bincount(y[idx], minlength=10)
    assert len(set(idx)) == 15 and counts.min() >= 1 and counts.max() <= 2 and counts.sum() == 15


def test_fewer_than_classes_and_seeding():
    y = np.repeat(np.arange(49), 5)
    a = select_base(y, 10, num_classes=49, generator=rng(3))
    b = select_base(y, 10, num_classes=49, generator=rng(3))
    assert np.array_equal(a, b) and len(set(y[a])) == 10


def test_random_draw_ignores_classes():
    y = np.zeros(50, dtype=np.int64)
    idx = select_base(y, 20, num_classes=None, generator=rng())
    assert len(set(idx)) == 20 and idx.min() >= 0 and idx.max() < 50
    assert not np.array_equal(idx, select_base(y, 20, num_classes=None, generator=rng(1)))


def test_errors():
    y = np.repeat(np.arange(10), [7] + [20] * 9)
    with pytest.raises(
        UserError, match="Asked for 100 base examples but class 0 has only 7 images in the training split"
    ):
        select_base(y, 100, num_classes=10, generator=rng())
    with pytest.raises(UserError, match="only 187"):
        select_base(y, 188, num_classes=None, generator=rng())
    with pytest.raises(UserError):
        select_base(y, 0, num_classes=10, generator=rng())
    with pytest.raises(UserError, match="outside"):
        select_base(y, 10, num_classes=5, generator=rng())
