"""What the float64 ridge solve (numerics version 2) costs against version 1's float32 one, forward and backward.

Times ``models.ridge.ridge_solve`` (the n x n system in float64) against the same Woodbury solve in float32 (version
1's code, kept here for the comparison only) on the loop's shapes: MNIST LeNet (an inner batch of 50, 84 features + 1)
and CIFAR AlexCifarNet (100 base images, 192 features + 1), 10 and 100 classes. Interleaved in shuffled order, round
after round; the median per call is printed beside the loop step it sits in (`result.json`'s `seconds_per_step`).

Usage:
    python benchmarks/bench_ridge_solve.py [--device cpu|cuda] [--rounds 30] [--calls 50]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from labeldistill.models import ridge_solve
from labeldistill.runs.provenance import versions


def ridge_solve_float32(z: torch.Tensor, y: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Version 1's solve: the same Woodbury form, all in the features' dtype."""
    n = z.shape[-2]
    chol, _ = torch.linalg.cholesky_ex(z @ z.transpose(-1, -2) + lam * torch.eye(n, dtype=z.dtype, device=z.device))
    u = torch.linalg.solve_triangular(chol, y, upper=False)
    return z.transpose(-1, -2) @ torch.linalg.solve_triangular(chol.transpose(-1, -2), u, upper=True)


def fwd_bwd(fn, z: torch.Tensor, y: torch.Tensor) -> None:
    z.grad = y.grad = None
    fn(z, y).square().sum().backward()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=50, help="calls per timing")
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    shapes = {"mnist-lenet (50 x 85, 10 classes)": (50, 85, 10), "cifar100-alexnet (100 x 193, 100 classes)": (100, 193, 100)}
    cases = {}
    for name, (n, d, c) in shapes.items():
        z = (torch.randn(n, d, generator=g) * 30).to(args.device).requires_grad_()
        y = torch.softmax(torch.randn(n, c, generator=g), 1).to(args.device).requires_grad_()
        for way, fn in (("float64 (v2)", ridge_solve), ("float32 (v1)", ridge_solve_float32)):
            cases[(name, way)] = (fn, z, y)
    times: dict = {k: [] for k in cases}
    order = list(cases)
    rng = random.Random(0)
    for _ in range(3):  # warm-up
        for fn, z, y in cases.values():
            fwd_bwd(fn, z, y)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for k in order:
            fn, z, y = cases[k]
            if args.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.calls):
                fwd_bwd(fn, z, y)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times[k].append((time.perf_counter() - t0) / args.calls)
    rows = [{"shape": s, "way": w, "median_ms": round(1e3 * statistics.median(t), 4), "min_ms": round(1e3 * min(t), 4)}
            for (s, w), t in times.items()]
    for r in rows:
        print(f"{r['shape']:45s} {r['way']:14s} median {r['median_ms']:.4f} ms  min {r['min_ms']:.4f} ms")
    out = {"benchmark": "bench_ridge_solve", "device": args.device, "threads": torch.get_num_threads(), "rounds": args.rounds,
           "calls": args.calls, "versions": versions(), "results": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
