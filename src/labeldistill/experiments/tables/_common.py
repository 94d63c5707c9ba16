"""Helpers shared by the table modules: labels and the compact "mean±std" number strings."""
from __future__ import annotations

from ..spec import PaperCell

NS = (10, 20, 50, 100, 200, 500)  # base-example counts of Tables 1, 3, 13, 14
NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "kmnist": "KMNIST",
         "kuzushiji-49": "Kuzushiji-49", "emnist-letters": "EMNIST letters", "cub": "CUB"}
SHORT = {"mnist": "M", "cifar10": "C", "kmnist": "K", "kuzushiji-49": "K-49", "emnist-letters": "E", "cub": "B", "cifar100": "C-100"}
METHOD_LABELS = {"ld": "LD", "ld-rr": "LD RR", "baseline": "Baseline", "baseline-ls": "Baseline LS",
                 "baseline-rr": "Baseline RR", "baseline-rr-ls": "Baseline RR LS"}
ARCH_LABELS = {"alexnet": "AlexNet", "lenet": "LeNet", "resnet14": "ResNet-18 (our resnet14)"}


def numbers(text: str) -> list[tuple[float, float]]:
    """``"60.89±3.20 74.37±1.27"`` -> ``[(60.89, 3.2), (74.37, 1.27)]``."""
    out = []
    for item in text.split():
        mean, std = item.split("±")
        out.append((float(mean), float(std)))
    return out


def setting(source: str | None, target: str) -> str:
    """Paper's row prefix: "MNIST" within a dataset, "E → M" across."""
    return f"{SHORT[source]} → {SHORT[target]}" if source else NAMES[target]


def prefix(source: str | None, target: str) -> str:
    return f"{source}:{target}" if source else target


def row(cells: list[PaperCell], names: list[str], text: str, row_label: str, columns: list[str]) -> None:
    vals = numbers(text)
    if not (len(vals) == len(names) == len(columns)):
        raise ValueError(f"{row_label}: {len(vals)} numbers for {len(names)} cells")
    for name, (mean, std), col in zip(names, vals, columns):
        cells.append(PaperCell(name, mean, std, row_label, col))
