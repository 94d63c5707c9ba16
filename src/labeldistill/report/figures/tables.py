"""Tables drawn: each test model's accuracy and each row's mean (a table's rows as points), accuracy against training
steps (Figure 2a), the flexibility table."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._canvas import COLOURS, _figure, _header, _header_inches, _legend_below, _no_data, _notes, _save, accuracy_limits


# -- a table's rows as points: each test model and the mean ---------------------------------

def model_accuracies(panels: dict[str, Sequence[tuple[str, Sequence[float], float, float]]], path: str | Path, *,
                     references: dict[str, Sequence[tuple[str, float]]] | None = None, title: str | None = None,
                     context: str | None = None) -> Path:
    """A table's rows as points, one panel per group (a dataset), rows top to bottom in the table's order: each test
    model's accuracy as a small dot, the mean ± std as a marker with a bar. ``panels``: group -> [(row label,
    accuracies, mean, std)] (rows without a result are the caller's to leave out); ``references``: group ->
    [(label, value)], dashed vertical lines (another row's mean, a number from elsewhere for scale)."""
    references = references or {}
    groups = list(panels) or ["(none)"]
    height = max([len(rows) for rows in panels.values()] + [1])
    fig = _figure(7.0 * len(groups), 1.6 + 0.42 * height + _header_inches(_notes(context)))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, group in zip(axes, groups):
        rows = panels.get(group, [])
        if not rows:
            _no_data(ax, "no cell computed yet")
            continue
        values: list[float] = []
        for y, (_, accs, mean, std) in enumerate(rows):
            accs = [float(a) for a in accs]
            ax.scatter(accs, [y] * len(accs), s=14, color="0.55", zorder=2)
            ax.errorbar([mean], [y], xerr=[std], fmt="D", ms=6, capsize=4, color="tab:blue", zorder=3)
            ax.text(mean, y - 0.22, f"{mean:.2f}", ha="center", va="bottom", fontsize=7, color="tab:blue")
            values += accs + [mean - std, mean + std]
        for i, (label, value) in enumerate(references.get(group, ())):
            ax.axvline(value, color=COLOURS[(i + 1) % len(COLOURS)], ls="--", lw=1, label=label, zorder=1)
            values.append(value)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.7)  # the table's first row on top
        ax.set_xlim(*accuracy_limits(values, margin=0.5))
        ax.set_xlabel("test accuracy (%)")
        ax.set_title(group, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout(rect=(0, 0, 1, 1 - _header_inches(_notes(context)) / fig.get_figheight()))
    for ax, group in zip(axes, groups):
        if references.get(group):
            _legend_below(ax)
    _header(fig, title or "Test accuracy of each row", _notes(context))
    return _save(fig, path)


# -- Figure 2a: test accuracy against training steps ---------------------------------------

def steps_accuracy(series: dict[str, Sequence[tuple[int, float, float]]], path: str | Path, *, distilled_steps: int | None = None,
                   title: str | None = None, context: str | None = None) -> Path:
    """Test accuracy (mean +- std over fresh models) against the number of training steps, one line per series."""
    fig = _figure(8, 5)
    ax = fig.add_subplot(1, 1, 1)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.86, bottom=0.12)
    for i, (name, pts) in enumerate(sorted(series.items())):
        pts = sorted(pts)
        x = [p[0] for p in pts]
        ax.errorbar(x, [p[1] for p in pts], yerr=[p[2] for p in pts], fmt="o-", capsize=4, lw=1.4, ms=5,
                    color=COLOURS[i % len(COLOURS)], label=name)
    if distilled_steps is not None:
        ax.axvline(distilled_steps, color="0.3", ls="--", lw=1, label=f"distilled T = {distilled_steps}")
    ax.set_xlabel("training steps of the fresh models")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or "Test accuracy against the number of training steps", fontsize=12, pad=24 if context else 6)
    if context:
        ax.text(0.5, 1.02, context, ha="center", va="bottom", fontsize=8, color="0.3", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def flexibility(series: dict[str, dict[str, tuple[float, float]]], fractions: Sequence[tuple[str, float]], changes: Sequence[str],
                path: str | Path, *, title: str | None = None, context: str | None = None) -> Path:
    """The flexibility of distilled sets (the paper's Figure 2 as one figure): left, test accuracy
    against the number of training steps as a fraction of each set's own; right, each set as made
    and under each change. ``series``: set name -> {column: (mean, std)} (missing columns are skipped);
    ``fractions``: (column, fraction of T); ``changes``: the other columns, "as made" first."""
    fig = _figure(12, 4.8)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.25]})
    fig.subplots_adjust(left=0.06, right=0.99, top=0.8, bottom=0.2, wspace=0.18)
    names = list(series)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        vals, colour = series[name], COLOURS[i % len(COLOURS)]
        pts = [(f, vals[c]) for c, f in fractions if c in vals]
        if pts:
            ax1.errorbar([f for f, _ in pts], [v[0] for _, v in pts], yerr=[v[1] for _, v in pts], fmt="o-", capsize=3, lw=1.4,
                         ms=5, color=colour, label=name)
        bars = [(j, vals[c]) for j, c in enumerate(changes) if c in vals]
        if bars:
            ax2.bar([j + (i - (len(names) - 1) / 2) * width for j, _ in bars], [v[0] for _, v in bars], width * 0.95,
                    yerr=[v[1] for _, v in bars], capsize=2, color=colour, label=name)
    ax1.axvline(1.0, color="0.5", ls=":", lw=1)
    ax1.set_xlabel("training steps / the set's own (DD: first N of its 30 steps)")
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("Fewer or more steps", fontsize=10)
    ax2.set_xticks(range(len(changes)), [c.replace("another ", "another\n") for c in changes], fontsize=8)
    ax2.set_title("Another optimiser, data order, architecture", fontsize=10)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
        if not ax.has_data():
            _no_data(ax, "no cell computed yet")
    ax1.legend(fontsize=8)
    _header(fig, title or "Flexibility of distilled sets", _notes(context))
    return _save(fig, path)
