"""Original DD's and SLDD's outer iteration beside LD's loop step (issue 16's speed item, Table 4's DD row).

Usage:
    python benchmarks/bench_unrolled.py --data-root ../shared/data [--target mnist|cifar10] [--device cpu|cuda]
        [--rounds 6] [--steps 5] [--only dd,sldd]

Four configurations on one machine in one process, interleaved in shuffled order round after round
(a machine whose speed drifts slows them alike): DD and SLDD outer iterations (30 unrolled LeNet
steps and the exact backward through them, a fresh network each; ``labeldistill.unrolled``) and the
LD loop's step, second order and ridge (``--learn labels``, 100 base images). Each figure is the median
over rounds of seconds per iteration / step, and each is also given as a whole run's loop time
(x 19,600: 400 epochs of MNIST's 49 minibatches, for both; LD's 80 label-selection validations and any
test not included) and as a ratio to LD's second-order loop. Prints one JSON object as the last line.
``--target digits`` runs without data files (a smoke test). ``--target cifar10`` times the CIFAR-10 reference
(AlexCifarNet; 44 minibatches an outer epoch over our 45,000-image training split).

The process keeps its freed memory as the ``labeldistill`` command does (``allocator.keep_freed_memory``); without
it, glibc page-faults the 1,024-image target pass in again every iteration and a CIFAR-10 DD iteration took twice
as long here (session 29), which is not what a user of the command gets. ``LABELDISTILL_KEEP_FREED_MEMORY=0``
times that case.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import torch

from labeldistill.allocator import keep_freed_memory
from labeldistill.data import load_for_arch
from labeldistill.problem import build_problem
from labeldistill.runs.provenance import versions
from labeldistill.unrolled.config import unrolled_config
from labeldistill.unrolled.network import FunctionalNet
from labeldistill.unrolled.trainer import UnrolledDistiller

from bench_image_step import machine, step_runner  # benchmarks/ is the script's folder
from bench_protocol import interleaved_times

OUTER_EPOCHS, BATCH = 400, 1024  # DD's run: 400 outer epochs of minibatches of 1,024 (MNIST: 19,600 iterations)
ARCH = {"cifar10": "alexnet"}  # the reference's network per target; LeNet elsewhere


def unrolled_runner(target, method: str) -> Callable[[int], None]:
    """``run(n)``: n outer iterations of a DD / SLDD run with the reference settings."""
    x = target.train.x
    net = FunctionalNet.from_arch(ARCH.get(target.name, "lenet"), int(x.shape[1]), int(x.shape[-1]), target.num_classes, device=x.device)
    dist = UnrolledDistiller(unrolled_config(target.name, method), x, target.train.y, net, target.num_classes, seed=0)

    def run(n: int) -> None:
        for _ in range(n):
            dist.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)

    return run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--target", default="mnist", help="mnist (the paper's setting) or digits (no files: a smoke test)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=5, help="iterations / steps per configuration and round")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    ap.add_argument("--only", default=None, help="comma-separated configurations to time (default: all four)")
    args = ap.parse_args(argv)
    kept = keep_freed_memory()
    dev = args.device
    arch = ARCH.get(args.target, "lenet")
    target = load_for_arch(args.target, arch, data_root=args.data_root, seed=0, device=dev)
    problem = build_problem(target, 100 if len(target.train.y) >= 1000 else 20, 0)
    makers: dict[str, Callable[[], Callable[[int], None]]] = {
        "dd": lambda: unrolled_runner(target, "dd"),
        "sldd": lambda: unrolled_runner(target, "sldd"),
        "ld second-order": lambda: step_runner(problem, target.name, "second-order", "labels", dev, graph=dev.startswith("cuda")),
        "ld ridge": lambda: step_runner(problem, target.name, "ridge", "labels", dev, graph=dev.startswith("cuda")),
    }
    wanted = list(makers) if args.only is None else [k.strip() for k in args.only.split(",")]
    if unknown := [k for k in wanted if k not in makers]:
        raise SystemExit(f"bench_unrolled.py: error: unknown configuration(s) {unknown}; choose from {list(makers)}")
    runners = {k: makers[k]() for k in wanted}
    iterations = OUTER_EPOCHS * -(-len(target.train.y) // BATCH)
    times = interleaved_times(runners, args.steps, args.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med.get("ld second-order", float("nan"))
    rows = [{"config": k, "median_ms": round(1000 * med[k], 3), "min_ms": round(1000 * min(v), 3), "max_ms": round(1000 * max(v), 3),
             "run_loop_minutes": round(med[k] * iterations / 60, 1), "ratio_to_ld": round(med[k] / ref, 2)} for k, v in times.items()]
    for r in rows:
        print(f"{r['config']:>16} {r['median_ms']:10.2f} ms  ({r['min_ms']:.2f}-{r['max_ms']:.2f})  "
              f"x{iterations:,}: {r['run_loop_minutes']:7.1f} min  (x{r['ratio_to_ld']:.2f} LD's)")
    obj = {"benchmark": "unrolled", "target": target.name, "arch": arch, "steps_per_round": args.steps, "rounds": args.rounds,
           "iterations_per_run": iterations, "keeps_freed_memory": kept, "machine": machine(dev), "versions": versions(), "rows": rows}
    print(json.dumps(obj))
    return obj


if __name__ == "__main__":
    main()
