"""Does this library's LeNet change what the loop learns, beyond rounding? Label trajectories side by side.

Usage:
    python benchmarks/trajectories.py --data-root ../shared/data [--seed 1] [--epochs 20] [--method second-order] [--json]

The loop is chaotic: resets and Adam amplify any difference of one rounding step into a
different run after some hundreds of steps, so two full runs of the same seed that differ
only in floating-point rounding end about a point apart in test accuracy. This runs the
first ``--epochs`` of ``labeldistill distill --target mnist --base 100 --seed S`` (same
base set, batches and model draws) three ways:
- ``reference``: this library's LeNet (pool before ReLU, conv + pool by phases on a CPU),
  the meta-gradient form ``auto`` picks on this device;
- ``PyTorch layers``: LeNet as PyTorch has it, conv -> ReLU -> max_pool2d (a different
  program for the same function);
- ``other meta-gradient``: the reference with the other exact meta-gradient form (JVP or
  double backward): the same network, only the rounding differs.
After each epoch it prints how far the labels of the two others are from the reference
(largest absolute difference), the reset counts and the first reset whose T_i differs. If
the library's layers only change rounding, ``PyTorch layers`` drifts from the reference as
``other meta-gradient`` does: same order of size at the same epochs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from collections.abc import Callable

import torch

import labeldistill
from labeldistill.distill import DistillConfig, Distiller
from labeldistill.distill.config import resolve_meta_gradient
from labeldistill.distill.run import prepare

from bench_lenet_layers import plain_lenet  # benchmarks/ is the script's folder


def trajectory(cfg: DistillConfig, problem, model_factory: Callable | None) -> list[dict]:
    """Labels, resets and T_i after each epoch of one run of the loop."""
    out: list[dict] = []

    def record(d: Distiller) -> None:
        out.append({"epoch": d.epoch, "step": d.step, "labels": d.labels.value.detach().cpu().clone(), "t_list": list(d.monitor.t_list)})

    Distiller(cfg, problem, model_factory=model_factory, progress=False).run(on_epoch=record)
    return out


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index (1-based) of the first reset whose T_i differs, None while they agree."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i + 1
    return None if len(a) == len(b) else min(len(a), len(b)) + 1


def plot(rows: list[dict], names: list[str], meta: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    epochs = [r["epoch"] for r in rows]
    for name in names:
        label = f"{name} ({meta['meta_gradient']['other meta-gradient']})" if name == "other meta-gradient" else name
        ax.semilogy(epochs, [r[name]["max_abs_label_diff"] for r in rows], marker="o", ms=3, label=label)
    ax.set_xlabel("epoch (49 loop steps each)")
    ax.set_ylabel("largest |label - reference label|")
    ax.set_title(f"{meta['method']}, MNIST-100, seed {meta['seed']}: distance from the reference run", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--method", default="second-order", choices=["second-order", "ridge"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", metavar="FILE", help="also draw the label distance from the reference per epoch (PNG)")
    args = ap.parse_args()
    # val_every past the end: no label-selection validations on the way (one at the end).
    cfg = DistillConfig(target="mnist", base=100, method=args.method, seed=args.seed, epochs=args.epochs,
                        val_every=args.epochs + 1, device=args.device)
    cfg, problem, device = prepare(cfg, data_root=args.data_root)
    auto = resolve_meta_gradient("auto", device)
    other = "jvp" if auto == "double-backward" else "double-backward"
    variants = {"reference": (None, auto), "PyTorch layers": (plain_lenet, auto)}
    if args.method == "second-order":
        variants["other meta-gradient"] = (None, other)
    runs, seconds = {}, {}
    for name, (factory, form) in variants.items():
        t0 = time.perf_counter()
        runs[name] = trajectory(dataclasses.replace(cfg, meta_gradient=form), problem, factory)
        seconds[name] = round(time.perf_counter() - t0, 1)

    others = list(variants)[1:]
    rows = []
    for e, r in enumerate(runs["reference"]):
        row = {"epoch": r["epoch"], "step": r["step"], "resets": {"reference": len(r["t_list"])}}
        for name in others:
            o = runs[name][e]
            row[name] = {"max_abs_label_diff": float((o["labels"] - r["labels"]).abs().max()), "resets": len(o["t_list"]),
                         "first_differing_reset": first_difference(r["t_list"], o["t_list"])}
        rows.append(row)
    meta = {"machine": platform.processor() or platform.machine(), "device": device, "torch": torch.__version__,
            "labeldistill": labeldistill.__version__, "threads": torch.get_num_threads(), "seed": args.seed,
            "method": args.method, "meta_gradient": {"reference": auto, "other meta-gradient": other}, "seconds": seconds}
    if args.plot:
        plot(rows, others, meta, args.plot)
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"# {args.method}, MNIST-100, seed {args.seed}, {device}, torch {torch.__version__}; reference meta-gradient: {auto}")
    head = "| epoch | resets (ref) | " + " | ".join(f"{n}: max abs label diff | resets | first differing reset" for n in others) + " |"
    print(head)
    print("|" + "---|" * (2 + 3 * len(others)))
    for row in rows:
        cells = [str(row["epoch"]), str(row["resets"]["reference"])]
        for n in others:
            c = row[n]
            cells += [f"{c['max_abs_label_diff']:.2e}", str(c["resets"]), str(c["first_differing_reset"] or "-")]
        print("| " + " | ".join(cells) + " |")
    print(f"seconds per run: {seconds}")


if __name__ == "__main__":
    main()
