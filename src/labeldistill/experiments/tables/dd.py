"""The original DD's sensitivity tables (10, 11, 12, 15) and the paper's image distillation in its
own loop (Table 17).

Tables 10-12 and 15 edit how ONE trained DD set is tested, as the paper did: every cell is the
DD run of its dataset and seed (``mnist/dd/100``: the run's own test, DD's 200 fresh networks by
the learned schedule) or an evaluation of that run (``@variant=...``, ``@arch=...``); nothing is
distilled again. The "30 steps", "optimized" and "original order" columns and Table 15's
AlexNet column are therefore one cell, the run itself, as the paper's identical numbers are.
"""
from __future__ import annotations

from ..spec import PaperCell, TableSpec, register_table
from ._common import METHOD_LABELS, NAMES, row

_DATASETS = ("mnist", "cifar10")
_SAME_RUN = ("{dataset}/dd/100 (no @variant) is the DD run's own test: 200 fresh networks trained by the learned "
             "schedule (its 30 steps, lrs and image order, plain SGD), the same number in every one of these tables.")
_DD_NOTE = ("DD is our implementation of the original method (labeldistill.unrolled; the reference code's settings: "
            "10 steps x 10 classes x 1 image, 3 epochs = 30 unrolled steps, learned lrs), one run per dataset and "
            "seed; every cell tests that run, as the paper tested one DD result per dataset.")

# The label sets' counterparts of each variant (ours only; the paper's Section 4.4 states them in words).
_LD_METHODS = ("ld", "ld-rr")
_LD_NOTE = ("MNIST / CIFAR-10 LD and LD RR rows (ours only): the label-distillation runs of Table 1 (100 base examples; "
            "seed 0, or each seed of --seeds), tested the variant's way where a label set has one.")

# Table 10: first N of the 30 steps (the rest at lr 0); 35 = +5 steps at the mean lr.
_T10_STEPS = ("10", "15", "20", "25", "30", "35")
_T10 = {"mnist": "35.65±11.19 43.25±11.47 54.85±12.28 52.54±11.40 77.32±5.08 53.89±10.51",
        "cifar10": "21.14±4.08 22.50±4.24 27.08±3.22 28.54±2.41 35.20±1.09 28.80±3.33"}


def _steps_cell(dataset: str, steps: str) -> str:
    n = int(steps)
    if n == 30:
        return f"{dataset}/dd/100"
    if n > 30:
        return f"{dataset}/dd/100@variant=extended:{n - 30}"
    return f"{dataset}/dd/100@variant=first-steps:{n}"


def _ld_steps_cell(dataset: str, method: str, steps: str) -> str:
    """The label set's counterpart of DD's first N of 30 steps: T x N / 30 steps of the LD run's own test."""
    return f"{dataset}/{method}/100" if steps == "30" else f"{dataset}/{method}/100@steps=x{steps}/30"


def _ours_row(cells: list[PaperCell], names: list[str], row_label: str, columns: list[str]) -> None:
    cells.extend(PaperCell(name, None, None, row_label, col) for name, col in zip(names, columns))


def _table10() -> TableSpec:
    cells: list[PaperCell] = []
    columns = [f"{s} steps" for s in _T10_STEPS]
    for dataset in _DATASETS:
        row(cells, [_steps_cell(dataset, s) for s in _T10_STEPS], _T10[dataset], f"{NAMES[dataset]} DD", columns)
        for method in _LD_METHODS:
            _ours_row(cells, [_ld_steps_cell(dataset, method, s) for s in _T10_STEPS], f"{NAMES[dataset]} {METHOD_LABELS[method]}",
                      columns)
    return TableSpec(10, "Sensitivity of original DD to the number of steps (100 images)", tuple(cells),
                     notes=("@variant=first-steps:N keeps the learned lrs of the first N of the 30 steps and sets the rest "
                            "to 0; @variant=extended:5 trains the 30 steps and then 5 more at the mean learned lr, "
                            "continuing the image order (the paper's '35').", _DD_NOTE, _SAME_RUN.format(dataset="mnist"),
                            _LD_NOTE + " Here the LD / LD RR cell of column N trains the 20 test models for T x N / 30 steps "
                            "(@steps=xN/30), the same fraction of the set's own training length as DD's first N of 30."))


# Table 11: the learned lr at each step vs their mean at every step. Ours only: the set trained like a
# label set (Adam, random minibatches, T chosen on validation), the off-the-shelf optimiser of Section 4.4.
_T11 = {"mnist": "77.32±5.08 62.38±13.11", "cifar10": "35.20±1.09 30.59±3.95"}


