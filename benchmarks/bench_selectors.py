"""Wall time of each base-set selector (``--base-select``) on one machine, beside the distillation it serves.

Usage:
    python benchmarks/bench_selectors.py --data-root ../shared/data [--target mnist] [--base 10,100] [--seed 0]
        [--selectors random,kcenter,kmeans,herding,paper-table7] [--out FILE]

Each (N, selector) is timed once, uncached (a fresh choice: the cost a first run pays; later runs
of the same seed reuse the cached choice for free), after the target is loaded (not timed). The
distillation it serves is the loop of the same N (docs/results.md: about 20-60 minutes on this
CPU for MNIST-100). Prints one line per choice and one JSON object (versions, machine, settings,
seconds, what each selector measured) as the last line.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from labeldistill.data import load_target
from labeldistill.runs.provenance import versions
from labeldistill.selectors import choose_base

from bench_image_step import machine  # benchmarks/ is the script's folder


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--target", default="mnist")
    ap.add_argument("--base", default="10,100")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--selectors", default="random,kcenter,kmeans,herding,paper-table7")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    target = load_target(args.target, data_root=args.data_root, seed=args.seed, device=args.device)
    rows = []
    for n in (int(v) for v in args.base.split(",")):
        for name in args.selectors.split(","):
            t0 = time.perf_counter()
            positions, record = choose_base(target, n, args.seed, name, cache_dir=None)
            seconds = time.perf_counter() - t0
            rows.append({"base": n, "selector": name, "seconds": round(seconds, 2), "sees": record.get("sees"),
                         "classes": torch.bincount(target.train.y[torch.as_tensor(positions)].cpu(), minlength=target.num_classes).tolist()})
            print(f"N={n} {name}: {seconds:.1f} s", flush=True)
            report = {"benchmark": "bench_selectors", "machine": machine(args.device), "versions": versions(),
                      "settings": {k: v for k, v in vars(args).items() if k not in ("data_root", "out")}, "rows": rows}
            if args.out:
                Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
