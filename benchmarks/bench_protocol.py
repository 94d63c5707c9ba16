"""Time the paper's protocol pieces, fast configuration against a plain one, in one invocation.

Usage:
    python benchmarks/bench_protocol.py --data-root ../shared/data [--device cpu|cuda] [--rounds 8] [--step-samples 10]

Prints a table: one loop step of each method, the 20-model evaluation (at once, lockstep
loop, one after another), and the full MNIST 100-base protocol (400 epochs + validations +
20 test models) extrapolated in the open from the measured step and validation times.
Each figure is also given for a plain configuration of the same code (one model at a time,
double-backward meta-gradient, a host synchronisation every step) and as a ratio; the rows
"vs library LeNet layers" compare the fast step with the same step on PyTorch's own LeNet
layers (conv -> ReLU -> max_pool2d) instead. The loop-step configurations are timed
interleaved, in shuffled order round after round, so that a machine whose speed drifts
slows them alike.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch

import labeldistill
from labeldistill.data import load_target
from labeldistill.distill import DistillConfig, Distiller
from labeldistill.engine import accuracy, make_learner, model_seeds, train_models
from labeldistill.problem import build_problem

from bench_lenet_layers import plain_lenet  # benchmarks/ is the script's folder

REFERENCE = {  # the authors' code and plain PyTorch, as measured by the issue's author (seconds)
    "cpu": {"ridge step": 0.066, "second-order step": 0.160, "ridge epoch (authors)": 20.0, "second-order epoch (authors)": 44.0},
    "cuda": {"ridge step": 0.0075, "second-order step": 0.0095, "20 LeNets x 300 + test": 2.2},
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int = 1) -> float:
    fn()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat


def step_runner(problem, method: str, meta_gradient: str, device: str, *, graph: bool, sync_each: bool,
                plain_layers: bool = False) -> Callable[[int], None]:
    """``run(n)``: n loop steps (records read every chunk, or every step for the plain configuration)."""
    cfg = DistillConfig(target="mnist", base=100, method=method, meta_gradient=meta_gradient, epochs=1, device=device,
                        cuda_graph=graph).resolve("mnist", 1)
    d = Distiller(cfg, problem, progress=False, model_factory=plain_lenet if plain_layers else None)
    d._start_epoch()
    d._stepper = d._build_stepper()

    return loop_runner(d, device, full=d.steps_per_epoch - 1, sync_each=sync_each)  # full minibatches only


def loop_runner(d: Distiller, device: str, *, full: int, sync_each: bool = False) -> Callable[[int], None]:
    """``run(n)``: n steps of the started loop ``d`` over its first ``full`` minibatches; records read
    every chunk, as the loop does (every step with ``sync_each``), and the device synchronised at the end."""

    def run(steps: int) -> None:
        for _ in range(steps):
            d.pos = (d.pos + 1) % full
            d._one_step()
            d.step += 1
            if sync_each or len(d._pending) >= d.chunk:
                d._flush()
        d._flush()
        sync(device)

    return run


def interleaved_times(runners: dict[str, Callable[[int], None]], steps: int, rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per step of each configuration in each round, timed in shuffled order round after
    round (a machine whose speed drifts slows every configuration alike), after a warm-up."""
    for run in runners.values():
        run(3)  # warm-up (and CUDA-graph capture)
    times: dict[str, list[float]] = {k: [] for k in runners}
    rng = random.Random(seed)
    for _ in range(rounds):
        order = list(runners)
        rng.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            runners[k](steps)
            times[k].append((time.perf_counter() - t0) / steps)
    return times


def interleaved_step_times(runners: dict[str, Callable[[int], None]], steps: int, rounds: int) -> dict[str, float]:
    """Median seconds per step of each configuration over the interleaved rounds (:func:`interleaved_times`)."""
    return {k: statistics.median(v) for k, v in interleaved_times(runners, steps, rounds).items()}


