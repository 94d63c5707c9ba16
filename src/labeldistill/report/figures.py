"""The report's figures, one function per figure.

Every function takes plain numpy arrays / lists (no run directory), draws with matplotlib's
Agg canvas (no display, no pyplot state: nothing is left open), writes a PNG and returns
its path. Images are ``N x H x W x C`` in [0, 1]; labels are ``N x K`` probabilities.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
MAX_GRID_IMAGES = 100
ANNOTATE_MIN = 0.05  # heat-map values are printed when at least this (the paper's Figures 6 and 7)
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)  # render with Agg whatever the user's pyplot backend is
    return fig


def _save(fig: Figure, path: str | Path, *, tight: bool = True) -> Path:
    """Write a PNG; ``tight`` trims the margins (one more draw: not for the big grid, laid out exactly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white", **({"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}))
    fig.clear()  # free the artists; the figure was never registered with pyplot
    return path


def _header_inches(lines: Sequence[str]) -> float:
    """Height (inches) that :func:`_header` needs above the axes."""
    return 0.55 + 0.17 * len(lines)


def _header(fig: Figure, title: str, lines: Sequence[str]) -> None:
    """The figure title, then grey note lines under it, at fixed distances from the top edge."""
    h = fig.get_figheight()
    fig.suptitle(title, fontsize=12, y=1 - 0.1 / h, va="top")
    for i, line in enumerate(lines):
        fig.text(0.5, 1 - (0.42 + 0.17 * i) / h, line, ha="center", va="top", fontsize=8, color="0.3")


def _notes(*items: str | None) -> list[str]:
    return [i for i in items if i]


def _show(ax, img: np.ndarray, **kw) -> None:
    img = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def _short(name: str, n: int = 12) -> str:
    name = str(name)
    return name if len(name) <= n else name[: n - 1] + "…"


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


# -- Figure 8: base images with their learned labels --------------------------------------

def label_bar_limits(labels: np.ndarray) -> tuple[float, float]:
    """The bar charts' y range, in tenths: from 0 (or below, for labels with negative entries: SLDD's are free
    vectors) to the largest entry, at least 0.2. Probability labels stay within 0 to 1; no entry is cut off."""
    lo, hi = float(np.min(labels)), float(np.max(labels))
    ymin = min(0.0, math.floor(10 * lo + 1e-9) / 10)
    ymax = max(0.2, math.ceil(10 * hi - 1e-9) / 10)
    return ymin, ymax


