"""LeNet's forward + backward on a target minibatch: this library's layers against the plain ones.

Usage:
    python benchmarks/bench_lenet_layers.py [--batch 1024] [--rounds 25] [--device cpu]

The second-order step's cost is LeNet's forward and backward (weight gradients) on the
1,024-image target minibatch. This times that pass for
- ``plain``: the paper's layers as PyTorch has them (conv -> ReLU -> max_pool2d, nn.Conv2d),
- ``pool-first``: the same with pooling before ReLU (the same function),
- ``labeldistill``: ``build_model("lenet")`` (pool before ReLU, conv + pool as one layer;
  on a CPU by phases with the weight gradient as a convolution over the batch),
interleaved in shuffled order, round after round, so that a busy machine slows all of
them alike; it prints the median and the minimum per pass, and the largest gradient
difference from ``plain``.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import labeldistill
from labeldistill.models import Classifier, build_model


def plain_lenet(pool_first: bool = False) -> Classifier:
    """LeNet with PyTorch's own layers, conv -> ReLU -> max_pool2d (or pool first): the same
    parameters, names and initialisation as ``build_model("lenet")``, without its CPU paths."""
    block = (lambda c: [c, nn.MaxPool2d(2), nn.ReLU()]) if pool_first else (lambda c: [c, nn.ReLU(), nn.MaxPool2d(2)])
    conv = nn.Sequential(*block(nn.Conv2d(1, 6, 5, padding=2)), *block(nn.Conv2d(6, 16, 5)), nn.Flatten())
    features = nn.Sequential(conv, nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
    return Classifier(features, 84, 10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    ours = build_model("lenet", 1, 28, 10).to(args.device)
    nets = {"plain": plain_lenet(), "pool-first": plain_lenet(pool_first=True), "labeldistill": ours}
    for net in nets.values():
        net.load_state_dict(ours.state_dict())
        net.to(args.device)
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(args.batch, 1, 28, 28)
    x[:, :, 6:22, 6:22] = torch.rand(args.batch, 1, 16, 16, generator=g)  # digits on a flat background
    x = ((x - 0.1307) / 0.3081).to(args.device)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(args.device)

    def grads(net: nn.Module) -> list[torch.Tensor]:
        out = net(x)
        gs = torch.autograd.grad(F.cross_entropy(out, y), list(net.parameters()))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return list(gs)

    ref = grads(nets["plain"])
    diff = {k: max((a - b).abs().max().item() for a, b in zip(grads(n), ref)) for k, n in nets.items()}
    times: dict[str, list[float]] = {k: [] for k in nets}
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = list(nets)
        rng.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            grads(nets[k])
            times[k].append(time.perf_counter() - t0)
    print(f"LeNet forward + backward on {args.batch} images, {args.rounds} interleaved rounds; device {args.device} "
          f"({platform.processor() or platform.machine()}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"labeldistill {labeldistill.__version__}")
    print(f"{'layers':<14}{'median (ms)':>13}{'min (ms)':>11}{'max |grad - plain|':>20}")
    for k in nets:
        print(f"{k:<14}{1e3 * statistics.median(times[k]):>13.1f}{1e3 * min(times[k]):>11.1f}{diff[k]:>20.2e}")


if __name__ == "__main__":
    main()
