"""Curves over a run: the loop's training error with its resets, runs compared, gradient variance; DD's learned lr
schedule and outer loss."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._canvas import COLOURS, _figure, _header, _header_inches, _legend_on_top, _no_data, _notes, _save, accuracy_limits


def _panel(ax, title: str, xlabel: str, ylabel: str) -> None:
    """A training-curves panel's frame: its title, axis names and grid."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


# -- moving average (shared with the document) ------------------------------------------

def moving_average(values: np.ndarray, window: int, segment_start: np.ndarray | None = None) -> np.ndarray:
    """Trailing mean over ``window`` values, restarting at each segment start (a model reset),
    like the reset monitor; the first values of a segment average what there is so far."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    starts = np.zeros(len(values), dtype=bool) if segment_start is None else np.asarray(segment_start, dtype=bool)
    bounds = [0] + [i for i in np.flatnonzero(starts) if i > 0] + [len(values)]
    window = max(1, int(window))
    for a, b in zip(bounds[:-1], bounds[1:]):
        c = np.concatenate([[0.0], np.cumsum(values[a:b])])
        idx = np.arange(1, b - a + 1)
        lo = np.maximum(0, idx - window)
        out[a:b] = (c[idx] - c[lo]) / (idx - lo)
    return out


def segment_starts(steps: np.ndarray, reset_steps: np.ndarray) -> np.ndarray:
    """True at the first step of each model's life after a reset."""
    return np.isin(np.asarray(steps), np.asarray(reset_steps) + 1)


def training_curves(steps: np.ndarray, errors: np.ndarray, path: str | Path, *, window: int = 50,
                    reset_steps: Sequence[int] = (), t_i: Sequence[int] = (), validations: Sequence[dict] = (),
                    selected_step: int | None = None, final_t: int | None = None, title: str | None = None,
                    context: str | None = None, students: bool = False, start_accuracy: float | None = None) -> Path:
    """Moving-average target accuracy with the resets, validation accuracy (the selected labels
    highlighted), and T_i at each reset. ``students``: the persistent models were students trained the test's way
    (never reset, no T): the first two panels only. ``start_accuracy``: the start labels' validation accuracy (the
    start candidate the selected snapshot had to beat), drawn across the validation panel."""
    steps, errors = np.asarray(steps), np.asarray(errors, dtype=np.float64)
    reset_steps, t_i = np.asarray(reset_steps, dtype=np.int64), np.asarray(t_i, dtype=np.int64)
    height = 7.0 if students else 10.0
    fig = _figure(10, height)
    ratios = [1.4, 1] if students else [1.4, 1, 1]
    axes = fig.subplots(len(ratios), 1, gridspec_kw={"height_ratios": ratios, "hspace": 0.45})
    lines = _notes(context)
    fig.subplots_adjust(left=0.09, right=0.97, top=1 - (_header_inches(lines) + 0.3) / height, bottom=0.06 * 10 / height)
    ax = axes[0]
    if len(steps):
        acc = 100.0 - errors
        ma = moving_average(acc, window, segment_starts(steps, reset_steps))
        ax.plot(steps, acc, color="tab:blue", alpha=0.18, lw=0.6, label="per step")
        ax.plot(steps, ma, color="tab:blue", lw=1.6, label=f"moving average ({window} steps)")
        for i, s in enumerate(reset_steps):
            ax.axvline(s, color="tab:red", lw=0.8, ls="--", alpha=0.7, label="model reset" if i == 0 else None)
        if not students:  # a young model's accuracy climbs from chance; students start trained: their range is narrow
            ax.set_yticks(np.arange(0, 101, 20))
        _legend_on_top(ax)
        ax.set_xlim(steps.min(), steps.max() + 1)
    else:
        _no_data(ax, "no step records yet")
    _panel(ax, "Target accuracy of the students (never reset)" if students else
           f"Target accuracy of the persistent model ({len(reset_steps)} resets)", "step", "target minibatch accuracy (%)")

    ax = axes[1]
    if len(validations):
        vs = np.array([int(v["step"]) for v in validations])
        va = np.array([float(v["val_accuracy"]) for v in validations])
        ax.plot(vs, va, "o-", color="tab:green", ms=4, lw=1.2, label="validation accuracy")
        if start_accuracy is not None:
            ax.axhline(start_accuracy, color="0.35", ls="--", lw=1.0, label=f"start labels: {start_accuracy:.1f} %")
        ax.set_ylim(*accuracy_limits([*va, *([start_accuracy] if start_accuracy is not None else [])]))
        sel = [v for v in validations if int(v["step"]) == selected_step] if selected_step is not None else []
        if sel:
            s = sel[-1]
            t = "" if students else f"T={s.get('T', '?')}, "
            ax.plot([int(s["step"])], [float(s["val_accuracy"])], marker="*", ms=16, color="tab:red", ls="none",
                    label=f"selected: epoch {s.get('epoch', '?')}, {t}{float(s['val_accuracy']):.1f} %")
        _legend_on_top(ax)
        if len(steps):
            ax.set_xlim(axes[0].get_xlim())
    else:
        _no_data(ax, "no validation records yet")
    _panel(ax, "Validation accuracy of fresh models trained on the labels (label selection)", "step", "validation accuracy (%)")
    if students:
        _header(fig, title or "Training curves", lines)
        return _save(fig, path)

    ax = axes[2]
    if len(reset_steps):
        ax.plot(reset_steps, t_i, "s-", color="tab:purple", ms=4, lw=1, label="T_i (best step of the model's life)")
        if final_t is not None:
            ax.axhline(final_t, color="0.3", ls=":", lw=1.2, label=f"selected T = {final_t}")
        _legend_on_top(ax)
        if len(steps):
            ax.set_xlim(axes[0].get_xlim())
    else:
        _no_data(ax, "no resets: T is the step count of the current model")
    _panel(ax, "Estimated training steps T_i at each reset", "step of the reset", "T_i (steps)")
    _header(fig, title or "Training curves", lines)
    return _save(fig, path)