def label_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path, *,
               base_names: Sequence[str] | None = None, same_classes: bool = True, max_images: int = MAX_GRID_IMAGES,
               title: str | None = None, context: str | None = None) -> Path:
    """Each base image with its learned label: a bar chart for up to 20 classes, else its top 3 classes.

    Args:
        base_names: the base image's own class (shown above it), or None.
        same_classes: the base images' classes are the target classes (within-dataset).
        max_images: show the first this many images.
    """
    images, labels = np.asarray(images), np.asarray(labels, dtype=np.float64)
    n, k = min(len(images), max_images), labels.shape[1]
    ymin, ymax = label_bar_limits(labels[:n])  # one scale for all the bar charts
    ncols = min(10, n)
    nrows = math.ceil(n / ncols)
    bars = k <= 20
    ticks = k <= 10
    img_h, lab_h = 1.35, ((0.95 if ticks else 0.6) if bars else 0.6)
    shown = f"first {n} of {len(images)} base images (capped at {max_images})" if n < len(images) else f"all {n} base images"
    how = (f"bars: the learned label over the target classes ({ymin:g} to {ymax:g}), largest in red" + (", true class outlined" if same_classes and base_names is not None else "")
           if bars else "the three largest entries of the learned label")
    own_kind = "true" if same_classes else "own (source)"
    lines = _notes(f"{context} · {shown}" if context else shown,
                   f"Above each image: its index, its {own_kind} class and its largest label entry; below: {how}." if base_names is not None
                   else f"Above each image: its index and its largest label entry; below: {how}.")
    cell_h, top_in, bottom_in = img_h + lab_h + 0.55, _header_inches(lines) + 0.25, 0.15
    fig = _figure(ncols * 1.7, nrows * cell_h + top_in + bottom_in)
    height = fig.get_figheight()
    outer = fig.add_gridspec(nrows, ncols, hspace=0.2, wspace=0.25, left=0.03, right=0.98,
                             top=1 - top_in / height, bottom=bottom_in / height)
    names = [str(c) for c in class_names]
    for i in range(n):
        r, c = divmod(i, ncols)
        inner = outer[r, c].subgridspec(2, 1, height_ratios=[img_h, lab_h], hspace=0.06)
        ax = fig.add_subplot(inner[0])
        _show(ax, images[i])
        top = int(np.argmax(labels[i]))
        own = f" · {'true' if same_classes else 'own'}: {_short(base_names[i], 10)}" if base_names is not None else ""
        ax.set_title(f"#{i}{own}\ntop: {_short(names[top], 10)} ({labels[i, top]:.2f})", fontsize=7, pad=2, linespacing=1.1)
        lx = fig.add_subplot(inner[1])
        if bars:
            colours = ["0.55"] * k
            colours[top] = "tab:red"
            lx.bar(np.arange(k), labels[i], color=colours, width=0.8)
            own_idx = names.index(str(base_names[i])) if same_classes and base_names is not None and str(base_names[i]) in names else None
            if own_idx is not None:  # outline the true class's bar
                lx.bar([own_idx], [labels[i, own_idx]], width=0.8, fill=False, edgecolor="black", linewidth=0.8)
            lx.set_ylim(ymin, ymax)
            lx.set_xlim(-0.6, k - 0.4)
            yticks = [ymin, 0, ymax] if ymin < 0 else [0, ymax / 2, ymax]
            if ymin < 0:  # SLDD's free label vectors: where zero is
                lx.axhline(0, color="0.3", linewidth=0.4)
            lx.set_yticks(yticks)
            lx.set_yticklabels([f"{v:g}" for v in yticks])
            lx.tick_params(axis="y", labelsize=5, length=2, pad=1)
            if c:
                lx.set_yticklabels([])
            if ticks:
                lx.set_xticks(np.arange(k))
                lx.set_xticklabels([_short(s, 8) for s in names], fontsize=5, rotation=90)
                lx.tick_params(axis="x", length=1, pad=1)
            else:
                lx.set_xticks([])
                lx.set_xlabel(f"{k} target classes", fontsize=5, labelpad=1)
        else:
            order = np.argsort(-labels[i])[:3]
            lx.axis("off")
            lx.text(0.5, 1.0, "\n".join(f"{_short(names[j], 12):<12} {labels[i, j]:.2f}" for j in order),
                    ha="center", va="top", fontsize=6, family="monospace", transform=lx.transAxes)
    _header(fig, title or "Learned labels of the base images", lines)
    return _save(fig, path, tight=ncols < 10)  # a narrow grid: let the header widen the picture


# -- Figures 6 and 7: mean learned label per original class -------------------------------

