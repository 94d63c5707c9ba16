"""Kept freed memory (labeldistill.allocator) against glibc's default, in fresh processes, interleaved.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_allocator.py [--rounds 3] [--steps 10] [--json OUT]

Times three CPU workloads, each in its own process with the allocator's default and with
``keep_freed_memory()``: one ConvNet-3 training step on 100 MNIST-sized images (the dc / dc-dsa
protocols' step), ten LeNets trained together on 100 images (label selection and tests), one
AlexCifarNet step on 100 CIFAR-sized images, one LeNet step on 1,024 images (the size of the loop's
target batch) and AlexCifarNet's forward pass on 1,024 images without gradients (the ridge loop's
target pass). Prints wall, user and system seconds per step and
minor page faults per step (min over rounds for times), and checks the results are equal bit for bit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent("""
    import hashlib, json, resource, sys, time, torch
    from labeldistill.allocator import keep_freed_memory
    tuned = keep_freed_memory() if sys.argv[1] == "kept" else False
    from labeldistill.engine import make_learner, model_seeds, train_models
    from labeldistill.engine.recipe import TrainRecipe
    work, steps = sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    spec = {"convnet3": ("convnet3", 1, 28, 1, 100), "lenet-x10": ("lenet", 1, 28, 10, 100), "alexnet": ("alexnet", 3, 32, 1, 100),
            "lenet-1024": ("lenet", 1, 28, 1, 1024), "alexnet-1024-infer": ("alexnet", 3, 32, 1, 1024)}[work]
    arch, c, size, k, n = spec
    learner = make_learner(arch, c, size, 10)
    x = torch.randn(n, c, size, size)
    if work.endswith("-infer"):  # the ridge method's target pass: features of the target batch, no gradients
        from labeldistill.engine import predict
        state = train_models(learner, x[:100], torch.eye(10)[torch.arange(100) % 10], 1, model_seeds(0, "bench", 1), batch_size=100)
        predict(learner, state, x)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(steps):
            out = predict(learner, state, x)[0]
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"tuned": tuned, "wall": wall / steps, "user": (r1.ru_utime - r0.ru_utime) / steps,
                          "sys": (r1.ru_stime - r0.ru_stime) / steps, "faults": (r1.ru_minflt - r0.ru_minflt) / steps,
                          "digest": hashlib.sha256(out.numpy().tobytes()).hexdigest()}))
        sys.exit(0)
    y = torch.nn.functional.one_hot(torch.randint(0, 10, (n,)), 10).float()
    seeds = model_seeds(0, "bench", k)
    recipe = TrainRecipe(optimizer="sgd", lr=0.01, momentum=0.9)
    train_models(learner, x, y, 2, seeds, batch_size=n, recipe=recipe)  # warm-up (allocations, kernels)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    state = train_models(learner, x, y, steps, seeds, batch_size=n, recipe=recipe)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    digest = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in state.params.values())).hexdigest()
    print(json.dumps({"tuned": tuned, "wall": wall / steps, "user": (r1.ru_utime - r0.ru_utime) / steps,
                      "sys": (r1.ru_stime - r0.ru_stime) / steps, "faults": (r1.ru_minflt - r0.ru_minflt) / steps, "digest": digest}))
""")
WORKS = ("convnet3", "lenet-x10", "alexnet", "lenet-1024", "alexnet-1024-infer")


def child(mode: str, work: str, steps: int) -> dict:
    env = {**os.environ, "LABELDISTILL_KEEP_FREED_MEMORY": "1" if mode == "kept" else "0"}
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, work, str(steps)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", default=None, help="write the measurements here")
    args = ap.parse_args()
    rows = {}
    for work in WORKS:
        got: dict[str, list[dict]] = {"default": [], "kept": []}
        for _ in range(args.rounds):
            for mode in ("default", "kept"):  # interleaved: a drifting machine slows both alike
                got[mode].append(child(mode, work, args.steps))
        same = len({r["digest"] for rs in got.values() for r in rs}) == 1
        rows[work] = {mode: {k: min(r[k] for r in rs) for k in ("wall", "user", "sys", "faults")} for mode, rs in got.items()}
        rows[work]["same_result"] = same
        d, k = rows[work]["default"], rows[work]["kept"]
        print(f"{work:10s} default: {d['wall']:.3f} s/step (user {d['user']:.3f}, sys {d['sys']:.3f}, {d['faults']:.0f} faults)  "
              f"kept: {k['wall']:.3f} s/step (user {k['user']:.3f}, sys {k['sys']:.3f}, {k['faults']:.0f} faults)  "
              f"x{d['wall'] / k['wall']:.2f}  same result: {same}")
    import torch

    record = {"rows": rows, "rounds": args.rounds, "steps": args.steps, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "python": platform.python_version(), "machine": platform.platform(),
              "processor": platform.processor()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
