"""Check (issue 18): do label sets learned on the same images from different starts average into a better one?

Two implicit runs on MNIST-100 seed 0 learned labels on the same 100 images from different teachers' labels (the LeNet
teacher's, 98.48 under ``dc-dsa``; the lr-1e-2 ConvNet-3 expert's, 98.41). Their labels differ (L1 0.38 a row between
them, 0.14 between two epochs of one run), so the mean of the two may carry what each learned alone. This writes the
mean of the sets' label distributions (class by class, each row still sums to 1) on their images, which must be equal
bit for bit, as a distilled set that ``labeldistill evaluate`` tests like any other:

    python studies/average_label_sets.py records/runs/mnist-implicit-r5-e2-100-s0 \\
        runs/s44/field-mnist/runs/mnist_implicit-mtt-expert-lr1e-2_100__protocol=dc-dsa --out runs/s47/avg/avg.safetensors
    labeldistill evaluate runs/s47/avg/avg.safetensors --protocol dc-dsa --target mnist --seed 0 --json

The set's cost is the sum of its parts' distillations; its provenance names each part by its content hash.
Measured results: docs/results.md (session 47).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from labeldistill.artifact import DistilledSet, load
from labeldistill.errors import UserError


def average(sets: list[DistilledSet], names: list[str]) -> DistilledSet:
    """The first set with the mean of every set's labels; the sets must share images, classes, preprocessing and ZCA."""
    first = sets[0]
    for s, name in zip(sets[1:], names[1:]):
        if not torch.equal(s.images, first.images):
            raise UserError(f"{name}: its images differ from {names[0]}'s; only labels on the same images average.")
        if s.class_names != first.class_names or s.preprocessing != first.preprocessing:
            raise UserError(f"{name}: its classes or preprocessing differ from {names[0]}'s.")
        if (s.zca is None) != (first.zca is None) or (s.zca is not None and not (
                torch.equal(s.zca.matrix, first.zca.matrix) and s.zca.applied_to_images == first.zca.applied_to_images)):
            raise UserError(f"{name}: its ZCA whitening differs from {names[0]}'s.")
    labels = torch.stack([s.labels.double() for s in sets]).mean(0).float()
    provenance = {**first.provenance, "averaged_from": names}
    return dataclasses.replace(first, labels=labels, provenance=provenance, evaluation=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="run directories or distilled-set files, on the same images")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if len(a.sets) < 2:
        raise SystemExit("error: give two or more sets to average")
    try:
        out = average([load(p) for p in a.sets], [str(p) for p in a.sets])
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    a.out.parent.mkdir(parents=True, exist_ok=True)
    out.save(a.out)
    print(f"wrote {a.out}: the mean of {len(a.sets)} label sets on {len(out)} images")


if __name__ == "__main__":
    main()
