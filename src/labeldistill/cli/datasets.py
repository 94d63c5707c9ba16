"""``labeldistill datasets``: what is present under the data root, and how to get the rest."""
from __future__ import annotations

import argparse

from ..data import dataset_status, resolve_data_root


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the dataset catalog: present or not, where, sizes, how to get")
    p.add_argument("--data-root", default=None, help="folder with dataset files (else $LABELDISTILL_DATA, else the cache folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    rows = dataset_status(args.data_root)
    print(f"data root: {resolve_data_root(args.data_root)}")
    print(f"{'name':<16}{'present':<9}{'train':>9}{'test':>8}  where / how to get")
    for r in rows:
        sizes = r.get("sizes") or {}
        train = sizes.get("train")
        test = sizes.get("test")
        where = (r["where"] or "built in (ships with scikit-learn)") if r["present"] else (r.get("problem") or r["how_to_get"])
        print(f"{r['name']:<16}{'yes' if r['present'] else 'no':<9}{train if train is not None else '-':>9}{test if test is not None else '-':>8}  {where}")
    print("Also: npz:FILE (arrays x, y), folder:DIR (one sub-folder per class), or any <name>_train.npz / <name>_test.npz pair in the data root.")
    if args.json:
        print(json.dumps(rows, default=str))
    return 0
