"""``labeldistill baseline``: the base images with their true (or smoothed) labels, or a teacher's soft labels,
under the paper's evaluation protocol or another (``--protocol``)."""
from __future__ import annotations

import argparse

from ..baselines import BaselineSettings, baseline
from ..errors import UserError
from ..protocols import list_protocols
from ..selectors import list_selectors
from .common import add_common, add_teacher_recipe, emit, fmt_acc, parse_split, read_toml, show_progress


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="true-label, label-smoothing or teacher-label baseline on the same base images")
    p.add_argument("--target", default=None, help="target dataset (default mnist)")
    p.add_argument("--base", type=int, default=None, help="number of base examples N (default 100)")
    p.add_argument("--smoothing", type=float, default=None, help="label smoothing epsilon (paper's LS baseline: 0.1)")
    p.add_argument("--head", default=None, help="linear (standard) or ridge (RR baseline)")
    p.add_argument("--models", type=int, default=None, help="fresh test models (default: the protocol's, paper 20, the others 5)")
    p.add_argument("--batch-size", type=int, default=None, help="N_i (paper rule by N)")
    p.add_argument("--split", default=None, help="TRAIN,VAL,TEST fractions for data without official splits")
    p.add_argument("--allow-tf32", action="store_true", default=None,
                   help="let a GPU use TF32 for convolutions and matmuls (default off: float32 as on a CPU; recorded)")
    p.add_argument("--base-select", default=None, metavar="NAME",
                   help=f"how the base images are chosen: {', '.join(list_selectors())} (default random, as in the paper's "
                        "main tables; paper-table7: the paper's optimised base sets, Table 7)")
    p.add_argument("--protocol", default=None, metavar="NAME",
                   help=f"how the test models train: {', '.join(list_protocols())} (default paper: T chosen on validation; "
                        "dc / dc-dsa / qin2024: ConvNet-3, SGD, fixed epochs, DSA / ZCA, 5 models)")
    p.add_argument("--labels", default=None, choices=["true", "smooth", "teacher"],
                   help="true (one-hot), smooth (label smoothing, --smoothing or 0.1) or teacher (softmax of a teacher trained on "
                        "the training split, early-stopped on validation; cached per target, architecture and seed)")
    p.add_argument("--temperature", default=None, help="softmax temperature of teacher labels: a number (1) or auto (chosen on the validation split from 1, 2, 4, 8)")
    p.add_argument("--teacher-arch", default=None, help="the teacher's architecture (default: the dataset's, a cheap one: lenet / alexnet; convnet3: the field's expert, slow on a CPU)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="most epochs the teacher trains (30)")
    p.add_argument("--teacher-patience", type=int, default=None, help="epochs without a better validation accuracy before it stops (3)")
    add_teacher_recipe(p)
    p.add_argument("--teacher-epoch", default=None, help="which of the teacher's epochs labels (best: its best validation accuracy, the default; auto: the epoch whose labels train the best student on the validation split, Qin et al.'s early-stopped expert; or an epoch number)")
    p.add_argument("--out", default=None, help="run directory for result.json (optional)")
    p.add_argument("--save-set", default=None, metavar="FILE",
                   help="also write the base images with these labels as a distilled-set file (.safetensors), which load, "
                        "evaluate and export read: e.g. a teacher's labels on random real images, for DD-Ranking")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .common import merge

    flags = dict(vars(args))
    flags["split"] = parse_split(args.split)
    toml = read_toml(args.config)
    s: BaselineSettings = merge(BaselineSettings, toml, flags)
    if not 0.0 <= s.smoothing < 1.0:
        raise UserError(f"--smoothing must be in [0, 1), got {s.smoothing}.")
    result = baseline(s, data_root=args.data_root, out=args.out, progress=show_progress(args), save_set=args.save_set)
    name = "Baseline" + (" RR" if s.head == "ridge" else "") + (" LS" if s.smoothing or s.labels == "smooth" else "")
    name += " (teacher labels)" if s.labels == "teacher" else ""
    chosen = "" if s.base_select == "random" else f", base set chosen by {s.base_select}"
    how = f"T={result['steps']} chosen on validation" if result.get("protocol", "paper") == "paper" else \
        f"protocol {result['protocol']}, {result['steps']} steps"
    teacher = result.get("teacher")
    extra = "" if teacher is None else (f"; teacher {teacher['arch']}: validation {teacher['val_accuracy']:.2f} %, "
                                        f"test {teacher['test_accuracy']:.2f} %{' (cached)' if teacher['cache']['reused'] else ''}, "
                                        f"labels of epoch {result.get('epoch', teacher['best_epoch'])} at temperature "
                                        f"{result['temperature']:g}")
    saved = f"\nThe labelled set: {args.save_set}" if args.save_set else ""
    emit(result, args.json, f"{name} on {result['target']} with {s.base} base examples: test accuracy {fmt_acc(result)} "
                            f"({result['models']} models, {how}{chosen}{extra}){saved}")
    return 0
