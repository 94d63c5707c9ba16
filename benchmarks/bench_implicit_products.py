"""The implicit method's label gradient (``--method implicit``) with its Jacobian products by forward mode (``jvp``) or
by double backward, one student, ConvNet-3 on MNIST-sized images: the part of a label step that conjugate gradients
spend (V views of N images, ``--cg-iters`` products each way), without the target pass or the students' following.

Usage:
    python benchmarks/bench_implicit_products.py [--device cpu|cuda] [--base 100] [--views 4] [--cg-iters 10] [--rounds 5]

The two modes run interleaved in shuffled order round after round (bench_protocol.interleaved_times); each figure is the
median over rounds of seconds per label gradient. The images are random (the cost does not depend on them). Prints one
JSON object (versions, device, settings, seconds, the largest difference between the two gradients) as the last line.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics

import torch

from labeldistill.distill.strategies.implicit import implicit_label_grad
from labeldistill.engine import make_learner
from labeldistill.numerics import cpu_capability
from labeldistill.runs.provenance import versions

from bench_protocol import interleaved_times  # benchmarks/ is the script's folder

MODES = ("jvp", "double-backward")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--base", type=int, default=100)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--cg-iters", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    dev = torch.device(args.device)
    learner = make_learner("convnet3", 1, 28, 10, head="linear")
    state = learner.init([0], device=dev)
    theta = {n: t[0].detach() for n, t in state.params.items()}
    buffers, head = {n: t[0] for n, t in state.buffers.items()}, {n: t[0] for n, t in state.head.items()}
    g = torch.Generator().manual_seed(0)
    xv = torch.randn(args.views * args.base, 1, 28, 28, generator=g).to(dev)
    g_t = {n: torch.randn(t.shape, generator=g).to(dev) * 1e-3 for n, t in theta.items()}

    def logits_of(p, x):
        return learner.logits(p, buffers, head, x)

    def runner(mode: str):
        def run(n: int) -> None:
            for _ in range(n):
                implicit_label_grad(logits_of, theta, xv, args.views, g_t, damping=1e-3, cg_iters=args.cg_iters, mode=mode)
            if dev.type == "cuda":
                torch.cuda.synchronize()
        return run

    grads = {m: implicit_label_grad(logits_of, theta, xv, args.views, g_t, damping=1e-3, cg_iters=args.cg_iters, mode=m) for m in MODES}
    times = interleaved_times({m: runner(m) for m in MODES}, steps=1, rounds=args.rounds)
    seconds = {m: round(statistics.median(v), 3) for m, v in times.items()}
    print(json.dumps({"benchmark": "implicit_products", "versions": versions(), "device": str(dev), "machine": platform.processor(),
                      "cpu_capability": cpu_capability(), "threads": torch.get_num_threads(), "base": args.base, "views": args.views,
                      "cg_iters": args.cg_iters, "rounds": args.rounds, "seconds": seconds,
                      "speedup": round(seconds["jvp"] / seconds["double-backward"], 2),
                      "max_abs_difference": float((grads["jvp"] - grads["double-backward"]).abs().max()),
                      "max_abs_gradient": float(grads["jvp"].abs().max())}))


if __name__ == "__main__":
    main()
