"""``label-span``'s greedy pursuit against brute force in float64: each pick is the column that,
added to those chosen, leaves the least of the targets unexplained by least squares."""
from __future__ import annotations

import numpy as np
import pytest

from labeldistill.selectors.label_span import greedy_label_span


def _unexplained(kernel: np.ndarray, targets: np.ndarray, cols: list[int]) -> float:
    a = kernel[:, cols]
    coef, *_ = np.linalg.lstsq(a, targets, rcond=None)
    r = targets - a @ coef
    return float((r * r).sum() / (targets * targets).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_pick_is_the_least_squares_best_and_quota_holds(seed):
    rng = np.random.default_rng(seed)
    m, p, c = 40, 25, 3
    kernel = rng.normal(size=(m, p))
    targets = np.eye(c)[rng.integers(0, c, m)] + 0.1 * rng.normal(size=(m, c))
    pool_class = rng.integers(0, c, p)
    quota = np.array([2, 1, 3])
    chosen, unexplained = greedy_label_span(kernel, targets, pool_class, quota, ridge=0.0)
    assert np.array_equal(np.bincount(pool_class[chosen], minlength=c), quota)
    assert len(set(chosen.tolist())) == len(chosen)
    for t in range(len(chosen)):
        left = quota - np.bincount(pool_class[chosen[:t]], minlength=c)
        allowed = [j for j in range(p) if j not in chosen[:t] and left[pool_class[j]] > 0]
        brute = {j: _unexplained(kernel, targets, list(chosen[:t]) + [j]) for j in allowed}
        best = min(brute, key=brute.get)
        assert chosen[t] == best, (t, chosen[t], best)
        assert unexplained[t] == pytest.approx(brute[best], rel=1e-9, abs=1e-12)
    assert all(a >= b - 1e-12 for a, b in zip(unexplained, unexplained[1:]))  # more columns never explain less


def test_a_column_that_is_the_target_is_picked_first_and_explains_it_all():
    rng = np.random.default_rng(3)
    targets = rng.normal(size=(30, 1))
    kernel = np.concatenate([rng.normal(size=(30, 4)), 2.0 * targets, rng.normal(size=(30, 3))], axis=1)
    chosen, unexplained = greedy_label_span(kernel, targets, np.zeros(8, dtype=np.int64), np.array([2]), ridge=0.0)
    assert chosen[0] == 4 and unexplained[0] == pytest.approx(0.0, abs=1e-12)
