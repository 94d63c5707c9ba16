"""Loop step time when the loop learns images (``--learn images`` / ``images+labels``) beside the
label step (``--learn labels``), both methods, MNIST with 100 base images and LeNet.

Usage:
    python benchmarks/bench_image_step.py --data-root ../shared/data [--device cpu|cuda] [--rounds 8] [--steps 10]

The six configurations (3 learned quantities x 2 methods) run on one machine in one process,
interleaved in shuffled order round after round (a machine whose speed drifts slows them alike);
each figure is the median over rounds of seconds per step, and each image configuration is also
given as a ratio to the label step of the same method. On CUDA the step is replayed as a CUDA
graph (the loop's default) unless --no-cuda-graph. Prints one JSON object (with versions and
the device) as the last line. ``--target digits`` runs without data files (a smoke test).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from labeldistill.data import load_for_arch
from labeldistill.distill import DistillConfig, Distiller
from labeldistill.numerics import cpu_capability
from labeldistill.problem import build_problem
from labeldistill.runs.provenance import versions

from bench_protocol import interleaved_times, loop_runner  # benchmarks/ is the script's folder

LEARN = ("labels", "images", "images+labels")
METHODS = ("second-order", "ridge")


def step_runner(problem, target: str, method: str, learn: str, device: str, *, graph: bool) -> Callable[[int], None]:
    """``run(n)``: n loop steps of the real loop (records read every chunk, as the loop does)."""
    cfg = DistillConfig(target=target, base=problem.n_base, method=method, learn=learn, epochs=1, device=device,
                        cuda_graph=graph).resolve(target, int(problem.base_x.shape[1]))
    d = Distiller(cfg, problem, progress=False)
    d._start_epoch()
    d._stepper = d._build_stepper()
    return loop_runner(d, device, full=max(1, d.steps_per_epoch - 1))  # full target minibatches only


def machine(device: str) -> dict:
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else platform.processor() or None
    if not device.startswith("cuda"):
        try:
            name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.lower().startswith("model name"))
        except (OSError, StopIteration):
            pass
    # The CPU kernels' instruction set: CPUs reporting one model name ran this project's jobs at different speeds by it.
    isa = None if device.startswith("cuda") else cpu_capability()
    return {"device": device, "name": name, "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform(),
            "cpu_capability": isa}


def publish(name: str, args, results: list[dict], *, leave_out: tuple[str, ...] = ("data_root", "out")) -> dict:
    """A benchmark's record (name, machine, versions, settings from ``args``, results): written to ``args.out`` when
    given, printed as the last line, returned."""
    report = {"benchmark": name, "machine": machine(args.device), "versions": versions(),
              "settings": {k: v for k, v in vars(args).items() if k not in leave_out}, "results": results}
    if getattr(args, "out", None):
        Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--target", default="mnist", help="mnist (the paper's setting) or digits (no files: a smoke test)")
    ap.add_argument("--base", type=int, default=100)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10, help="loop steps per configuration and round")
    ap.add_argument("--rounds", type=int, default=8, help="interleaved rounds")
    ap.add_argument("--no-cuda-graph", action="store_true", help="eager steps on CUDA")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = ap.parse_args(argv)
    dev = args.device
    target = load_for_arch(args.target, "lenet", data_root=args.data_root, seed=0, device=dev)
    problem = build_problem(target, args.base, 0)
    graph = dev.startswith("cuda") and not args.no_cuda_graph
    runners = {f"{m} {learn}": step_runner(problem, target.name, m, learn, dev, graph=graph) for m in args.methods for learn in LEARN}
    times = interleaved_times(runners, args.steps, args.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for m in args.methods:
        base = med[f"{m} labels"]
        for learn in LEARN:
            k = f"{m} {learn}"
            rows.append({"method": m, "learn": learn, "median_ms": round(1000 * med[k], 4),
                         "min_ms": round(1000 * min(times[k]), 4), "max_ms": round(1000 * max(times[k]), 4),
                         "ratio_to_labels": round(med[k] / base, 3)})
    for r in rows:
        print(f"{r['method']:>13} {r['learn']:<14} {r['median_ms']:9.3f} ms/step  (x{r['ratio_to_labels']:.2f} the label step)")
    obj = {"benchmark": "image_step", "target": target.name, "base": args.base, "arch": "lenet", "steps_per_round": args.steps,
           "rounds": args.rounds, "cuda_graph": graph, "machine": machine(dev), "versions": versions(), "rows": rows}
    print(json.dumps(obj))
    return obj


if __name__ == "__main__":
    main()
