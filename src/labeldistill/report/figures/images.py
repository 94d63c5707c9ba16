"""Images: base sets chosen by several selectors side by side, learned images beside their initial ones, and the
images a DD schedule steps on."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._canvas import MAX_GRID_IMAGES, _figure, _header, _header_inches, _no_data, _notes, _save, _short, _show


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