def class_label_matrix(labels: np.ndarray, base_labels: np.ndarray, num_base_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows present among the base images, the mean label per row (rows x K), and the count per row."""
    labels, base_labels = np.asarray(labels, dtype=np.float64), np.asarray(base_labels, dtype=np.int64)
    rows = np.array(sorted(set(int(v) for v in base_labels if 0 <= v < num_base_classes)), dtype=np.int64)
    mat = np.stack([labels[base_labels == r].mean(axis=0) for r in rows]) if len(rows) else np.zeros((0, labels.shape[1]))
    counts = np.array([int((base_labels == r).sum()) for r in rows], dtype=np.int64)
    return rows, mat, counts


def argmax_agreement(labels: np.ndarray, base_labels: np.ndarray) -> float:
    """Fraction of base images whose learned label's argmax is their own class (within-dataset runs)."""
    labels, base_labels = np.asarray(labels), np.asarray(base_labels)
    return float(np.mean(labels.argmax(axis=1) == base_labels)) if len(labels) else float("nan")


def label_heatmap(labels: np.ndarray, base_labels: np.ndarray, base_class_names: Sequence[str], class_names: Sequence[str],
                  path: str | Path, *, title: str | None = None, context: str | None = None, note: str | None = None) -> Path:
    """Mean learned label (columns: target classes) for each original class of the base images (rows)."""
    rows, mat, counts = class_label_matrix(labels, base_labels, len(base_class_names))
    nr, nc = mat.shape
    cell = 0.42 if nc <= 15 else (0.3 if nc <= 30 else 0.14)
    rcell = 0.42 if nr <= 15 else (0.3 if nr <= 40 else 0.16)
    annotate = nc <= 30 and nr <= 60
    lines = _notes(context, note, f"values >= {ANNOTATE_MIN} printed" if annotate else "too many classes to print the values")
    top_in = _header_inches(lines) + 0.1
    fig = _figure(max(6.0, nc * cell + 3.2), max(4.5, nr * rcell + 1.6 + top_in))
    ax = fig.add_axes([2.0 / fig.get_figwidth(), 1.6 / fig.get_figheight(),
                       1 - 3.2 / fig.get_figwidth(), 1 - (1.6 + top_in) / fig.get_figheight()])
    vmax = max(float(mat.max()) if mat.size else 1.0, 1e-6)
    im = ax.imshow(mat, cmap="Blues", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    fs = 7 if nc <= 15 else 5.5
    if annotate:
        for i in range(nr):
            for j in range(nc):
                v = mat[i, j]
                if v >= ANNOTATE_MIN:
                    ax.text(j, i, f"{v:.2f}"[1:] if v < 1 else "1.0", ha="center", va="center", fontsize=fs,
                            color="white" if v > 0.6 * vmax else "black")
    tick_fs = 8 if nc <= 15 else (6 if nc <= 30 else 4)
    ax.set_xticks(np.arange(nc))
    ax.set_xticklabels([_short(c, 14) for c in class_names], rotation=90 if max(len(str(c)) for c in class_names) > 2 or nc > 15 else 0,
                       fontsize=tick_fs)
    ax.set_yticks(np.arange(nr))
    ax.set_yticklabels([f"{_short(base_class_names[r], 24)} (n={n})" for r, n in zip(rows, counts)], fontsize=8 if nr <= 40 else 4)
    ax.set_xlabel("target class (entry of the learned label)")
    ax.set_ylabel("original class of the base image")
    cax = fig.add_axes([1 - 1.05 / fig.get_figwidth(), 1.6 / fig.get_figheight(), 0.2 / fig.get_figwidth(),
                        1 - (1.6 + top_in) / fig.get_figheight()])
    cb = fig.colorbar(im, cax=cax)
    cb.set_label("mean label value", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    _header(fig, title or "Mean learned label per original class of the base images", lines)
    return _save(fig, path)


# -- Figure 9: label-weighted prototypes (cross-dataset) ----------------------------------

def prototypes(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One image per target class: the base images averaged pixel-wise with that class's label
    entries as weights (normalised to sum to one per class). Returns ``K x H x W x C``."""
    images, labels = np.asarray(images, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    w = np.clip(labels, 0.0, None)
    s = w.sum(axis=0, keepdims=True)
    w = np.where(s > 0, w / np.where(s > 0, s, 1.0), 1.0 / len(labels))
    return np.einsum("nk,nhwc->khwc", w, images)


def _stretch(img: np.ndarray) -> np.ndarray:
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi - lo > 1e-8 else np.full_like(img, 0.5)


def prototype_figure(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path, *,
                     title: str | None = None, context: str | None = None) -> Path:
    """Each target class's label-weighted prototype (contrast-stretched) and its difference from the
    plain mean of the base images (red: brighter than the mean, blue: darker)."""
    images = np.asarray(images, dtype=np.float64)
    protos = prototypes(images, labels)
    diff = protos - images.mean(axis=0, keepdims=True)
    scale = max(float(np.abs(diff).max()), 1e-8)
    k = len(protos)
    ncols = min(10, k)
    blocks = math.ceil(k / ncols)
    lines = _notes(context, "top: the base images averaged with the class's label entries as weights (contrast stretched)",
                   f"bottom: difference from the plain mean of the base images (red brighter, blue darker; common scale ±{scale:.3f})")
    top_in = _header_inches(lines) + 0.2
    fig = _figure(max(6.0, ncols * 1.35 + 0.9), blocks * 2.9 + top_in + 0.1)
    gs = fig.add_gridspec(blocks * 2, ncols, hspace=0.3, wspace=0.08, left=0.9 / fig.get_figwidth(), right=0.99,
                          top=1 - top_in / fig.get_figheight(), bottom=0.1 / fig.get_figheight())
    for j in range(k):
        b, c = divmod(j, ncols)
        ax = fig.add_subplot(gs[2 * b, c])
        _show(ax, _stretch(protos[j]))
        ax.set_title(_short(class_names[j], 14), fontsize=9, pad=3)
        dx = fig.add_subplot(gs[2 * b + 1, c])
        d = diff[j]
        if d.shape[-1] == 1:
            dx.imshow(d[..., 0], cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        else:
            dx.imshow(np.clip(0.5 + d / (2 * scale), 0, 1), interpolation="nearest")
        dx.set_xticks([])
        dx.set_yticks([])
        if c == 0:
            ax.set_ylabel("prototype", fontsize=8)
            dx.set_ylabel("− mean", fontsize=8)
    _header(fig, title or "Label-weighted prototype of each target class", lines)
    return _save(fig, path)


# -- training curves ----------------------------------------------------------------------

def _legend_on_top(ax, ncol: int = 3) -> None:
    """A one-row legend in head-room added above the data, so it never hides a curve."""
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    lo, hi = ax.get_ylim()
    rows = math.ceil(len(handles) / ncol)
    ax.set_ylim(lo, hi + (0.14 + 0.1 * rows) * (hi - lo))
    ax.legend(loc="upper left", ncol=ncol, fontsize=8, framealpha=0.9)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="0.4", transform=ax.transAxes)


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
    ax.set_title("Target accuracy of the students (never reset)" if students else
                 f"Target accuracy of the persistent model ({len(reset_steps)} resets)", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("target minibatch accuracy (%)")
    ax.grid(alpha=0.3)

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
    ax.set_title("Validation accuracy of fresh models trained on the labels (label selection)", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
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
    ax.set_title("Estimated training steps T_i at each reset", fontsize=10)
    ax.set_xlabel("step of the reset")
    ax.set_ylabel("T_i (steps)")
    ax.grid(alpha=0.3)
    _header(fig, title or "Training curves", lines)
    return _save(fig, path)


def accuracy_limits(values: Sequence[float], margin: float = 1.0) -> tuple[float, float]:
    """Y limits for accuracies in percent: the values with ``margin`` points either side, never above 100 nor below 0
    (matplotlib pads a lone point by a fraction of its value: 92.5 to 105 % for one validation at 97.7)."""
    return max(0.0, min(values) - margin), min(100.0, max(values) + margin)


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
        if references.get(group):
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - _header_inches(_notes(context)) / fig.get_figheight()))
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


def base_sets(runs: Sequence[dict], path: str | Path, *, max_images: int = MAX_GRID_IMAGES, title: str | None = None,
              context: str | None = None) -> Path:
    """The base images of several runs side by side, one panel per run, in the runs' order (by class).

    Each run: {"label", "images" (N x H x W x C in [0, 1]), "indices" (dataset indices or None),
    "classes" (one class name per image, or None), "selector", "sha256"}. Images that every other
    panel also has (same dataset index) are framed green, the others orange.
    """
    shown = [min(len(r["images"]), max_images) for r in runs]
    ncols = 10
    rows = [max(1, math.ceil(n / ncols)) for n in shown]
    index_sets = [set(int(i) for i in r["indices"]) if r.get("indices") is not None else None for r in runs]
    lines = _notes(context, "Green frame: the image is in every compared base set (same dataset index); orange: only in this one.")
    panel_w, cell = ncols * 0.78, 0.82
    height = max(rows) * cell + _header_inches(lines) + 0.9
    fig = _figure(max(6.0, len(runs) * (panel_w + 0.4)), height)
    outer = fig.add_gridspec(1, len(runs), wspace=0.08, left=0.02, right=0.98, top=1 - (_header_inches(lines) + 0.45) / height,
                             bottom=0.1 / height)
    for k, (r, n, nrows) in enumerate(zip(runs, shown, rows)):
        others = [s for j, s in enumerate(index_sets) if j != k and s is not None]
        common = set.intersection(*others) if others and index_sets[k] is not None else set()
        grid = outer[0, k].subgridspec(max(rows), ncols, hspace=0.35, wspace=0.08)
        shared = 0
        for i in range(n):
            ax = fig.add_subplot(grid[divmod(i, ncols)])
            _show(ax, r["images"][i])
            idx = int(r["indices"][i]) if r.get("indices") is not None else None
            if others and idx is not None:
                inside = idx in common
                shared += inside
                for side in ax.spines.values():
                    side.set_edgecolor("tab:green" if inside else "tab:orange")
                    side.set_linewidth(2.0)
            name = r["classes"][i] if r.get("classes") is not None else None
            ax.set_title(f"{_short(name, 8)}" if name is not None else f"#{i}", fontsize=6, pad=1)
        sha = (r.get("sha256") or "")[:12]
        extra = f", {shared} of {n} shared" if others else ""
        more = f" (first {n} of {len(r['images'])})" if n < len(r["images"]) else ""
        ax0 = fig.add_subplot(outer[0, k], frame_on=False)
        ax0.set_xticks([])
        ax0.set_yticks([])
        ax0.set_title(f"{r['label']}\nselector {r.get('selector') or '?'} · sha256 {sha or '?'}{extra}{more}", fontsize=9, pad=14)
    _header(fig, title or "Selected base images", lines)
    return _save(fig, path)


# -- learned images (our DD, images+labels, DD / SLDD) --------------------------------------

def _by_class(classes: np.ndarray, num_classes: int, per_class: int) -> list[list[int]]:
    return [[int(i) for i in np.flatnonzero(classes == c)[:per_class]] for c in range(num_classes)]


def learned_vs_initial(initial: np.ndarray, learned: np.ndarray, classes: np.ndarray, class_names: Sequence[str], path: str | Path, *,
                       per_class: int = 5, max_classes: int = 20, context: str | None = None, init: str | None = None) -> Path:
    """Per class (rows), each learned image beside the image it started from: pairs (initial | learned).

    ``initial`` / ``learned``: N x H x W x C in pixel space (shown clipped to [0, 1], as a model's
    input range); ``classes``: the class each image stands for (its fixed label, or its label's argmax)."""
    classes = np.asarray(classes, dtype=np.int64)
    k = len(class_names)
    rows = [(c, idx) for c, idx in enumerate(_by_class(classes, k, per_class)) if idx][:max_classes]
    per = max((len(idx) for _, idx in rows), default=1)
    lines = _notes(context, f"Each pair: the image at the start ({init or 'initial'}) | after learning; pixels clipped to [0, 1]; "
                            f"up to {per_class} images per class" + (f", first {max_classes} classes" if k > max_classes else ""))
    cell = 0.75
    height = max(1, len(rows)) * cell + _header_inches(lines) + 0.3
    fig = _figure(max(5.0, 2 * per * cell + 1.4), height)
    top = 1 - (_header_inches(lines) + 0.1) / height
    grid = fig.add_gridspec(max(1, len(rows)), 2 * per, left=1.2 / fig.get_figwidth(), right=0.99, top=top, bottom=0.05 / height,
                            hspace=0.15, wspace=0.05)
    for r, (c, idx) in enumerate(rows):
        for j, i in enumerate(idx):
            for side, imgs in enumerate((initial, learned)):
                ax = fig.add_subplot(grid[r, 2 * j + side])
                _show(ax, imgs[i])
                if r == 0:
                    ax.set_title("start" if side == 0 else "learned", fontsize=6, pad=1)
                if side == 1:
                    for sp in ax.spines.values():
                        sp.set_edgecolor("tab:red")
        fig.text(0.1 / fig.get_figwidth(), 1 - (_header_inches(lines) + 0.1 + (r + 0.5) * cell) / height, _short(class_names[c], 14),
                 fontsize=8, va="center", ha="left")
    if not rows:
        _no_data(fig.add_subplot(grid[0, 0]), "no images")
    _header(fig, "Learned images beside their initial images, by class", lines)
    return _save(fig, path)


def step_order_images(images: np.ndarray, order: Sequence[Sequence[int]], lrs: Sequence[float], epoch_length: int,
                      class_names: Sequence[str], classes: np.ndarray, path: str | Path, *, context: str | None = None) -> Path:
    """DD / SLDD: the images each step trains on, in step order. Row s holds the images of step s of
    the first epoch (steps s, s + L, s + 2L, ... of later epochs reuse them); its label gives the
    learned lr of that step in every epoch."""
    steps = min(epoch_length, len(order))
    batch = max(len(o) for o in order[:steps])
    lines = _notes(context, f"{len(lrs)} steps, {epoch_length} per epoch, {batch} images per step; row label: the learned lr of "
                            "that step in each epoch; pixels clipped to [0, 1]")
    cell = 0.72
    height = steps * cell + _header_inches(lines) + 0.3
    fig = _figure(max(5.0, batch * cell + 2.6), height)
    grid = fig.add_gridspec(steps, batch, left=2.4 / fig.get_figwidth(), right=0.99, top=1 - (_header_inches(lines) + 0.1) / height,
                            bottom=0.05 / height, hspace=0.35, wspace=0.05)
    for s in range(steps):
        for j, i in enumerate(order[s]):
            ax = fig.add_subplot(grid[s, j])
            _show(ax, images[int(i)])
            ax.set_title(_short(class_names[int(classes[int(i)])], 8), fontsize=5, pad=1)
        lr_text = " / ".join(f"{lrs[t]:.3g}" for t in range(s, len(lrs), epoch_length))
        fig.text(0.08 / fig.get_figwidth(), 1 - (_header_inches(lines) + 0.1 + (s + 0.5) * cell) / height, f"step {s}\nlr {lr_text}",
                 fontsize=7, va="center", ha="left")
    _header(fig, "Distilled images in step order", lines)
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
