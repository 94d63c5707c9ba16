"""``labeldistill evaluate``: fresh models on a distilled set (any arch, head, steps)."""
from __future__ import annotations

import argparse

from ..engine import HEADS
from ..evaluation import evaluate
from .common import add_common, emit, fmt_acc, read_toml


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="train fresh models on a distilled set and test them")
    p.add_argument("path", metavar="RUN_DIR_OR_FILE")
    p.add_argument("--head", default=None, help=f"{' or '.join(HEADS)} (default: as distilled)")
    p.add_argument("--models", type=int, default=None, help="number of fresh models (20)")
    p.add_argument("--steps", default=None, help="T (e.g. 300) or a change of the distilled T (+50, -20)")
    p.add_argument("--target", default=None, help="test data (needed for exported files)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = read_toml(args.config)
    pick = lambda name, default=None: getattr(args, name) if getattr(args, name) is not None else cfg.get(name, default)  # noqa: E731
    r = evaluate(args.path, arch=pick("arch"), head=pick("head"), models=int(pick("models", 20)), steps=pick("steps"),
                 target=pick("target"), data_root=pick("data_root"), device=pick("device") or "auto", seed=pick("seed"))
    emit(r, args.json, f"{r['arch']} / {r['head']} head, {r['models']} models x {r['steps']} steps: test accuracy {fmt_acc(r)}")
    return 0
