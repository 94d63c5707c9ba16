"""What bounds a stack's loop: the card's kernel time per round against the wall time per round, K runs against one.

Usage:
    python benchmarks/profile_stack.py --data-root ../shared/data --device cuda --k 1,8 [--method ridge] [--rounds 200] [--batched]

For each K: K runs (MNIST, N = 100, seeds 0..K-1, the stack's own code: a CUDA stream and graph per run) are started
and stepped in lockstep, one step of each run per round, exactly as ``distill_many`` steps them (no validation falls in
the measured rounds); with ``--batched``, a stack's round is one batched step of all K runs. After ``--warmup`` rounds (graph capture), ``--rounds`` rounds are timed (wall, the host's own
time inside the runs' ``advance``), then the same number again under ``torch.profiler`` for the card's kernels: their
count and summed duration per round. Reading the result:

* busy time (the card running any kernel) close to the wall time and ``overlap`` near 1: the card runs one kernel
  at a time, the streams do not overlap: only fewer, larger kernels help (a ``vmap`` over the runs);
* busy time well below the wall time, host time close to it: the host's launching bounds the round;
* both well below: the card waits on something else (synchronisation, launch latency between kernels).

Prints one line per K and a JSON object (versions, machine, results) as the last line; ``--out FILE`` writes it too.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from labeldistill.distill import DistillConfig
from labeldistill.distill.run import RunSession
from labeldistill.distill.batched import BatchedStep
from labeldistill.distill.stack import _batched_round, _on, _stream_for

from bench_image_step import publish  # benchmarks/ is the script's folder


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class ConstantStep:
    """``--host-only``: a step that does no device work and returns a fixed record (no reset, finite), so that a round
    costs only the host's part of the loop (its Python, slicing, record reads, flushes)."""

    def __init__(self, device: torch.device) -> None:
        self.record = torch.tensor([50.0, 1.0, 0.0, -1.0, 0.0, 1.0], dtype=torch.float64, device=device)  # RECORD_FIELDS

    def __call__(self, rows: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        return self.record.clone()

    def refill(self, fresh: object) -> None:
        pass


def _union(spans: list[tuple[float, float]]) -> float:
    """Length of the union of sorted intervals."""
    total, end = 0.0, float("-inf")
    for a, b in spans:
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def measure(k: int, args: argparse.Namespace) -> dict:
    cfg = DistillConfig(target=args.target, base=args.base, method=args.method, device=args.device, epochs=1000, val_every=1000,
                        test_models=1, reset_window=10**6 if args.host_only else None)
    sessions = [RunSession(dataclasses.replace(cfg, seed=s), out=None, resume=False, data_root=args.data_root, progress=False)
                for s in range(k)]
    runs = [s.distiller for s in sessions]
    batched = args.batched and k > 1
    streams = [None if batched else _stream_for(d) for d in runs]
    batch: BatchedStep | None = None
    try:
        for d, st in zip(runs, streams):
            with _on(st):
                d.start(bar=False)
            if args.host_only:
                d._stepper = ConstantStep(d.device)  # type: ignore[assignment]
        if batched:  # the stack's rounds as distill_many(batched=True) takes them: one batched step of all K runs
            batch = BatchedStep(runs, cuda_graph=cfg.cuda_graph)
        host = [0.0]

        def rounds(n: int) -> None:
            for _ in range(n):
                if batch is not None:
                    t0 = time.perf_counter()
                    failed = _batched_round(batch, runs, list(range(k)), [None] * k, [])
                    host[0] += time.perf_counter() - t0
                    assert not failed, "a run of the batched stack failed"
                    continue
                for d, st in zip(runs, streams):
                    t0 = time.perf_counter()
                    with _on(st):
                        d.advance()
                    host[0] += time.perf_counter() - t0

        rounds(args.warmup)
        _sync(args.device)
        host[0] = 0.0
        t0 = time.perf_counter()
        rounds(args.rounds)
        _sync(args.device)
        wall = time.perf_counter() - t0
        # How the steps ran (a capture that failed falls back to eager launches, with one warning in the log): the
        # first thing to read when a round is slow.
        steppers = [batch] if batch is not None else [d._stepper for d in runs]
        graphs = sorted({getattr(s, "graph_status", "n/a") for s in steppers})
        rec = {"k": k, "batched": batched, "rounds": args.rounds, "wall_ms_per_round": round(1e3 * wall / args.rounds, 4),
               "host_ms_per_round": round(1e3 * host[0] / args.rounds, 4), "graph": " / ".join(graphs),
               "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            gpu = args.device.startswith("cuda")
            with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if gpu else [])]) as prof:
                rounds(args.rounds)
                _sync(args.device)
            kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)  # microseconds
            by_name: dict[str, float] = {}
            for e in kernels:
                by_name[e.name] = by_name.get(e.name, 0.0) + (e.time_range.end - e.time_range.start)
            # the kernels that take the most time per round: what to make faster (or fewer) first
            rec["top_kernels_ms_per_round"] = {n[:80]: round(t / 1e3 / args.rounds, 4)
                                               for n, t in sorted(by_name.items(), key=lambda kv: -kv[1])[:8]}
            rec["kernels_per_round"] = round(len(spans) / args.rounds, 1)
            rec["kernel_ms_per_round"] = round(sum(b - a for a, b in spans) / 1e3 / args.rounds, 4)
            rec["busy_ms_per_round"] = round(_union(spans) / 1e3 / args.rounds, 4)  # the card running any kernel
            rec["overlap"] = round(rec["kernel_ms_per_round"] / max(rec["busy_ms_per_round"], 1e-9), 3)  # 1: one at a time
        return rec
    finally:
        if batch is not None:
            batch.release()
        for s in sessions:
            s.distiller.close()
            s.release()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--target", default="mnist")
    ap.add_argument("--base", type=int, default=100)
    ap.add_argument("--method", default="ridge")
    ap.add_argument("--k", default="1,8", help="stack sizes")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30, help="rounds before timing (CUDA-graph capture after 3)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip the profiled rounds")
    ap.add_argument("--host-only", action="store_true", help="replace each step's device work by a constant record: the host's cost alone")
    ap.add_argument("--batched", action="store_true", help="K > 1: one batched step per round (distill_many(batched=True)), not K steps")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="torch.backends.cudnn.benchmark = True: cuDNN times its algorithms per shape (the batched step's "
                         "convolutions are grouped, K groups, where the default heuristic may choose badly)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.batched and args.host_only:
        ap.error("--host-only replaces each run's own step; a batched stack has one step for all runs")
    results = []
    for k in (int(x) for x in args.k.split(",")):
        rec = measure(k, args)
        results.append(rec)
        print(f"K={k}: " + ", ".join(f"{n} {v}" for n, v in rec.items() if n != "k"), flush=True)
    return publish("profile_stack", args, results)


if __name__ == "__main__":
    main()