def _table11() -> TableSpec:
    cells: list[PaperCell] = []
    for dataset in _DATASETS:
        row(cells, [f"{dataset}/dd/100", f"{dataset}/dd/100@variant=average-lr"], _T11[dataset], f"{NAMES[dataset]} DD",
            ["Optimized", "Average of optimized"])
        cells.append(PaperCell(f"{dataset}/dd/100@variant=like-ld", None, None, f"{NAMES[dataset]} DD",
                               "Adam, random minibatches (like an LD set)"))
        for method in _LD_METHODS:
            _ours_row(cells, [f"{dataset}/{method}/100"], f"{NAMES[dataset]} {METHOD_LABELS[method]}",
                      ["Adam, random minibatches (like an LD set)"])
    return TableSpec(11, "Sensitivity of original DD to learning rates (100 images)", tuple(cells),
                     notes=("@variant=average-lr: the mean of the 30 learned lrs at every step, same images and order.",
                            "@variant=like-ld (not in the paper's table, ours only): the DD images and labels trained the way "
                            "an LD set is (Adam lr 0.001, random minibatches of 10, the number of steps chosen on validation "
                            "from the baselines' grid): the 'off-the-shelf optimiser' of the paper's Section 4.4.",
                            _DD_NOTE, _LD_NOTE + " An LD set has no per-step lrs to average: its own test (one lr, Adam, for "
                            "every step) is the counterpart, in the 'like an LD set' column."))


# Table 12: the order of the images.
_T12 = {"mnist": "77.32±5.08 50.20±12.83 62.67±10.82", "cifar10": "35.20±1.09 24.65±2.16 22.59±3.23"}


def _table12() -> TableSpec:
    cells: list[PaperCell] = []
    for dataset in _DATASETS:
        row(cells, [f"{dataset}/dd/100", f"{dataset}/dd/100@variant=shuffle-within", f"{dataset}/dd/100@variant=shuffle-across"],
            _T12[dataset], f"{NAMES[dataset]} DD", ["Original", "Shuffled within epoch", "Shuffled across epochs"])
        _ours_row(cells, [f"{dataset}/dd/100@variant=shuffle-steps-within", f"{dataset}/dd/100@variant=shuffle-steps-across"],
                  f"{NAMES[dataset]} DD", ["Whole steps shuffled within epoch", "Whole steps shuffled across epochs"])
        for method in _LD_METHODS:
            _ours_row(cells, [f"{dataset}/{method}/100"], f"{NAMES[dataset]} {METHOD_LABELS[method]}", ["Shuffled across epochs"])
    return TableSpec(12, "Sensitivity of original DD to the order of examples (100 images)", tuple(cells),
                     notes=("@variant=shuffle-within permutes the images each epoch's steps use, per epoch, and re-chunks "
                            "them into steps (lrs stay with the step positions; steps are no longer class-balanced); "
                            "@variant=shuffle-across does so once over all 30 steps. One permutation per test run, drawn "
                            "from the run's seed, shared by the 200 test networks. The 'whole steps' columns (ours: the paper's words "
                            "also fit them) permute the steps themselves (@variant=shuffle-steps-within / -across): each step "
                            "keeps its 10 images, one per class; only their order changes.", _DD_NOTE,
                            _LD_NOTE + " An LD set has no order: each of its 20 test models draws its own random "
                            "minibatches, so its own test is the counterpart of the shuffled columns (shown under the "
                            "last)."))


# Table 15: the CIFAR-10 DD set (AlexCifarNet) trained by its schedule on another architecture.
def _table15() -> TableSpec:
    cells: list[PaperCell] = []
    row(cells, ["cifar10/dd/100", "cifar10/dd/100@arch=lenet"], "35.20±1.09 25.92±2.35", "CIFAR-10 DD", ["AlexNet", "LeNet"])
    return TableSpec(15, "Sensitivity of original DD to the architecture (distilled with AlexNet, 100 images)", tuple(cells),
                     notes=("@arch=lenet: 200 fresh LeNets (32-pixel colour input) trained by the learned schedule, same "
                            "order and lrs. LD's counterparts are Tables 13 and 14 (labels distilled with AlexNet, "
                            "tested on LeNet and ResNet).", _DD_NOTE))


# Table 17: image distillation in the LD loop ("our DD"): --learn images, uniform-noise start.
_T17_NS = (10, 20, 50, 100)
_T17 = {
    "mnist": {"dd-ours": "55.48±4.42 17.90±4.54 34.40±4.49 34.44±6.15", "dd-ours-rr": "22.33±2.75 49.30±2.72 30.16±5.32 36.43±5.50"},
    "cifar10": {"dd-ours": "12.99±1.41 12.09±0.99 16.01±1.48 17.92±1.71", "dd-ours-rr": "20.20±0.38 22.71±0.79 26.04±1.22 27.05±1.86"},
}
_T17_LABELS = {"dd-ours": "(DD)", "dd-ours-rr": "(DD RR)"}


def _table17() -> TableSpec:
    cells: list[PaperCell] = []
    for dataset, by_method in _T17.items():
        for method, text in by_method.items():
            row(cells, [f"{dataset}/{method}/{n}" for n in _T17_NS], text, f"{NAMES[dataset]} {_T17_LABELS[method]}",
                [f"N={n}" for n in _T17_NS])
    return TableSpec(17, "Image distillation with the label-distillation loop ('our DD')", tuple(cells),
                     notes=("dd-ours / dd-ours-rr: the one online loop (resets, label-selection validation, 20 test models "
                            "trained with Adam on random minibatches) learning the images (--learn images) with fixed "
                            "one-hot labels, classes in turn, from uniform noise (--image-init uniform), with the "
                            "second-order / ridge-regression meta-gradient; reset window 50 (the paper's), everything else "
                            "as LD. The paper calls its results unstable (its own numbers do not grow with N).",))


for _spec in (_table10(), _table11(), _table12(), _table15(), _table17()):
    register_table(_spec)