def eval_time(problem, k: int, steps: int, mode: str, device: str) -> float:
    learner = make_learner("lenet", 1, 28, 10, head="linear")
    labels = torch.softmax(torch.randn(problem.n_base, 10, device=device), -1)
    seeds = model_seeds(0, "test-models", k)
    test = problem.target.test

    def at_once() -> None:
        state = train_models(learner, problem.base_x, labels, steps, seeds, mode=mode)
        accuracy(learner, state, test.x, test.y, mode=mode).cpu()

    def one_after_another() -> None:
        for s in seeds:
            state = train_models(learner, problem.base_x, labels, steps, [s], mode="loop")
            accuracy(learner, state, test.x, test.y, mode="loop").cpu()

    return timed(one_after_another if mode == "sequential" else at_once, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--step-samples", type=int, default=10, help="loop steps per configuration and round")
    ap.add_argument("--rounds", type=int, default=8, help="rounds of the interleaved step timings")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dev = args.device
    target = load_target("mnist", data_root=args.data_root, seed=0, device=dev)
    problem = build_problem(target, 100, 0)
    spe = math.ceil(len(target.train) / 1024)
    rows: list[tuple[str, float, float]] = []

    cuda = dev.startswith("cuda")
    other = "double-backward" if cuda else "jvp"  # the second-order form "auto" did not pick on this device
    runners: dict[str, Callable[[int], None]] = {}
    for method in ("ridge", "second-order"):
        runners[f"{method} fast"] = step_runner(problem, method, "auto", dev, graph=True, sync_each=False)
        runners[f"{method} plain"] = step_runner(problem, method, "double-backward", dev, graph=False, sync_each=True)
        runners[f"{method} library layers"] = step_runner(problem, method, "auto", dev, graph=True, sync_each=False, plain_layers=True)
        if cuda:  # what the CUDA graph alone brings
            runners[f"{method} eager"] = step_runner(problem, method, "auto", dev, graph=False, sync_each=False)
    runners["second-order alt"] = step_runner(problem, "second-order", other, dev, graph=True, sync_each=False)
    st = interleaved_step_times(runners, args.step_samples, args.rounds)
    step = {}
    for method in ("ridge", "second-order"):
        fast, plain = st[f"{method} fast"], st[f"{method} plain"]
        step[method] = fast
        rows.append((f"{method} loop step", fast, plain))
        if cuda:
            rows.append((f"{method} loop step, no CUDA graph", st[f"{method} eager"], plain))
        # Here the "plain" column is the same fast step with PyTorch's own LeNet layers.
        rows.append((f"{method} loop step vs library LeNet layers", fast, st[f"{method} library layers"]))
        if method == "second-order":
            rows.append((f"second-order loop step, {other}", st["second-order alt"], plain))

    k, t = 20, 300
    modes = ["vmap", "loop"] if dev.startswith("cuda") else ["loop", "vmap"]
    at_once = {m: eval_time(problem, k, t, m, dev) for m in modes}
    best = min(at_once, key=at_once.get)
    seq = eval_time(problem, k, t, "sequential", dev)
    for m in modes:
        rows.append((f"20 LeNets x {t} steps + test (10k), {m}", at_once[m], seq))
    # one validation = one model, T ~ 250 steps, + 10k validation images; 80 of them (every 5 of 400 epochs),
    # trained in groups (the loop's val_group default: 16 on a GPU, 4 on a CPU)
    group = 16 if cuda else 4
    val_fast = eval_time(problem, group, 250, best, dev) / group
    val_plain = eval_time(problem, 1, 250, "loop", dev)
    for method in ("ridge", "second-order"):
        plain_step = next(p for n, _, p in rows if n == f"{method} loop step")
        full_fast = 400 * spe * step[method] + 80 * val_fast + at_once[best]
        full_plain = 400 * spe * plain_step + 80 * val_plain + seq
        rows.append((f"full MNIST-100 protocol, {method} (extrapolated)", full_fast, full_plain))

    print(f"device {dev} ({torch.cuda.get_device_name() if dev.startswith('cuda') else platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, labeldistill {labeldistill.__version__}")
    print(f"{'what':<52}{'fast (s)':>12}{'plain (s)':>12}{'plain/fast':>12}")
    for name, fast, plain in rows:
        print(f"{name:<52}{fast:>12.4f}{plain:>12.4f}{plain / fast:>12.2f}")
    print(f"extrapolation: 400 epochs x {spe} steps x step time + 80 validations x one validation "
          f"({val_fast:.2f} s batched / {val_plain:.2f} s plain) + the 20-model test")
    print("reference points (seconds):", json.dumps(REFERENCE["cuda" if dev.startswith("cuda") else "cpu"]))
    if args.json:
        print(json.dumps({n: {"fast": f, "plain": p} for n, f, p in rows}))


if __name__ == "__main__":
    main()
