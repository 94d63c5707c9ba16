"""``labeldistill export``: a shareable distilled-set file (no target paths, no metrics)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..artifact import load


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a shareable distilled-set file from a run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = load(args.run_dir)
    ds.provenance = {k: v for k, v in ds.provenance.items() if k in SHAREABLE}
    ds.recipe = {k: v for k, v in ds.recipe.items() if k != "method"} | {"method": ds.recipe.get("method")}
    path = ds.save(Path(args.out))
    print(f"wrote {path}: {len(ds)} images, {ds.num_classes} classes, T={ds.steps}")
    return 0


# What may leave the private side: the base images' public provenance, not the target's paths.
SHAREABLE = ("base_dataset", "base_indices", "base_licence", "cross_dataset", "base_classes")
