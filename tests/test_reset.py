"""The reset-on-over-fitting rule (DESIGN.md, "Reset on over-fitting"), on scripted errors.

The rule, per step with error e (w = window = patience):
    warm-up (fewer than w values): append e; steps += 1; at steps == w: best = sum, since_best = 0
    else: slide the window; steps += 1
        sum < best:        best = sum, since_best = 0        (a tie is not an improvement)
        since_best < w:    since_best += 1
        else:              reset; T = steps - since_best - 1 (the step of the best average)
Every expected value below is derived by hand from this rule (comments), not by running the code.
"""
from __future__ import annotations

import json

import pytest

from labeldistill.distill import ResetMonitor


def feed(mon: ResetMonitor, errors) -> list[int]:
    """1-based positions (within ``errors``) at which update() returned True."""
    return [i for i, e in enumerate(errors, 1) if mon.update(e)]


# Life "flat": constant error. Steps 1-3 warm up, best = 30 at step 3. Steps 4, 5, 6: sums tie
# (30, not < 30): since_best 1, 2, 3. Step 7: since_best == 3 is not < 3 -> reset,
# T = 7 - 3 - 1 = 3 (best at step 3). Earliest possible reset: step 2w + 1 = 7.
FLAT = [10] * 7
# Life "T7": warm-up 9, 9, 9 (best 27 at step 3); step 4: [9,9,8]=26 best; step 5: [9,8,7]=24 best;
# step 6: [8,7,6]=21 best; step 7: [7,6,5]=18 best (step 7); steps 8, 9, 10: 20, 23, 27 -> since 1, 2, 3;
# step 11: reset, T = 11 - 3 - 1 = 7.
T7 = [9, 9, 9, 8, 7, 6, 5, 9, 9, 9, 9]
# Life "T4": warm-up 9, 9, 9 (27); step 4: [9,9,1]=19 best (step 4); steps 5, 6, 7: 19 (tie), 19 (tie), 27
# -> since 1, 2, 3; step 8: reset, T = 8 - 3 - 1 = 4.
T4 = [9, 9, 9, 1, 9, 9, 9, 9]
# Life "late": warm-up 5, 5, 5 (best 15 at 3); step 4: 16 -> 1; step 5: 17 -> 2; step 6: [6,6,0]=12 best
# (patience starts again); steps 7, 8, 9: 12 (tie), 12 (tie), 18 -> 1, 2, 3; step 10: reset, T = 10 - 3 - 1 = 6.
LATE = [5, 5, 5, 6, 6, 0, 6, 6, 6, 6]


def test_flat_errors_reset_at_2w_plus_1_repeatedly():
    mon = ResetMonitor(3)
    # Each life of a constant error lasts 7 steps: resets on calls 7, 14, 21.
    assert feed(mon, [10] * 24) == [7, 14, 21]
    assert mon.t_list == [3, 3, 3]
    assert mon.resets == 3
    assert mon.steps == 3  # calls 22, 23, 24 are steps 1..3 of the fourth life


def test_no_reset_before_2w_plus_1_even_if_worse():
    mon = ResetMonitor(3)
    # Errors rising from the start: best is the warm-up sum (step 3), nothing improves;
    # reset exactly on step 7.
    assert feed(mon, [1, 2, 3, 4, 5, 6, 7]) == [7]
    assert mon.t_list == [3]


@pytest.mark.parametrize("life,reset_at,t", [(T7, 11, 7), (T4, 8, 4), (LATE, 10, 6), (FLAT, 7, 3)])
def test_single_life(life, reset_at, t):
    mon = ResetMonitor(3)
    assert feed(mon, life) == [reset_at]
    assert mon.t_list == [t]
    assert mon.steps == 0 and mon.moving_average is None


def test_state_persists_across_lives_and_estimate_steps():
    mon = ResetMonitor(3)
    # Before any reset: T estimate = steps so far (at least 1).
    assert mon.estimate_steps() == 1
    assert feed(mon, T7[:5]) == []
    assert mon.estimate_steps() == 5
    # Lives T7 (reset on call 11), FLAT (7 calls -> 18), T4 (8 -> 26), T7 (11 -> 37).
    seq = T7[5:] + FLAT + T4 + T7
    assert [5 + i for i in feed(mon, seq)] == [11, 18, 26, 37]
    assert mon.t_list == [7, 3, 4, 7]
    # int(mean of the LAST THREE): (3 + 4 + 7) / 3 = 4.67 -> 4 (all four would give 5.25 -> 5).
    assert mon.estimate_steps() == 4


def test_estimate_steps_progression():
    mon = ResetMonitor(3)
    feed(mon, T7)
    assert mon.estimate_steps() == 7  # [7]
    feed(mon, FLAT)
    assert mon.estimate_steps() == 5  # (7 + 3) / 2
    feed(mon, T4)
    assert mon.estimate_steps() == 4  # (7 + 3 + 4) / 3 = 4.67 -> 4
    feed(mon, [9, 9])  # mid-life: estimate still comes from the T_i
    assert mon.estimate_steps() == 4


def test_window_50_long_case():
    mon = ResetMonitor(50)
    # Life 1: errors 200 - t for t = 1..80 then 500. Warm-up to step 50; steps 51..80 each drop
    # e_{t-50} = 250 - t and add 200 - t: the sum falls by 50 each step, best at step 80. From step 81
    # every window holds a 500: since_best 1..50 over steps 81..130; reset on step 131, T = 131 - 50 - 1 = 80.
    life1 = [200 - t for t in range(1, 81)] + [500] * 51
    # Life 2: constant error: reset on its step 2w + 1 = 101, T = 50 (the end of the warm-up).
    life2 = [42] * 101
    resets = feed(mon, life1 + life2)
    assert resets == [131, 232]
    assert mon.t_list == [80, 50]
    assert mon.estimate_steps() == 65


def test_state_dict_round_trip_continues_identically():
    seq = T7 + FLAT + LATE + T4
    for cut in (2, 5, 9, 13, 20, 30):
        a = ResetMonitor(3)
        feed(a, seq[:cut])
        state = json.loads(json.dumps(a.state_dict()))  # must be JSON-able (checkpoints)
        b = ResetMonitor.from_state(state)
        rest = seq[cut:]
        assert feed(a, rest) == feed(b, rest)
        assert a.t_list == b.t_list and a.steps == b.steps and a.best == b.best
        assert a.estimate_steps() == b.estimate_steps()
    # The whole sequence gives resets after calls 11, 18, 28, 36.
    assert feed(ResetMonitor(3), seq) == [11, 18, 28, 36]


def test_moving_average():
    mon = ResetMonitor(3)
    assert mon.moving_average is None
    feed(mon, [3, 6])
    assert mon.moving_average == pytest.approx(4.5)
    feed(mon, [9, 12])
    assert mon.moving_average == pytest.approx(9.0)  # [6, 9, 12]
