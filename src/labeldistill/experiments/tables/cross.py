"""Table 3: cross-dataset distillation (E → M, E → K, B → C, E → K-49)."""
from __future__ import annotations

from ..spec import PaperCell, TableSpec, register_table
from ._common import METHOD_LABELS, NS, row, setting

# (source, target): {method: N = 10 20 50 100 200 500}
_T3 = {
    ("emnist-letters", "mnist"): {
        "ld": "36.13±5.51 57.82±1.91 69.21±1.82 77.09±1.66 83.67±1.43 86.02±1.00",
        "ld-rr": "56.08±2.88 67.62±3.03 80.80±1.44 82.70±1.33 84.44±1.18 86.79±0.76",
    },
    ("emnist-letters", "kmnist"): {
        "ld": "31.90±2.82 39.88±1.98 47.93±1.38 51.91±0.85 57.46±1.37 59.84±0.80",
        "ld-rr": "34.35±3.37 46.67±1.66 53.13±1.88 57.02±1.24 58.01±1.28 63.77±0.71",
    },
    ("cub", "cifar10"): {
        "ld": "26.86±0.97 28.63±0.86 31.21±0.74 34.02±0.66 38.39±0.56 38.12±0.41",
        "ld-rr": "26.50±0.54 28.95±0.47 32.23±3.59 32.19±7.89 36.55±6.32 38.46±6.97",
    },
    ("emnist-letters", "kuzushiji-49"): {
        "ld": "7.37±1.01 9.79±1.23 17.80±0.78 19.17±1.27 22.78±0.98 23.99±0.81",
        "ld-rr": "10.48±1.26 14.84±1.83 21.59±1.87 20.86±1.81 24.59±2.26 24.72±1.78",
    },
}


def _table3() -> TableSpec:
    cells: list[PaperCell] = []
    for (source, target), by_method in _T3.items():
        for method, text in by_method.items():
            row(cells, [f"{source}:{target}/{method}/{n}" for n in NS], text, f"{setting(source, target)} {METHOD_LABELS[method]}",
                [f"N={n}" for n in NS])
    return TableSpec(3, "Cross-dataset distillation", tuple(cells),
                     notes=("Base images come from the source dataset, their own classes ignored; no target image is "
                            "used to train the test models. E = EMNIST letters, M = MNIST, K = KMNIST, B = CUB, "
                            "C = CIFAR-10, K-49 = Kuzushiji-49.",))


register_table(_table3())
