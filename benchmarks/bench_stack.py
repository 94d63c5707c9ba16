"""Wall time of K distillation runs stacked (``distill_many``, loops stepped together) against the
same runs one after another, and whether the stacked runs give the same labels.

Usage:
    python benchmarks/bench_stack.py --data-root ../shared/data [--k 2,4,8] [--method ridge] [--epochs 2]
    python benchmarks/bench_stack.py --device cuda --k 8 --epochs 0 --alone one   # full protocol on a GPU

Each K: seeds 0..K-1 of the same configuration (MNIST, N = 100, LeNet), whole runs (data loading,
loop, validations, test), no run directories. ``--alone all`` times the K runs one after another;
``--alone one`` only seed 0 alone (the GPU goal is "a stack of 8 in under twice one run": the
K runs alone would cost K times as much there). ``--epochs 0``: the paper's epochs (full
protocol). A tiny run first warms the process up (CUDA context, kernels); it is not timed. Prints
a line per measurement and one JSON object (versions, device, settings, results) as the last line;
``--out FILE`` also writes it. ``labels_equal`` compares each stacked run's selected labels with
the same run alone (bit for bit; ``max_label_diff`` is the largest difference). ``--keep DIR`` keeps
the runs alone as run directories (metrics, result, distilled set): the timing then includes
their writes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from labeldistill.distill import DistillConfig, distill_many
from labeldistill.runs.provenance import versions

from bench_image_step import machine  # benchmarks/ is the script's folder


def timed(cfgs: list[DistillConfig], stack: int, data_root: str, outs: list | None = None) -> tuple[float, list]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    sets = distill_many(cfgs, stack=stack, data_root=data_root, progress=False, outs=outs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, sets


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--target", default="mnist")
    ap.add_argument("--base", type=int, default=100)
    ap.add_argument("--method", default="ridge", help="ridge, second-order, or both (comma-separated)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run (0: the paper's, i.e. the full protocol)")
    ap.add_argument("--k", default="2,4,8", help="stack sizes")
    ap.add_argument("--alone", choices=("all", "one"), default="all", help="time all K runs alone, or only seed 0")
    ap.add_argument("--test-models", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep the runs alone as run directories DIR/<method>-k<K>-s<seed> (e.g. to compare a GPU run with the CPU run of the same seed)")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    base = DistillConfig(target=args.target, base=args.base, epochs=args.epochs or None, device=args.device, test_models=args.test_models)
    timed([dataclasses.replace(base, epochs=1, test_models=1, seed=99)], 1, args.data_root)  # warm-up, not timed
    results = []
    for method in args.method.split(","):
        for k in ks:
            cfgs = [dataclasses.replace(base, method=method, seed=s) for s in range(k)]
            alone_cfgs = cfgs if args.alone == "all" else cfgs[:1]
            outs = [Path(args.keep) / f"{method}-k{k}-s{c.seed}" for c in alone_cfgs] if args.keep else None
            t_alone, alone = timed(alone_cfgs, 1, args.data_root, outs)
            t_stack, stacked = timed(cfgs, k, args.data_root)
            diffs = [float((a.labels - b.labels).abs().max()) for a, b in zip(alone, stacked)]
            acc = [round(s.evaluation["accuracy_mean"], 2) for s in stacked]
            rec = {"method": method, "k": k, "alone": args.alone, "alone_runs": len(alone_cfgs), "alone_seconds": round(t_alone, 2),
                   "stack_seconds": round(t_stack, 2),
                   "ratio": round(t_stack / t_alone, 3),  # stacked / alone: ~1 when nothing is gained (--alone all), K when nothing is shared (--alone one)
                   "labels_equal": all(d == 0.0 for d in diffs), "max_label_diff": max(diffs),
                   "accuracy_alone": [round(s.evaluation["accuracy_mean"], 2) for s in alone], "accuracy_stacked": acc,
                   "T_stacked": [s.steps for s in stacked]}
            results.append(rec)
            print(f"{method} K={k}: alone ({len(alone_cfgs)} run(s)) {t_alone:.1f} s, stacked {t_stack:.1f} s, ratio {rec['ratio']}, "
                  f"labels equal {rec['labels_equal']} (max diff {rec['max_label_diff']:.3g}), accuracies {acc}", flush=True)
            if args.out:  # after every measurement: a run cut short keeps what it measured
                Path(args.out).write_text(json.dumps(_report(args, results), indent=1))
    report = _report(args, results)
    print(json.dumps(report))
    return report


def _report(args: argparse.Namespace, results: list[dict]) -> dict:
    settings = {k: v for k, v in vars(args).items() if k not in ("data_root", "out", "keep")}
    return {"benchmark": "bench_stack", "machine": machine(args.device), "versions": versions(), "settings": settings, "results": results}


if __name__ == "__main__":
    main()
