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
their writes. Stopped by SIGTERM (a caller's time limit), a measurement is reported as cut short, with
the seconds until the stop and the validation / test seconds inside them, and the script ends there.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from labeldistill.distill import DistillConfig, distill_many
from labeldistill.distill.loop import Interrupted
from labeldistill.runs.provenance import versions

from bench_image_step import machine  # benchmarks/ is the script's folder


class Phases:
    """Where a measurement's wall time went: validations (a run's own, or a stack's joint ones) and tests, timed by
    wrapping the library's functions for the duration of one measurement (the rest is the loops and set-up)."""

    def __init__(self) -> None:
        self.seconds = {"validation": 0.0, "test": 0.0}
        self._patches: list[tuple[object, str, object]] = []

    def _wrap(self, owner: object, name: str, phase: str) -> None:
        real = getattr(owner, name)

        def timed_call(*a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.seconds[phase] += time.perf_counter() - t0

        self._patches.append((owner, name, real))
        setattr(owner, name, timed_call)

    def __enter__(self) -> Phases:
        from labeldistill.distill import loop, run, stack

        self._wrap(loop.Distiller, "_validate", "validation")  # a run's own validations (alone)
        self._wrap(stack, "score_together", "validation")  # a stack's joint ones (its runs' _validate then only records)
        self._wrap(run, "evaluate_labels", "test")  # a run's own test (alone)
        self._wrap(stack, "evaluate_together", "test")  # a stack's joint tests
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, real in reversed(self._patches):
            setattr(owner, name, real)


def timed(cfgs: list[DistillConfig], stack: int, data_root: str, outs: list | None = None, batched: bool = False,
          progress: bool = False) -> tuple[float, list | None, dict]:
    """Wall seconds, the sets (None when a stop request cut the measurement short: then the seconds are those until
    the stop) and the validation / test seconds inside."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    with Phases() as phases:
        t0 = time.perf_counter()
        try:
            sets = distill_many(cfgs, stack=stack, data_root=data_root, progress=progress, outs=outs, batched=batched)
        except Interrupted:  # SIGTERM from the caller's time limit: report where the time went so far
            sets = None
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    return wall, sets, {k: round(v, 2) for k, v in phases.seconds.items()}


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
    ap.add_argument("--deterministic", action="store_true", help="deterministic GPU kernels (DistillConfig.deterministic)")
    ap.add_argument("--batched", action="store_true", help="the stack's steps as one batched step (distill_many(batched=True))")
    ap.add_argument("--progress", action="store_true", help="progress bars on stderr (every 30 s in a log): a run cut short still shows its rate")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep the runs alone as run directories DIR/<method>-k<K>-s<seed> (e.g. to compare a GPU run with the CPU run of the same seed)")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    base = DistillConfig(target=args.target, base=args.base, epochs=args.epochs or None, device=args.device, test_models=args.test_models,
                         deterministic=args.deterministic)
    timed([dataclasses.replace(base, epochs=1, test_models=1, seed=99)], 1, args.data_root)  # warm-up, not timed
    results = []
    for method in args.method.split(","):
        for k in ks:
            cfgs = [dataclasses.replace(base, method=method, seed=s) for s in range(k)]
            alone_cfgs = cfgs if args.alone == "all" else cfgs[:1]
            outs = [Path(args.keep) / f"{method}-k{k}-s{c.seed}" for c in alone_cfgs] if args.keep else None
            t_alone, alone, ph_alone = timed(alone_cfgs, 1, args.data_root, outs, progress=args.progress)
            t_stack, stacked, ph_stack = (0.0, None, {}) if alone is None else \
                timed(cfgs, k, args.data_root, batched=args.batched, progress=args.progress)
            if alone is None or stacked is None:  # cut short by the time limit: what it measured until then, and stop
                rec = {"method": method, "k": k, "cut_short": "alone" if alone is None else "stack",
                       "alone_seconds": round(t_alone, 2), "alone_phases": ph_alone,
                       "stack_seconds_until_stop": None if alone is None else round(t_stack, 2), "stack_phases": ph_stack}
                results.append(rec)
                print(f"{method} K={k}: cut short ({rec['cut_short']}): {rec}", flush=True)
                if args.out:
                    Path(args.out).write_text(json.dumps(_report(args, results), indent=1))
                return _report(args, results)
            diffs = [float((a.labels - b.labels).abs().max()) for a, b in zip(alone, stacked)]
            acc = [round(s.evaluation["accuracy_mean"], 2) for s in stacked]
            rec = {"method": method, "k": k, "alone": args.alone, "alone_runs": len(alone_cfgs), "alone_seconds": round(t_alone, 2),
                   "stack_seconds": round(t_stack, 2),
                   # validation / test seconds inside each (the rest: loops and set-up); what bounds a stack
                   "alone_phases": ph_alone, "stack_phases": ph_stack,
                   "ratio": round(t_stack / t_alone, 3),  # stacked / alone: ~1 when nothing is gained (--alone all), K when nothing is shared (--alone one)
                   "labels_equal": all(d == 0.0 for d in diffs), "max_label_diff": max(diffs),
                   "accuracy_alone": [round(s.evaluation["accuracy_mean"], 2) for s in alone], "accuracy_stacked": acc,
                   "T_stacked": [s.steps for s in stacked]}
            results.append(rec)
            print(f"{method} K={k}: alone ({len(alone_cfgs)} run(s)) {t_alone:.1f} s {ph_alone}, stacked {t_stack:.1f} s {ph_stack}, ratio {rec['ratio']}, "
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
