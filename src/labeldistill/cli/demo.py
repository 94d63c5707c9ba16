"""``labeldistill demo``: the main job on scikit-learn's bundled 8x8 digits, no files, no network.

Distils labels for a few digit images, trains fresh models on them, and prints their
test accuracy beside the true-label baseline on the same base images.
"""
from __future__ import annotations

import argparse
import time

from ..distill import DistillConfig, run_distillation
from ..baselines import BaselineSettings, baseline
from .common import emit


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="distil labels on the embedded digits dataset (no files, no network; a few minutes on a CPU)")
    p.add_argument("--method", default="ridge", help="ridge or second-order (default ridge)")
    p.add_argument("--base", type=int, default=20, help="base examples (default 20, two per class)")
    p.add_argument("--epochs", type=int, default=150, help="epochs over the digits training split (default 150)")
    p.add_argument("--models", type=int, default=20, help="fresh test models (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="keep the run directory here (default: keep nothing)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    cfg = DistillConfig(target="digits", base=args.base, method=args.method, epochs=args.epochs, seed=args.seed,
                        test_models=args.models, device=args.device, val_every=10)
    print(f"Distilling labels for {args.base} digit images ({args.method}, {args.epochs} epochs)...")
    ds = run_distillation(cfg, out=args.out, progress=True)
    ld = ds.evaluation or {}
    head = "ridge" if ld["head"] == "ridge" else "linear"
    print("Training the true-label baseline on the same base images...")
    bl = baseline(BaselineSettings(target="digits", base=args.base, head=head, models=args.models, seed=args.seed, device=args.device))
    rows = [("learned labels", ld), ("true labels (baseline)", bl)]
    lines = [f"\nDigits, {args.base} base images, {args.models} fresh LeNets each ({head} head), test accuracy:"]
    lines += [f"  {name:<24}{r['accuracy_mean']:6.2f} +- {r['accuracy_std']:.2f} %   (T = {r['steps']} steps)" for name, r in rows]
    lines.append(f"Total time {time.perf_counter() - t0:.0f} s.")
    emit({"learned": ld, "baseline": {k: v for k, v in bl.items() if k != "versions"}}, args.json, "\n".join(lines))
    return 0
