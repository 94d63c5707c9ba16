"""The flexibility claim side by side (ours; the paper's Section 4.4 and Figure 2 in one table).

One row per distilled set (MNIST, 100 images, seed 0): original DD, LD and LD RR, each trained the
way it was made ("as made") and then under the same perturbations of the training that consumes it:

* fewer / more steps: T x 1/3 ... 7/6 (DD: the first 10 ... 25 of its 30 learned steps, the rest
  at lr 0, and 5 more steps at the mean lr; a label set: T x N / 30 steps of its own test);
* another optimiser: DD with the mean of its learned lrs at every step (Table 11); a label set
  with plain SGD at one constant lr chosen on validation instead of Adam (``@optimizer=sgd``);
* another data order: DD's images shuffled across its steps (Table 12); a label set's models
  drawing their minibatches from another stream (``@order=1``: same initialisations);
* another architecture: ConvNet-3 (``convnet3``, instance norm) instead of the LeNet both were
  distilled with (AlexNet, Table 15's choice for CIFAR-10, needs 32-pixel input).

Every cell tests ONE distilled run (the DD run of Tables 1 and 10-12, the LD / LD RR runs of
Table 1), so the cells of Tables 10-12 are shared with this one.
"""
from __future__ import annotations

from pathlib import Path

from ..spec import PaperCell, TableSpec, register_table
from ._common import METHOD_LABELS, NAMES

_DATASET = "mnist"
_OTHER_ARCH = "convnet3"
# column: (DD cell suffix, label-set cell suffix, the paper's DD number from Tables 10-12 or None)
_COLUMNS: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    "as made": ("", "", (77.32, 5.08)),
    "T x 1/3": ("@variant=first-steps:10", "@steps=x10/30", (35.65, 11.19)),
    "T x 1/2": ("@variant=first-steps:15", "@steps=x15/30", (43.25, 11.47)),
    "T x 2/3": ("@variant=first-steps:20", "@steps=x20/30", (54.85, 12.28)),
    "T x 5/6": ("@variant=first-steps:25", "@steps=x25/30", (52.54, 11.40)),
    "T x 7/6": ("@variant=extended:5", "@steps=x35/30", (53.89, 10.51)),
    "another optimiser": ("@variant=average-lr", "@optimizer=sgd", (62.38, 13.11)),
    "another data order": ("@variant=shuffle-across", "@order=1", (62.67, 10.82)),
    "another architecture": (f"@arch={_OTHER_ARCH}", f"@arch={_OTHER_ARCH}", None),
}


_FRACTIONS = {"T x 1/3": 1 / 3, "T x 1/2": 1 / 2, "T x 2/3": 2 / 3, "T x 5/6": 5 / 6, "as made": 1.0, "T x 7/6": 7 / 6}
_CHANGES = ("as made", "another optimiser", "another data order", "another architecture")


def _figure(rows: list[dict], path: Path) -> Path:
    """Figure 2 of the paper as one picture: accuracy against steps, and each set under each change."""
    from ...report.figures import flexibility

    spec_cells = {c.cell: c for c in _CELLS}
    series: dict[str, dict[str, tuple[float, float]]] = {}
    paper_dd = f"{NAMES[_DATASET]} DD (paper, Tables 10-12)"
    for r in rows:
        cell = spec_cells.get(r["cell"])
        if cell is None:
            continue
        if r.get("ours_mean") is not None:
            series.setdefault(cell.row, {})[cell.column] = (float(r["ours_mean"]), float(r["ours_std"] or 0.0))
        if cell.mean is not None:  # the paper's DD numbers, beside ours
            series.setdefault(paper_dd, {})[cell.column] = (float(cell.mean), float(cell.std or 0.0))
    order = [paper_dd] + [f"{NAMES[_DATASET]} {m}" for m in ("DD", METHOD_LABELS["ld"], METHOD_LABELS["ld-rr"])]
    series = {name: series.get(name, {}) for name in order}
    return flexibility(series, sorted(_FRACTIONS.items(), key=lambda kv: kv[1]), _CHANGES, path,
                       title="Flexibility of distilled sets: MNIST, 100 images, seed 0",
                       context="mean ± std over the fresh models (DD: 200 networks; LD / LD RR: 20 models)")


def _cells() -> tuple[PaperCell, ...]:
    cells: list[PaperCell] = []
    name = NAMES[_DATASET]
    for column, (dd, _, paper) in _COLUMNS.items():
        mean, std = paper if paper is not None else (None, None)
        cells.append(PaperCell(f"{_DATASET}/dd/100{dd}", mean, std, f"{name} DD", column))
    for method in ("ld", "ld-rr"):
        for column, (_, ours, _) in _COLUMNS.items():
            cells.append(PaperCell(f"{_DATASET}/{method}/100{ours}", None, None, f"{name} {METHOD_LABELS[method]}", column))
    return tuple(cells)


_CELLS = _cells()


def _table() -> TableSpec:
    return TableSpec(
        "flexibility", "Flexibility of distilled sets: DD against LD / LD RR under the same changes to training (100 images)",
        _CELLS,
        notes=("Ours: the paper argues this in Section 4.4 and Figure 2; its numbers here are DD's from Tables 10-12 "
               "(the rows of LD / LD RR and the architecture column are ours only).",
               "DD: one run per seed tested by its learned schedule (200 networks) or a variant of it; T x N/30 is the "
               "first N of its 30 steps (x 7/6: 5 more at the mean lr); another optimiser = the mean learned lr at every "
               "step; another order = the images shuffled across steps.",
               "LD / LD RR: the Table 1 runs (seed 0), 20 fresh models per cell; T x A/B trains them for T x A / B steps; "
               "another optimiser = plain SGD (no momentum) at one constant lr chosen on the validation split from "
               "0.001 ... 1 (labeldistill.lrsearch); another order = each model's minibatches from another stream of "
               "its seed (the same initialisations).",
               f"Another architecture: {_OTHER_ARCH} (ConvNet-3 with instance norm) for both, trained the set's own way "
               "(DD: its schedule; LD: Adam, T steps)."),
        figure=_figure)


register_table(_table())
