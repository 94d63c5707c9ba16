"""A design question for stacks, measured before it is built: what would one LD RR loop step of K runs cost as ONE
batched step (the K runs' persistent models, labels and minibatches stacked, every layer one kernel for all K), against
K steps of the library's own step (``MetaStep``) one after another?

Usage:
    python benchmarks/proto_vmap_step.py --device cuda [--k 1,2,4,8] [--steps 200]

The batched step is a prototype written here over the library's pieces (``Learner.body`` under ``torch.func.vmap``,
``Learner.ridge_update``, Adam), not the library's loop: the same work as an LD RR step (MNIST shapes: LeNet, 10 inner
images of 100 with their labels, 1,024 target images; the ridge solve, the target loss, the label meta-gradient, the
base loss's backward, an Adam step of labels and models), without the reset monitor, the label projection or the step
record, on random data. It is timed eagerly and, on a GPU, replayed as one CUDA graph, as the loop replays its step.
The library's step is timed the same way on the same shapes, one run (``MetaStep`` in a real ``Distiller`` on MNIST-like
random data is not needed: ``--reference`` reads the measured 1.26-1.4 ms per step of docs/benchmarks.md instead).

If a batched step of K = 8 costs well under 8 single steps, the ``vmap`` over runs is worth building (docs/design-notes.md,
"What bounds a stack on a GPU"). Prints a line per K and a JSON object (versions, machine, results) as the last line.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.func import vmap

from labeldistill.engine import Learner, soft_cross_entropy
from labeldistill.models import build_model, with_bias

from bench_image_step import publish  # benchmarks/ is the script's folder


class BatchedRidgeStep:
    """One LD RR step of K runs at once (prototype)."""

    def __init__(self, k: int, device: torch.device, *, n_base: int = 100, inner: int = 10, target: int = 1024, classes: int = 10,
                 seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.learner = Learner(lambda: build_model("lenet", 1, 28, classes), head="ridge")
        self.state = self.learner.init(list(range(k)), device=device)
        self.labels = torch.full((k, n_base, classes), 1.0 / classes, device=device, requires_grad=True)
        self.base = torch.randn(k, n_base, 1, 28, 28, generator=g).to(device)
        self.xt = torch.randn(k, target, 1, 28, 28, generator=g).to(device)
        self.yt = torch.randint(0, classes, (k, target), generator=g).to(device)
        self.rows = torch.stack([torch.randperm(n_base, generator=g)[:inner] for _ in range(k)]).to(device)
        self.k, self.inner = k, inner
        self.opt_labels = torch.optim.Adam([self.labels], lr=1e-3, capturable=device.type == "cuda")
        self.opt_model = self.learner.optimizer(self.state, 1e-3, capturable=device.type == "cuda")
        self.body = vmap(self.learner.body, in_dims=(0, 0, 0))
        self._ar = torch.arange(k, device=device)[:, None]

    def __call__(self) -> torch.Tensor:
        st, lr = self.state, self.learner
        xb = self.base[self._ar, self.rows]  # K x n x C x H x W
        y = self.labels[self._ar, self.rows].detach().requires_grad_()
        zb = with_bias(self.body(st.params, st.buffers, xb))
        w = lr.ridge_update(zb, y, st.head["w"])
        with torch.no_grad():
            zt = with_bias(self.body({n: p.detach() for n, p in st.params.items()}, st.buffers, self.xt))
        out = zt @ (st.head["s"].detach()[:, None, None] * w)
        loss = F.cross_entropy(out.flatten(0, 1), self.yt.flatten(), reduction="none").view(self.k, -1).mean(1)
        (label_grad,) = torch.autograd.grad(loss.sum(), [y], retain_graph=True)
        self.opt_model.zero_grad(set_to_none=True)
        base = vmap(soft_cross_entropy)(zb @ (st.head["s"][:, None, None] * w), y.detach())
        base.sum().backward()
        self.opt_model.step()
        self.opt_labels.zero_grad(set_to_none=True)
        self.labels.grad = torch.zeros_like(self.labels).index_put_((self._ar.expand_as(self.rows), self.rows), label_grad)
        self.opt_labels.step()
        with torch.no_grad():
            st.head["w"].copy_(w.detach())
        return loss.detach()


def _time(fn, steps: int, device: torch.device) -> float:
    for _ in range(3):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def _graphed(step: BatchedRidgeStep):
    """The step captured as one CUDA graph (warmed up on a side stream first, PyTorch's recipe)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--k", default="1,2,4,8")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    results = []
    for k in (int(x) for x in args.k.split(",")):
        step = BatchedRidgeStep(k, device)
        rec = {"k": k, "eager_ms": round(1e3 * _time(step, args.steps, device), 4)}
        if device.type == "cuda":
            try:
                rec["graph_ms"] = round(1e3 * _time(_graphed(BatchedRidgeStep(k, device)), args.steps, device), 4)
            except Exception as e:  # noqa: BLE001  (a failed capture is a result too)
                rec["graph_error"] = f"{type(e).__name__}: {e}"[:300]
        results.append(rec)
        print(f"K={k}: " + ", ".join(f"{n} {v}" for n, v in rec.items() if n != "k"), flush=True)
    base = results[0]
    for r in results:  # one batched step of K runs against K steps of one run (the K = 1 row)
        for key in ("eager_ms", "graph_ms"):
            if key in r and key in base:
                r[key.replace("_ms", "_over_k_singles")] = round(r[key] / (r["k"] * base[key] / base["k"]), 3)
    return publish("proto_vmap_step", args, results)


if __name__ == "__main__":
    main()
