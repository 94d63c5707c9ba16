"""``labeldistill export``: a shareable distilled-set file (no target paths, no metrics)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..artifact import DistilledSet, load

# What may leave the private side: the base images' public provenance, not the target's
# data, paths or results (the privacy use in the paper's Broader Impact section).
# Learned images are the product itself, so they stay, with what was learned and how it started.
SHAREABLE = ("base_dataset", "base_indices", "base_licence", "cross_dataset", "base_classes", "learned", "image_init")
RECIPE = ("optimizer", "lr", "batch_size", "arch", "head", "ridge_lambda", "ridge_step", "scale_lr", "method", "learned")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a shareable distilled-set file from a run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="FILE")
    p.set_defaults(func=run)


def shareable(ds: DistilledSet) -> DistilledSet:
    """A copy without target paths, target-side provenance or metrics."""
    prov = {k: v for k, v in ds.provenance.items() if k in SHAREABLE}
    name = str(prov.get("base_dataset", ""))
    if ":" in name or "/" in name:  # npz:/private/path.npz -> path.npz
        prov["base_dataset"] = Path(name.split(":", 1)[-1]).name
    recipe = {k: v for k, v in ds.recipe.items() if k in RECIPE}
    return dataclasses.replace(ds, class_names=list(ds.class_names), recipe=recipe, provenance=prov, evaluation=None)


def run(args: argparse.Namespace) -> int:
    ds = shareable(load(args.run_dir))
    path = ds.save(Path(args.out))
    what = "learned labels" if ds.learned == "labels" else f"learned {ds.learned}"
    print(f"wrote {path}: {len(ds)} images, {ds.num_classes} classes, {what}, T={ds.steps} (no target paths or metrics)")
    return 0
