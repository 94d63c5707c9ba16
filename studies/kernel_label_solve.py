"""Experiment (issue 18): labels solved against a random-feature kernel (KIP's "label solve").

For a distilled set's base images, K randomly initialised networks of ``--arch`` (never trained)
give features; each defines a kernel ridge regressor from the base images to any image,
``A = K_tb (K_bb + lam * tr(K_bb) / N * I)^-1``. The labels P (softmax of free logits) are fitted
by Adam so that the scaled predictions ``c * A P`` classify ``--targets`` training images (soft
cross-entropy, averaged over the K kernels); the snapshot with the best kernel accuracy on
``--val`` validation images is kept and written as a copy of the run with those labels, ready for
``labeldistill evaluate OUT --protocol dc``.

    python studies/kernel_label_solve.py results/runs/mnist-ldrr-100-s0 runs/krr --nets 2 --targets 3000 --val 1000 --steps 200

Measured result and what it says: docs/results.md ("A kernel label solve").
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import labeldistill
from labeldistill.data import load_target
from labeldistill.models import build_model


def features(net: torch.nn.Module, x: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net.features(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def kernel_maps(arch: str, base: torch.Tensor, others: list[torch.Tensor], nets: int, lam: float) -> list[torch.Tensor]:
    """For each of ``others``: K x len(other) x N kernel-ridge maps from base labels to predictions."""
    maps: list[list[torch.Tensor]] = [[] for _ in others]
    c, h = base.shape[1], base.shape[2]
    for k in range(nets):
        torch.manual_seed(1000 + k)
        net = build_model(arch, c, h, 10).eval()
        fb = features(net, base)
        kbb = fb @ fb.T
        inv = torch.linalg.inv(kbb + lam * kbb.trace() / len(fb) * torch.eye(len(fb)))
        for out, x in zip(maps, others):
            out.append((features(net, x) @ fb.T) @ inv)
    return [torch.stack(m).double() for m in maps]


def accuracy(maps: torch.Tensor, labels: torch.Tensor, y: torch.Tensor) -> float:
    return ((maps @ labels).mean(0).argmax(1) == y).double().mean().item() * 100


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a run directory (its base images and config are reused)")
    p.add_argument("out", help="where the copy with solved labels goes (replaced)")
    p.add_argument("--target", default="mnist")
    p.add_argument("--data-root", default="/work/shared/data")
    p.add_argument("--nets", type=int, default=4)
    p.add_argument("--targets", type=int, default=5000)
    p.add_argument("--val", type=int, default=2000)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lam", type=float, default=1e-2)
    p.add_argument("--arch", default="convnet3")
    a = p.parse_args()
    t0 = time.time()
    ds = labeldistill.load(a.src)
    data = load_target(a.target, data_root=a.data_root, seed=0)
    g = torch.Generator().manual_seed(1)
    ti = torch.randperm(len(data.train.y), generator=g)[: a.targets]
    vi = torch.randperm(len(data.val.y), generator=g)[: a.val]
    yt, yv = data.train.y[ti], data.val.y[vi]
    at, av = kernel_maps(a.arch, ds.images, [data.train.x[ti], data.val.x[vi]], a.nets, a.lam)
    onehot = F.one_hot(ds.labels.argmax(1), 10).double()
    z = torch.log(onehot.clamp_min(1e-3)).requires_grad_(True)
    log_scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([z, log_scale], lr=0.05)
    print(f"one-hot labels: kernel val accuracy {accuracy(av, onehot, yv):.2f}", flush=True)
    best = (-1.0, onehot, -1)
    for s in range(a.steps + 1):
        labels = torch.softmax(z, 1)
        loss = F.cross_entropy(((at @ labels) * log_scale.exp()).reshape(-1, 10), yt.repeat(a.nets))
        if s % 25 == 0:
            va = accuracy(av, labels.detach(), yv)
            if va > best[0]:
                best = (va, labels.detach().clone(), s)
            kept = (labels.argmax(1) == ds.labels.argmax(1)).float().mean().item()
            print(f"step {s} loss {loss.item():.4f} val {va:.2f} train {accuracy(at, labels.detach(), yt):.2f} "
                  f"argmax kept {kept:.2f} mean max {labels.max(1).values.mean().item():.3f}", flush=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in ("config.json", "result.json"):
        shutil.copy(Path(a.src) / f, out / f)
    dataclasses.replace(ds, labels=best[1].float()).save(out / "distilled.safetensors")
    record = {**vars(a), "best_val_kernel": best[0], "best_step": best[2], "seconds": round(time.time() - t0, 1),
              "labels_sha256": hashlib.sha256(best[1].float().numpy().tobytes()).hexdigest()}
    (out / "kernel_label_solve.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
