"""Training K models at once on a CPU: the engine's loop (unbind once) against per-model indexing and vmap.

Usage:
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_engine_loop.py [--rounds 3] [--steps 4]

The engine's ``loop`` mode used to hand model i its parameters as ``stacked[i]``; the backward of K
such selects writes each model's gradient into a zero tensor the size of the whole stack, so a step
moves O(K^2) parameters' worth of memory. It now unbinds the stack once (one stack in the backward).
This times ``train_models`` (LeNet, Adam) under the current loop, the old per-model indexing (kept
here as the reference), and vmap, interleaved in shuffled order round after round, for the shapes the
package trains: the paper's 20 test models on 100 images, and ``paper-table7``'s 150 candidate models
on 10 and on 100 images. It checks that the two loops give the same parameters bit for bit. Prints
one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

import labeldistill.engine.train as engine_train
from labeldistill.engine import make_learner, model_seeds, train_models
from labeldistill.engine.batching import map_models
from labeldistill.runs.provenance import versions

from bench_image_step import machine  # benchmarks/ is the script's folder
from bench_protocol import interleaved_times

CASES = ((20, 100, 50), (150, 10, 10), (150, 100, 50))  # (models K, images N, batch)


def _indexing_map_models(fn, in_dims, mode):
    """The engine's loop before the change: model i's arguments are ``t[i]`` of every stacked leaf."""
    if mode != "loop":
        return map_models(fn, in_dims, mode)

    def looped(*args: Any) -> Any:
        k = next(tree_flatten(a)[0][0].shape[0] for a, d in zip(args, in_dims) if d == 0)
        outs = [fn(*(tree_map(lambda t: t[i], a) if d == 0 else a for a, d in zip(args, in_dims))) for i in range(k)]
        leaves = [tree_flatten(o)[0] for o in outs]
        return tree_unflatten([torch.stack(col) for col in zip(*leaves)], tree_flatten(outs[0])[1])

    return looped


def _train(learner, x, y, steps, seeds, batch, mode, indexing=False):
    engine_train.map_models = _indexing_map_models if indexing else map_models
    try:
        return train_models(learner, x, y, steps, seeds, batch_size=batch, mode=mode)
    finally:
        engine_train.map_models = map_models


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args(argv)
    learner = make_learner("lenet", 1, 28, 10)
    rows = []
    for k, n, batch in CASES:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 1, 28, 28, generator=g)
        y = torch.softmax(torch.randn(k, n, 10, generator=g), -1)
        seeds = model_seeds(0, "bench", k)
        runners = {
            "loop (unbind)": lambda s: _train(learner, x, y, s, seeds, batch, "loop"),
            "loop (indexing, before)": lambda s: _train(learner, x, y, s, seeds, batch, "loop", indexing=True),
            "vmap": lambda s: _train(learner, x, y, s, seeds, batch, "vmap"),
        }
        times = {name: statistics.median(v) for name, v in interleaved_times(runners, args.steps, args.rounds).items()}
        a, b = _train(learner, x, y, 3, seeds, batch, "loop"), _train(learner, x, y, 3, seeds, batch, "loop", indexing=True)
        same = all(torch.equal(a.params[p], b.params[p]) for p in a.params)
        base = times["loop (indexing, before)"]
        for name, sec in times.items():
            rows.append({"models": k, "images": n, "batch": batch, "mode": name, "ms_per_step": round(sec * 1e3, 1),
                         "speedup_vs_indexing": round(base / sec, 2), "loops_bit_identical": same})
            print(f"K={k:3d} N={n:3d} batch {batch:3d}  {name:24s} {sec * 1e3:8.1f} ms/step  x{base / sec:.2f}  loops equal: {same}")
    out = {"benchmark": "engine-loop", "rounds": args.rounds, "steps": args.steps, "machine": machine("cpu"),
           "versions": versions(), "rows": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
