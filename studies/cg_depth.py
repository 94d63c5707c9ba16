"""Experiment (issue 18): how far is ``--method implicit``'s 10-step conjugate-gradient solve from the implicit gradient?

The method's label gradient is ``(1/N) <grad log p_c(x_i), u>`` with ``u = (G + (wd + damping) I)^-1 grad L_target``
solved by ``cg_iters`` CG steps from zero (distill/strategies/implicit.py; 10 since session 30, never varied). Few CG
steps favour the curvature's large directions; the exact inverse weights the flat ones, where the labels move the
trained student most. Whether that matters is a question about directions: this script trains the method's students
the protocol's way on a run's start labels (its first label step's situation), then takes the label gradient on one
target minibatch and one draw of views at several CG depths, with the library's own solver, and reports each one's
cosine with the deepest. Two students give the scale that matters: the cosine
between two students' gradients at the method's depth is the noise every step already averages over.

    OMP_NUM_THREADS=1 python studies/cg_depth.py records/runs/mnist-implicit-r5-e2-100-s0 --data-root ../shared/data \\
        --depths 5 10 20 40 80 --out runs/s53/cg-depth.json

Measured result and what it says: docs/results.md ("Session 53").
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from labeldistill.artifact import load
from labeldistill.distill.strategies.implicit import implicit_label_grad, target_grad
from labeldistill.distill.start import START_FILE
from labeldistill.distill.students import ProtocolStudents
from labeldistill.engine import make_learner
from labeldistill.problem import run_target
from labeldistill.protocols import get_protocol
from labeldistill.protocols.evaluate import target_zca
from labeldistill.runs.provenance import versions
from labeldistill.runs.tensorstate import load_state
from labeldistill.seeding import derive_seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="an implicit run directory (its config, start labels and base images)")
    ap.add_argument("--labels", choices=("start", "distilled"), default="start", help="the labels the students train on")
    ap.add_argument("--depths", type=int, nargs="+", default=[5, 10, 20, 40, 80], help="CG steps; the last is the reference")
    ap.add_argument("--students", type=int, default=2)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    record = json.loads((a.run / "config.json").read_text())
    cfg = record["config"]
    dev = torch.device("cpu")
    ds = load(a.run)  # the base images (and the learned labels)
    x = ds.images.to(dev)
    y = (load_state(a.run / START_FILE)["labels"] if a.labels == "start" else ds.labels).to(dev)
    n, ch, size = int(x.shape[0]), int(x.shape[1]), int(x.shape[-1])
    target = run_target(cfg["target"], a.data_root, cfg, int(cfg["seed"]), dev, size)
    proto = get_protocol(cfg["test_protocol"])
    learner = make_learner(cfg["arch"], ch, size, target.num_classes, head="linear")
    students = ProtocolStudents(learner, proto, channels=ch, n_base=n, seed=int(cfg["seed"]), students=a.students,
                                follow_epochs=int(cfg["follow_epochs"]), first_epochs=None, zca=target_zca(proto, target, ch),
                                device=dev, progress=True)  # whitened as the run's students, where the protocol whitens
    t0 = time.perf_counter()
    students.train_first(x, y, progress=True)
    trained_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(derive_seed(int(cfg["seed"]), "cg-depth-target"))
    pick = torch.randperm(target.train.x.shape[0], generator=g)[: int(cfg["target_batch"])]
    xt, yt = students.whiten(target.train.x[pick].to(dev)), target.train.y[pick].to(dev)  # the target as the students see it
    xv = students.views(x, int(cfg["views"]))
    damping = proto.weight_decay + float(cfg["damping"])
    rows = []
    for k in range(a.students):
        theta = {name: t[k].detach() for name, t in students.state.params.items()}
        buffers = {name: t[k] for name, t in students.state.buffers.items()}
        head = {name: t[k] for name, t in students.state.head.items()}

        def logits_of(p, xx, buffers=buffers, head=head):
            return learner.logits(p, buffers, head, xx)

        g_t, _, _ = target_grad(logits_of, theta, xt, yt, fitted=cfg["target_scale"] == "fitted")
        for depth in a.depths:
            t1 = time.perf_counter()
            grad = implicit_label_grad(logits_of, theta, xv[k], int(cfg["views"]), g_t, damping=damping, cg_iters=depth,
                                       mode="double-backward")
            rows.append({"student": k, "cg_iters": depth, "grad": grad, "seconds": round(time.perf_counter() - t1, 1)})
            print(f"student {k} depth {depth}: {rows[-1]['seconds']} s", flush=True)

    def cos(p: torch.Tensor, q: torch.Tensor) -> float:
        p, q = p - p.mean(-1, keepdim=True), q - q.mean(-1, keepdim=True)  # a row's common shift moves no probability
        return float((p * q).sum() / (p.norm() * q.norm()))

    ref = {k: next(r["grad"] for r in rows if r["student"] == k and r["cg_iters"] == a.depths[-1]) for k in range(a.students)}
    table = []
    for r in rows:
        other = next(o["grad"] for o in rows if o["student"] != r["student"] and o["cg_iters"] == r["cg_iters"]) if a.students > 1 else None
        table.append({"student": r["student"], "cg_iters": r["cg_iters"],
                      "cos_with_deepest": cos(r["grad"], ref[r["student"]]),
                      "sign_agreement_with_deepest": float((torch.sign(r["grad"]) == torch.sign(ref[r["student"]])).float().mean()),
                      "norm_over_deepest": float(r["grad"].norm() / ref[r["student"]].norm()),
                      "cos_with_other_student_same_depth": None if other is None else cos(r["grad"], other),
                      "seconds": r["seconds"]})
        print(json.dumps(table[-1]), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"run": str(a.run), "labels": a.labels, "depths": a.depths, "students": a.students,
                                 "first_training_seconds": round(trained_s, 1), "table": table, "versions": versions()},
                                indent=2) + "\n")


if __name__ == "__main__":
    main()
