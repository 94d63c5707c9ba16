"""Experiment (issue 18): how far can labels on these base images go? A teacher on every augmented view.

A label set gives each base image one label, whatever view of it DSA shows the student. The most a labeller can
give the same student on the same images is a label for every view: here the teacher labels each augmented
minibatch as the student sees it (``softmax(teacher(view) / T)``; the relabelling evaluation of SRe2L-style work,
which DD-Ranking was made to expose). Every other setting is the field table's teacher row: the run's base images,
its cached LeNet teacher, ConvNet-3 under the protocol, the same model seeds and augmentation streams, so a model
here compares model for model with that row (``--fixed`` trains the row's fixed labels instead, a control;
``--averaged V`` one label per image again, the mean of the teacher's labels over V views of it).

    LABELDISTILL_CACHE=runs/s26/cache python studies/per_view_teacher.py records/runs/mnist-field-lookahead-k1-100-s0 \\
        --temperature 8 --models 2 --out runs/s28/per_view_t8.json

Measured result and what it says: docs/results.md ("Session 28: how far labels on these images can go").
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from labeldistill.engine import make_learner
from labeldistill.engine.augment import DSAugmenter
from labeldistill.protocols import evaluate_protocol, get_protocol
from labeldistill.runs.provenance import versions
from labeldistill.seeding import derive_seed
from labeldistill.teacher import RunTeacher, run_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a teacher-started run directory (its base images, target, split and teacher)")
    ap.add_argument("--temperature", type=float, default=None, help="the teacher's softmax temperature (default: the run's)")
    ap.add_argument("--protocol", default="dc-dsa")
    ap.add_argument("--arch", default="convnet3")
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--fixed", action="store_true", help="control: the teacher's labels of the clean images, one per image")
    ap.add_argument("--averaged", type=int, default=0, metavar="V",
                    help="one label per image, the mean of the teacher's labels over V seeded views of it (the protocol's DSA)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()

    with run_teacher(a.run, a.device) as rt:  # the run's set, split and cached teacher, under the run's float settings
        run(a, rt)


def run(a: argparse.Namespace, rt: RunTeacher) -> None:
    ds, data, floats, teacher = rt.run, rt.data, rt.float_settings, rt.record
    seed = rt.seed  # the run's: the test models' seeds are the field table's
    temperature = float(a.temperature if a.temperature is not None else rt.temperature)
    fixed = rt.labels(ds.images, temperature)
    proto = get_protocol(a.protocol)
    if proto.uses_zca(int(ds.images.shape[1])):
        raise SystemExit("a whitening protocol would need the teacher to label whitened views; this script labels MNIST-like data")

    @torch.no_grad()
    def every_view(xb: torch.Tensor) -> torch.Tensor:  # K x b x C x H x W views -> K x b x classes
        return rt.labels(xb.flatten(0, 1), temperature).reshape(*xb.shape[:2], -1)

    if a.averaged:  # views from their own seeded stream (not the students'): labels made before any student trains
        own = derive_seed(seed, "per-view-teacher-averaged")
        views = DSAugmenter(proto.augmentation_for(int(ds.images.shape[1])), [own], a.device)
        fixed = torch.stack([every_view(views(ds.images[None]))[0] for _ in range(a.averaged)]).mean(0)
    learner = make_learner(a.arch, int(ds.images.shape[1]), int(ds.images.shape[-1]), ds.num_classes, head="linear")
    t0 = time.perf_counter()
    ev = evaluate_protocol(proto, learner, ds.images, fixed, data.test.x, data.test.y, steps=int(ds.steps), seed=seed,
                           models=a.models, view_labels=None if a.fixed or a.averaged else every_view, progress=True)
    kind = (f"teacher labels averaged over {a.averaged} views, one per image" if a.averaged else
            "fixed teacher labels (control)" if a.fixed else "per-view teacher")
    out = {"experiment": kind, "run": str(a.run), "views": a.averaged or None,
           "temperature": temperature, "teacher": {k: teacher[k] for k in ("test_accuracy", "val_accuracy", "best_epoch", "cache")},
           **ev.to_dict(), "arch": a.arch, "wall_seconds": round(time.perf_counter() - t0, 1), "versions": versions(),
           "float_settings": floats, "threads": torch.get_num_threads()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("experiment", "temperature", "accuracy_mean", "accuracies", "wall_seconds")}))


if __name__ == "__main__":
    main()
