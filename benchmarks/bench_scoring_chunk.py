"""Scoring chunk on a CPU: the engine's default (sized to the cache) against fixed chunks, per architecture.

Usage:
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_scoring_chunk.py [--images 2048] [--models 2] [--rounds 5]

For each architecture without batch norm, K fresh models (their weights do not change the cost) score
the same random images with ``labeldistill.engine.accuracy`` at the default chunk
(``engine.train.cpu_chunk_rows``: the largest intermediate of one row times the rows under 8 MiB) and at
fixed chunks, interleaved in shuffled order round after round; the figure is the median over rounds of
microseconds per image and model. It also checks the point of the default: every chunk gives the same
logits, bit for bit. Prints one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from labeldistill.engine import Learner, accuracy, predict
from labeldistill.engine.train import cpu_chunk_rows
from labeldistill.models import build_model
from labeldistill.runs.provenance import versions

from bench_image_step import machine  # benchmarks/ is the script's folder
from bench_protocol import interleaved_times

SHAPES = {"lenet": (1, 28), "convnet3": (1, 28), "alexnet": (3, 32)}
FIXED = (8, 64, 512, 2048)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--arch", nargs="*", default=list(SHAPES))
    args = ap.parse_args(argv)
    rows = []
    for arch in args.arch:
        ch, side = SHAPES[arch]
        learner = Learner(lambda a=arch, c=ch, s=side: build_model(a, c, s, 10))
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(args.images, ch, side, side, generator=g), torch.randint(0, 10, (args.images,), generator=g)
        state = learner.init(list(range(args.models)))
        default = cpu_chunk_rows(learner, x)
        chunks = {f"default ({default})": None, **{str(c): c for c in FIXED if c != default}}
        runners = {name: (lambda n, c=c: [accuracy(learner, state, x, y, chunk=c, mode="loop") for _ in range(n)]) for name, c in chunks.items()}
        times = interleaved_times(runners, 1, args.rounds)
        ref = predict(learner, state, x, chunk=2048, mode="loop")
        same = all(torch.equal(ref, predict(learner, state, x, chunk=c, mode="loop")) for c in chunks.values())
        per = {name: statistics.median(v) / (args.images * args.models) * 1e6 for name, v in times.items()}
        base = per["2048"] if "2048" in per else per[f"default ({default})"]
        for name, us in per.items():
            rows.append({"arch": arch, "chunk": name, "us_per_image_model": round(us, 2), "speedup_vs_2048": round(base / us, 2),
                         "same_logits_bit_for_bit": same})
            print(f"{arch:9s} chunk {name:14s} {us:8.1f} us / image / model   x{base / us:.2f} vs 2048   same logits: {same}")
    out = {"benchmark": "scoring-chunk", "images": args.images, "models": args.models, "rounds": args.rounds,
           "machine": machine("cpu"), "versions": versions(), "rows": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
