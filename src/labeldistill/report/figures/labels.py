"""Learned labels on their base images: the grid of images with their labels (the paper's Figure 8), the mean label per
original class (Figures 6 and 7), label-weighted prototypes (Figure 9)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._canvas import MAX_GRID_IMAGES, _figure, _header, _header_inches, _notes, _save, _short, _show

ANNOTATE_MIN = 0.05  # heat-map values are printed when at least this (the paper's Figures 6 and 7)


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
