"""``labeldistill export``: a shareable distilled-set file (no target paths, no metrics)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..artifact import DistilledSet, load
from ..errors import UserError
from ..interop import FORMATS, list_formats

# What may leave the private side: the base images' public provenance, not the target's
# data, paths or results (the privacy use in the paper's Broader Impact section).
# Learned images are the product itself, so they stay, with what was learned and how it started.
SHAREABLE = ("base_dataset", "base_indices", "base_licence", "cross_dataset", "base_classes", "learned", "image_init",
             "averaged_from")
RECIPE = ("optimizer", "lr", "batch_size", "arch", "head", "ridge_lambda", "ridge_step", "scale_lr", "method", "learned", "test_protocol")
ZCA_NOTE = ("it holds the ZCA whitening its protocol uses, fitted on the target's training split: its mean and {d} x {d} matrix are "
            "second-order statistics of the target data (--no-zca leaves them out)")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a shareable distilled-set file from a run (or the mean of several runs' labels)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a run (or set file); several: the mean of their labels on the same images (an ensemble of label "
                        "sets: the images, classes, preprocessing, whitening and training must be the same)")
    p.add_argument("--out", required=True, metavar="PATH", help="the file (--format labeldistill) or folder (ddranking) to write")
    p.add_argument("--format", default="labeldistill", choices=list_formats(),
                   help="labeldistill (default: this library's safetensors file) or ddranking (images.pt / labels.pt for "
                        "DD-Ranking's soft-label evaluation of a CIFAR set)")
    p.add_argument("--no-zca", action="store_true",
                   help="leave out the ZCA whitening (fitted on the target's training split: second-order statistics of the "
                        "target data); whoever evaluates the file then fits one on their copy of the target")
    p.set_defaults(func=run)


def shareable(ds: DistilledSet, *, zca: bool = True) -> DistilledSet:
    """A copy without target paths, target-side provenance or metrics (and without the ZCA whitening
    fitted on the target when ``zca=False``; a set whose images are already whitened keeps it, as its
    images mean nothing without it)."""
    prov = {k: v for k, v in ds.provenance.items() if k in SHAREABLE}
    name = str(prov.get("base_dataset", ""))
    if ":" in name or "/" in name:  # npz:/private/path.npz -> path.npz
        prov["base_dataset"] = Path(name.split(":", 1)[-1]).name
    recipe = {k: v for k, v in ds.recipe.items() if k in RECIPE}
    keep = ds.zca
    if keep is not None:
        if not zca and keep.applied_to_images:
            raise UserError("This set's images are stored ZCA-whitened: without the whitening they cannot be used on new data; "
                            "drop --no-zca.")
        keep = keep if zca else None
        if keep is not None:  # what it was fitted on, without paths
            keep = dataclasses.replace(keep, fitted_on={k: v for k, v in keep.fitted_on.items() if k != "dataset"}
                                       | {"dataset": Path(str(keep.fitted_on.get("dataset", "")).split(":", 1)[-1]).name})
    return dataclasses.replace(ds, class_names=list(ds.class_names), recipe=recipe, provenance=prov, evaluation=None, zca=keep)


def run(args: argparse.Namespace) -> int:
    full = load(args.run_dirs[0])
    if len(args.run_dirs) > 1:
        from ..ensemble import average_labels

        full = average_labels([full, *(load(p) for p in args.run_dirs[1:])], list(args.run_dirs))
    ds = shareable(full, zca=not args.no_zca)
    # DD-Ranking's files hold only images (class-major, hence the classes) and labels: no paths, metrics or ZCA.
    _, lines = FORMATS.get(args.format)(ds if args.format == "labeldistill" else full, Path(args.out))
    print("\n".join(lines))
    if len(args.run_dirs) > 1:
        print(f"labels: the mean of {len(args.run_dirs)} sets' (provenance averaged_from: their content hashes)")
    if args.format != "labeldistill":
        return 0
    if ds.zca is not None:
        print("note: " + ZCA_NOTE.format(d=int(ds.zca.matrix.shape[0])))
    elif full.zca is not None:
        print("ZCA whitening left out (--no-zca): evaluating the file under its protocol fits one on the evaluator's copy of the target")
    return 0
