"""Each figure function on plain arrays (no run directory)."""
from __future__ import annotations

import numpy as np
import pytest

from labeldistill.report import figures as F

from .helpers import check_png

DIGITS = [str(i) for i in range(10)]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    images = rng.random((12, 28, 28, 1))
    own = np.arange(12) % 10
    labels = rng.dirichlet(np.ones(10), 12)
    return images, labels, own


def test_moving_average_restarts_at_resets():
    v = np.array([0, 10, 20, 30, 100, 100, 0, 0], dtype=float)
    ma = F.moving_average(v, 2)
    np.testing.assert_allclose(ma, [0, 5, 15, 25, 65, 100, 50, 0])
    starts = F.segment_starts(np.arange(1, 9), np.array([4]))  # reset at step 4: step 5 starts a new model
    np.testing.assert_allclose(F.moving_average(v, 2, starts), [0, 5, 15, 25, 100, 100, 50, 0])


def test_prototypes_are_label_weighted_means():
    images = np.stack([np.zeros((2, 2, 1)), np.ones((2, 2, 1))])
    labels = np.array([[0.75, 0.0], [0.25, 0.0]])  # class 1 has no weight anywhere: plain mean
    p = F.prototypes(images, labels)
    np.testing.assert_allclose(p[0], 0.25)
    np.testing.assert_allclose(p[1], 0.5)


def test_class_matrix_and_agreement():
    labels = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    rows, mat, counts = F.class_label_matrix(labels, np.array([0, 1, 1]), 3)
    assert rows.tolist() == [0, 1] and counts.tolist() == [1, 2]
    np.testing.assert_allclose(mat[1], [0.4, 0.6])
    assert F.argmax_agreement(labels, np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_label_grid_bars_and_cap(tmp_path, data):
    images, labels, own = data
    check_png(F.label_grid(images, labels, DIGITS, tmp_path / "g.png", base_names=[str(v) for v in own], max_images=7, context="ctx"))


@pytest.mark.parametrize("labels, expected", [
    ([[0.93, 0.07]], (0.0, 1.0)),     # probabilities: 0 to the next tenth, never above 1
    ([[1.0, 0.0]], (0.0, 1.0)),       # a one-hot label is not pushed to 1.1 by rounding
    ([[0.15, 0.1, 0.75]], (0.0, 0.8)),
    ([[0.12, 0.1, 0.1]], (0.0, 0.2)),  # at least 0.2
    ([[2.98, -1.07], [0.3, 0.0]], (-1.1, 3.0)),  # SLDD's free vectors: nothing cut off at 0 or 1
])
def test_label_bar_limits_hold_every_entry(labels, expected):
    lo, hi = F.label_bar_limits(np.array(labels))
    assert (lo, hi) == pytest.approx(expected)
    assert lo <= np.min(labels) and hi >= np.max(labels)


def test_label_grid_draws_negative_and_large_label_entries(tmp_path, data):
    images, labels, own = data
    free = 3.0 * labels - 1.0  # entries from -1 to 2, as an SLDD set holds
    check_png(F.label_grid(images, free, DIGITS, tmp_path / "g.png", base_names=[str(v) for v in own], max_images=7))


def test_label_grid_many_classes_rgb(tmp_path):
    rng = np.random.default_rng(1)
    names = [f"class_{i}" for i in range(30)]
    check_png(F.label_grid(rng.random((4, 32, 32, 3)), rng.dirichlet(np.ones(30), 4), names, tmp_path / "g.png",
                           base_names=None, same_classes=False))


def test_heatmap(tmp_path, data):
    _, labels, own = data
    check_png(F.label_heatmap(labels, own, DIGITS, DIGITS, tmp_path / "h.png", context="mnist", note="argmax = true 50%"))


def test_prototype_figure_grey_and_colour(tmp_path, data):
    images, labels, _ = data
    check_png(F.prototype_figure(images, labels, DIGITS, tmp_path / "p1.png"))
    rgb = np.random.default_rng(2).random((12, 16, 16, 3))
    check_png(F.prototype_figure(rgb, labels, DIGITS, tmp_path / "p3.png"))


def test_training_curves_with_and_without_records(tmp_path):
    steps = np.arange(1, 301)
    err = 90 * np.exp(-(steps % 120) / 30) + 5
    vals = [{"step": s, "epoch": s // 50, "T": 80, "val_accuracy": 70 + s / 30, "selected": True} for s in (50, 100, 150)]
    check_png(F.training_curves(steps, err, tmp_path / "c.png", reset_steps=[120, 240], t_i=[90, 85], validations=vals,
                                selected_step=150, final_t=87))
    check_png(F.training_curves(np.zeros(0), np.zeros(0), tmp_path / "empty.png"))  # a run that just started
    check_png(F.training_curves(steps[:25], err[:25], tmp_path / "s.png", validations=vals[:1], selected_step=50, window=5,
                                students=True, start_accuracy=71.2))


@pytest.mark.parametrize("values, want", [
    ([97.65], (96.65, 98.65)),  # one validation: a point-wide range, not matplotlib's 92.5 to 105
    ([97.65, 97.02], (96.02, 98.65)),
    ([99.6, 98.0], (97.0, 100.0)),  # never above 100
    ([0.4], (0.0, 1.4)),  # nor below 0
])
def test_accuracy_limits(values, want):
    assert F.accuracy_limits(values) == pytest.approx(want)


def test_steps_accuracy_and_comparison(tmp_path):
    check_png(F.steps_accuracy({"lenet / ridge": [(100, 80.0, 1.0), (150, 82.0, 0.5)], "alexnet / ridge": [(150, 78.0, 2.0)]},
                               tmp_path / "s.png", distilled_steps=150))
    steps = np.arange(1, 101)
    runs = [{"label": n, "steps": steps, "accuracy": 50 + 0.3 * steps + i, "window": 50, "val_steps": np.array([50, 100]),
             "val_accuracy": np.array([60.0, 70.0 + i]), "selected_step": 100} for i, n in enumerate(["a", "b"])]
    check_png(F.compare_curves(runs, tmp_path / "cc.png"))
    check_png(F.grad_variance([("rr", steps[::10], np.full(10, 1e-6)), ("so", steps[::10], np.full(10, 1e-4))], tmp_path / "gv.png"))


@pytest.mark.parametrize("rows", [2, 16])
def test_legend_below_sits_the_same_distance_under_short_and_tall_panels(rows):
    """The field figure's legend: right under the axis name, not an axes fraction away (a gap under a tall panel)."""
    from labeldistill.report.figures._canvas import _figure, _legend_below

    fig = _figure(7.0, 1.6 + 0.42 * rows)
    ax = fig.subplots(1, 1)
    ax.plot([0, 1], [0, rows], label="teacher labels")
    ax.set_xlabel("test accuracy (%)")
    fig.tight_layout()
    _legend_below(ax, inches=0.5)
    fig.canvas.draw()  # axis names are placed when drawn
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    axis_bottom = ax.get_window_extent(renderer).y0
    xlabel = ax.xaxis.label.get_window_extent(renderer)
    dpi = fig.dpi
    assert legend.y1 < xlabel.y0  # under the axis name, not over it
    assert (axis_bottom - legend.y1) / dpi == pytest.approx(0.5, abs=0.15)  # the anchor, less the legend's border pad
