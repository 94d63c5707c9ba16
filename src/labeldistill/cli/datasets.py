"""``labeldistill datasets``: what is present under the data root, and how to get the rest."""
from __future__ import annotations

import argparse

from ..data import dataset_status, resolve_data_root
from ..data.catalog import TEST_IMAGE_STAND_INS


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the dataset catalog: present or not, where, sizes, how to get")
    p.add_argument("--data-root", default=None, help="folder with dataset files (else $LABELDISTILL_DATA, else the cache folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    rows = dataset_status(args.data_root)
    print(f"data root: {resolve_data_root(args.data_root)}")
    width = max([16, *(len(r["name"]) + 2 for r in rows)])
    print(f"{'name':<{width}}{'present':<9}{'train':>9}{'test':>8}  where / how to get")
    present = {r["name"] for r in rows if r["present"]}
    for r in rows:
        sizes = r.get("sizes") or {}
        train = sizes.get("train")
        test = sizes.get("test")
        where = (r["where"] or "built in (ships with scikit-learn)") if r["present"] else (r.get("problem") or r["how_to_get"])
        print(f"{r['name']:<{width}}{'yes' if r['present'] else 'no':<9}{train if train is not None else '-':>9}{test if test is not None else '-':>8}  {where}")
    for real, stand_in in TEST_IMAGE_STAND_INS.items():
        if stand_in in present and real not in present:
            print(f"Stand-in: {stand_in} is {real}'s official test images alone, split 80/10/10 into train / validation / "
                  f"test (not the paper's data); 'reproduce --stand-in' uses it for {real} cells.")
    print("Also: npz:FILE (arrays x, y), folder:DIR (one sub-folder per class), or any <name>_train.npz / <name>_test.npz pair in the data root.")
    if args.json:
        print(json.dumps(rows, default=str))
    return 0