# -- comparison of runs ---------------------------------------------------------------------

def compare_curves(runs: Sequence[dict], path: str | Path, *, title: str | None = None, context: str | None = None) -> Path:
    """Several runs overlaid. Each run: {"label", "steps", "accuracy" (moving average), "window",
    "val_steps", "val_accuracy", "selected_step"}."""
    fig = _figure(10, 8)
    axes = fig.subplots(2, 1, gridspec_kw={"hspace": 0.35})
    lines = _notes(context)
    fig.subplots_adjust(left=0.09, right=0.97, top=1 - (_header_inches(lines) + 0.3) / 8, bottom=0.07)
    for i, r in enumerate(runs):
        col = COLOURS[i % len(COLOURS)]
        if len(r["steps"]):
            axes[0].plot(r["steps"], r["accuracy"], color=col, lw=1.4, label=r.get("legend", r["label"]))
        if len(r["val_steps"]):
            axes[1].plot(r["val_steps"], r["val_accuracy"], "o-", color=col, ms=4, lw=1.2, label=r["label"])
            if r.get("selected_step") is not None and r["selected_step"] in list(r["val_steps"]):
                j = list(r["val_steps"]).index(r["selected_step"])
                axes[1].plot([r["val_steps"][j]], [r["val_accuracy"][j]], "*", ms=15, color=col, markeredgecolor="black")
    axes[0].set_title("Moving-average target accuracy of the persistent model", fontsize=10)
    axes[0].set_ylabel("target minibatch accuracy (%)")
    axes[1].set_title("Validation accuracy (star: selected labels)", fontsize=10)
    axes[1].set_ylabel("validation accuracy (%)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            _legend_on_top(ax, ncol=2)
        else:
            _no_data(ax, "no records")
    _header(fig, title or "Training curves of the compared runs", lines)
    return _save(fig, path)


def grad_variance(runs: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path, *, title: str | None = None,
                  context: str | None = None) -> Path:
    """Var of the label meta-gradient over training, log scale (the paper's Figure 3). Each run: (label, steps, variance)."""
    fig = _figure(9, 5)
    ax = fig.add_subplot(1, 1, 1)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.86, bottom=0.12)
    for i, (label, s, v) in enumerate(runs):
        v = np.asarray(v, dtype=np.float64)
        ok = v > 0
        if ok.any():
            ax.plot(np.asarray(s)[ok], v[ok], "o-", ms=3, lw=1.2, color=COLOURS[i % len(COLOURS)],
                    label=f"{label} (median {np.median(v[ok]):.2e})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("Var[label meta-gradient] (log scale)")
    ax.set_title(title or "Variance of the label meta-gradient", fontsize=12, pad=24 if context else 6)
    if context:
        ax.text(0.5, 1.02, context, ha="center", va="bottom", fontsize=8, color="0.3", transform=ax.transAxes)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        _no_data(ax, "no positive variances recorded")
    return _save(fig, path)


def lr_schedule(lrs: Sequence[float], epoch_length: int, path: str | Path, *, context: str | None = None) -> Path:
    """DD / SLDD: the learned learning rate of every inner step, coloured by epoch, with their mean."""
    lrs = np.asarray(lrs, dtype=np.float64)
    fig = _figure(7.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    t = np.arange(len(lrs))
    ep = t // max(1, epoch_length)
    for e in np.unique(ep):
        m = ep == e
        ax.bar(t[m], lrs[m], color=COLOURS[int(e) % len(COLOURS)], label=f"epoch {int(e) + 1}")
    ax.axhline(lrs.mean(), color="k", ls="--", lw=1, label=f"mean {lrs.mean():.3g} (Table 11's 'average')")
    ax.set_xlabel("inner step")
    ax.set_ylabel("learned learning rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    lines = _notes(context)
    _header(fig, "Learned step schedule (one lr per step)", lines)
    fig.subplots_adjust(top=1 - (_header_inches(lines) + 0.1) / fig.get_figheight())
    return _save(fig, path)


def outer_loss(iterations: np.ndarray, losses: np.ndarray, path: str | Path, *, per_epoch: int | None = None,
               context: str | None = None) -> Path:
    """DD / SLDD: the target loss after the unrolled steps at every outer iteration (and its moving average)."""
    fig = _figure(7.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    if len(iterations):
        ax.plot(iterations, losses, lw=0.6, alpha=0.5, color="tab:blue", label="outer iteration")
        w = max(1, min(len(losses), per_epoch or 50))
        ax.plot(iterations, moving_average(np.asarray(losses, dtype=np.float64), w), color="tab:red", lw=1.5,
                label=f"moving average over {w}")
        ax.legend(fontsize=8)
    else:
        _no_data(ax, "no outer iterations logged yet")
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("target loss after the unrolled steps")
    ax.grid(alpha=0.3)
    lines = _notes(context)
    _header(fig, "DD / SLDD training loss", lines)
    fig.subplots_adjust(top=1 - (_header_inches(lines) + 0.1) / fig.get_figheight())
    return _save(fig, path)
