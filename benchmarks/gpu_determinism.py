"""Is a GPU run reproducible bit for bit, alone and in a stack? The tolerance of issue 19's "stacked equals alone".

A stack of 2 (seeds 0, 1) differed from seed 0 alone by 1.4e-3 in its labels after one MNIST epoch on an H200, with
blocking launches (docs/benchmarks.md, 2026-12-04). That is the size a rounding difference grows to in 49 loop steps
(the same-seed CPU/GPU pair drifted by 5e-4 in loss by step 50), so the question is where the first rounding
difference comes from: the GPU run itself (seed 0 alone twice), or the stack. Runs seed 0 alone twice, then seeds 0
and 1 stacked, each a short LD RR run on MNIST-100, and prints the largest label differences and the first loop step
whose loss differs. ``--deterministic`` sets cuDNN's deterministic algorithms and PyTorch's deterministic mode (warn
only); cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment before the process starts (its results may
otherwise depend on which streams are active). One JSON line at the end.

Usage:
    python benchmarks/gpu_determinism.py --data-root DATA --device cuda [--deterministic] [--epochs 1]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

import torch

from labeldistill.distill import DistillConfig, distill_many
from labeldistill.runs.metrics import read_metrics
from labeldistill.runs.provenance import versions


def first_difference(a: list[float], b: list[float]) -> int | None:
    """The first loop step (1-based) whose loss differs, or None."""
    return next((i + 1 for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--method", default="ridge")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--deterministic", action="store_true")
    args = ap.parse_args(argv)
    if args.deterministic:
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    cfg = DistillConfig(target="mnist", base=100, method=args.method, epochs=args.epochs, test_models=2, device=args.device)
    tmp = Path(tempfile.mkdtemp())
    one = lambda name: distill_many([cfg], outs=[tmp / name], progress=False, data_root=args.data_root)[0]  # noqa: E731
    runs = {"alone_a": one("alone_a"), "alone_b": one("alone_b"),
            "stacked": distill_many([cfg, dataclasses.replace(cfg, seed=1)], outs=[tmp / "stacked", tmp / "stacked_s1"],
                                    progress=False, data_root=args.data_root)[0]}
    losses = {k: [r["loss"] for r in read_metrics(tmp / k / "metrics.jsonl") if r["kind"] == "step"] for k in runs}
    out = {
        "benchmark": "gpu_determinism", "deterministic": args.deterministic, "epochs": args.epochs, "method": args.method,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"), "versions": versions(),
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "alone_twice_max_label_diff": float((runs["alone_a"].labels - runs["alone_b"].labels).abs().max()),
        "stacked_vs_alone_max_label_diff": float((runs["alone_a"].labels - runs["stacked"].labels).abs().max()),
        "alone_twice_first_loss_difference": first_difference(losses["alone_a"], losses["alone_b"]),
        "stacked_vs_alone_first_loss_difference": first_difference(losses["alone_a"], losses["stacked"]),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
