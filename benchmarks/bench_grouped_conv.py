"""K runs' convolutions in one call: the forms a batched stack's LeNet layers can take, timed on one device.

Usage:
    python benchmarks/bench_grouped_conv.py [--device cuda] [--k 8] [--reps 20] [--out FILE]

A batched stack (``distill/batched.py``) runs its K runs' models under ``torch.func.vmap``; with a different input
per run (each run its own base images and target minibatch) PyTorch's batching rule turns each convolution into one
grouped convolution (K groups, the runs' channels side by side). On this project's 2-core CPU that form took 71 % of a
batched round of 8 LD RR runs and was 5 times slower than the same convolutions one run at a time
(docs/design-notes.md, "A batched stack on a CPU"). This times, for LeNet's two convolutions at the loop's batch sizes
(the target minibatch of 1,024 MNIST images and the inner minibatch of 10), forward and backward (input and weight
gradients) of:

* ``vmap``: what the batched step does today (the grouped convolution in PyTorch's default layout);
* ``grouped-cl``: the same grouped convolution with channels-last tensors;
* ``loop``: K separate convolutions (K times the kernels: what a lockstep stack launches);

on a GPU each also with ``torch.backends.cudnn.benchmark`` (cuDNN times its algorithms per shape). Milliseconds per
call, the median of ``--reps``; the forms' outputs are checked against the loop's. Prints one JSON object last.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import vmap

from bench_image_step import publish  # benchmarks/ is the script's folder

# LeNet on 28 px MNIST (models/lenet.py): (input channels, output channels, side, padding)
LAYERS = {"conv1": (1, 6, 28, 2), "conv2": (6, 16, 14, 0)}
KERNEL = 5


def forms(pad: int) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Each form maps x (K x B x C x H x W) and w (K x O x C x k x k) to the K runs' outputs (K x B x O x H' x W')."""

    def one(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, padding=pad)

    def grouped_cl(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        k, b, c, h, wd = x.shape
        xg = x.movedim(0, 1).reshape(b, k * c, h, wd).contiguous(memory_format=torch.channels_last)
        wg = w.reshape(-1, *w.shape[2:]).contiguous(memory_format=torch.channels_last)
        out = F.conv2d(xg, wg, padding=pad, groups=k)
        return out.reshape(b, k, -1, *out.shape[-2:]).movedim(1, 0)

    def loop(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.stack([one(xi, wi) for xi, wi in zip(x, w)])

    return {"vmap": vmap(one), "grouped-cl": grouped_cl, "loop": loop}


def time_form(fn: Callable, x: torch.Tensor, w: torch.Tensor, g: torch.Tensor, reps: int) -> tuple[float, torch.Tensor]:
    """Median ms of forward + backward (x and w gradients), and the output."""
    def call() -> torch.Tensor:
        xi, wi = x.detach().requires_grad_(), w.detach().requires_grad_()
        out = fn(xi, wi)
        torch.autograd.grad((out * g).sum(), [xi, wi])
        return out.detach()

    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    for _ in range(3):  # warm-up (and cuDNN's own timing under benchmark mode)
        out = call()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        call()
        sync()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--k", type=int, default=8, help="runs in the stack")
    ap.add_argument("--batches", default="1024,10", help="minibatch sizes (the loop's target and inner minibatches)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    modes = [False, True] if args.device.startswith("cuda") else [False]
    results = []
    for layer, (c, o, side, pad) in LAYERS.items():
        for b in (int(s) for s in args.batches.split(",")):
            x = torch.randn(args.k, b, c, side, side, generator=gen).to(args.device)
            w = torch.randn(args.k, o, c, KERNEL, KERNEL, generator=gen).to(args.device)
            out_side = side + 2 * pad - KERNEL + 1
            g = torch.randn(args.k, b, o, out_side, out_side, generator=gen).to(args.device)
            for bench_mode in modes:
                torch.backends.cudnn.benchmark = bench_mode
                row = {"layer": layer, "batch": b, "cudnn_benchmark": bench_mode}
                ref = None
                for name, fn in forms(pad).items():
                    ms, out = time_form(fn, x, w, g, args.reps)
                    row[f"{name}_ms"] = round(ms, 3)
                    if name == "loop":
                        ref = out
                    else:
                        row.setdefault("outputs", {})[name] = out
                assert ref is not None
                row["max_diff_to_loop"] = {n: float((t - ref).abs().max()) for n, t in row.pop("outputs").items()}
                results.append(row)
                print(f"{layer} B={b} cudnn.benchmark={bench_mode}: " +
                      ", ".join(f"{n} {row[f'{n}_ms']} ms" for n in forms(pad)), flush=True)
    torch.backends.cudnn.benchmark = False
    return publish("grouped_conv", args, results)


if __name__ == "__main__":
    main()
