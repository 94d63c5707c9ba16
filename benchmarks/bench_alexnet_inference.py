"""AlexCifarNet's inference on a CPU: this library's layers against torch.nn's own.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_alexnet_inference.py [--batch 1024] [--rounds 7] [--out FILE.json]

The ridge method's target pass (1,024 images, no gradients), validation and test scoring run
AlexCifarNet forward without gradients. ``labeldistill``: ``build_model("alexnet")``, whose
pooling and LRN layers run the library kernels on chunks of the batch (models/_inference.py);
``plain``: the same network and weights with ``nn.MaxPool2d`` / ``nn.LocalResponseNorm``. The two
are timed interleaved in shuffled order, round after round (a busy machine slows both alike),
and their outputs must be equal bit for bit.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import time

import torch
from torch import nn

import labeldistill
from labeldistill.models import build_model
from labeldistill.models.lrn import LocalResponseNorm
from labeldistill.models.pooling import MaxPool2d


def plain_copy(model: nn.Module) -> nn.Module:
    """The same network and weights with torch.nn's pooling and LRN layers."""
    plain = copy.deepcopy(model)
    for m in list(plain.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, MaxPool2d):
                setattr(m, name, nn.MaxPool2d(child.kernel_size, child.stride, child.padding))
            elif isinstance(child, LocalResponseNorm):
                setattr(m, name, nn.LocalResponseNorm(child.size, child.alpha, child.beta, child.k))
    return plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    ours = build_model("alexnet", 3, 32, args.classes).eval()
    models = {"labeldistill": ours, "plain": plain_copy(ours).eval()}
    x = torch.randn(args.batch, 3, 32, 32)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        outs = {k: m(x) for k, m in models.items()}  # warm-up, and the equality check
        assert torch.equal(outs["labeldistill"], outs["plain"]), "outputs differ"
        order = list(models)
        rng = random.Random(0)
        for _ in range(args.rounds):
            rng.shuffle(order)
            for k in order:
                t0 = time.perf_counter()
                models[k](x)
                times[k].append(time.perf_counter() - t0)
    res = {k: {"median_s": round(statistics.median(v), 4), "min_s": round(min(v), 4)} for k, v in times.items()}
    res["plain_over_labeldistill_median"] = round(res["plain"]["median_s"] / res["labeldistill"]["median_s"], 3)
    record = {"benchmark": "alexnet_inference", "batch": args.batch, "rounds": args.rounds, "threads": torch.get_num_threads(),
              "outputs_equal": True, "results": res, "versions": {"labeldistill": labeldistill.__version__, "torch": torch.__version__},
              "machine": {"platform": platform.platform(), "processor": platform.processor()}}
    print(json.dumps(record, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
