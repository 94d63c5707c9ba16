"""What every figure shares: a figure on matplotlib's Agg canvas (no pyplot state), its header and notes, saving,
images in an axis, and the colours."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
MAX_GRID_IMAGES = 100
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


def _legend_on_top(ax, ncol: int = 3) -> None:
    """A one-row legend in head-room added above the data, so it never hides a curve."""
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    lo, hi = ax.get_ylim()
    rows = math.ceil(len(handles) / ncol)
    ax.set_ylim(lo, hi + (0.14 + 0.1 * rows) * (hi - lo))
    ax.legend(loc="upper left", ncol=ncol, fontsize=8, framealpha=0.9)


def _legend_below(ax, inches: float = 0.5, ncol: int = 2) -> None:
    """A legend centred ``inches`` under the axis (below its tick labels and name) whatever the panel's height: an
    offset in axes fraction grows with a short panel and leaves a gap under a tall one. Call it once the figure is laid
    out; the saved figure (``bbox_inches="tight"``) grows to hold it."""
    below = inches / (ax.get_position().height * ax.figure.get_figheight())
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -below), ncol=ncol, frameon=False)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="0.4", transform=ax.transAxes)


def accuracy_limits(values: Sequence[float], margin: float = 1.0) -> tuple[float, float]:
    """Y limits for accuracies in percent: the values with ``margin`` points either side, never above 100 nor below 0
    (matplotlib pads a lone point by a fraction of its value: 92.5 to 105 % for one validation at 97.7)."""
    return max(0.0, min(values) - margin), min(100.0, max(values) + margin)
