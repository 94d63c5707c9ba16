"""Table 4: training time of LD, LD RR, our DD (RR) and the original DD (minutes), beside ours.

The cells are the runs of Tables 1 and 17 (N = 100, seed 0): ``reproduce 4`` computes (or reuses)
them and reads each run's own wall time from its ``result.json`` (``distill_seconds``: the loop,
label-selection validations included, without the final test). Ours are measured on whatever
machine ran them, so each is also shown as a ratio to our LD on the same dataset *and machine*,
beside the paper's ratio to its LD (one GPU, a 2080 Ti "in almost all cases").
"""
from __future__ import annotations

from ..spec import PaperCell, TableSpec, register_table
from ._common import NAMES

_T4 = {  # minutes: DD, LD, LD RR, Our DD, Our DD RR
    "mnist": {"ld": 61, "ld-rr": 65, "dd-ours": 67, "dd-ours-rr": 72, "dd": 116},
    "cifar10": {"ld": 86, "ld-rr": 98, "dd-ours": 96, "dd-ours-rr": 90, "dd": 205},
}
LABELS = {"ld": "LD", "ld-rr": "LD (RR)", "dd-ours": "Our DD", "dd-ours-rr": "Our DD (RR)", "dd": "DD (original)"}
REFERENCE_METHOD = "ld"  # ratios are to LD on the same dataset


def _table4() -> TableSpec:
    cells = [PaperCell(f"{dataset}/{method}/100", float(minutes), 0.0, f"{NAMES[dataset]} {LABELS[method]}", "minutes")
             for dataset, by_method in _T4.items() for method, minutes in by_method.items()]
    return TableSpec(4, "Training time of DD and our LD (minutes)", tuple(cells), measure="minutes",
                     notes=("Ours: distill_seconds of each run's result.json (the training loop with its label-selection "
                            "validations; DD: its outer iterations), not the final 20- / 200-model test. Runs made on "
                            "different machines are not comparable: the ratio to our LD is given only when both runs "
                            "used the same device (machine.json, written by reproduce; else device kind and platform), "
                            "and never for a run resumed on another device.",
                            "DD (original) is our implementation of the original method (labeldistill.unrolled), not the "
                            "authors' code the paper timed; its time depends on our unrolled trainer.",
                            "The paper's numbers are for one GPU (a 2080 Ti in almost all cases). 100 images, seed 0."))


register_table(_table4())
