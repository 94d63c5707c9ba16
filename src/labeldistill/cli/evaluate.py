"""``labeldistill evaluate``: fresh models on a distilled set (any arch, head, steps); a DD / SLDD
set by its learned schedule or one of the paper's sensitivity variants."""
from __future__ import annotations

import argparse

from ..engine import HEADS
from ..engine.recipe import OPTIMIZERS
from ..lrsearch import SGD_LRS
from ..evaluation import evaluate
from ..protocols import list_protocols
from .common import add_common, emit, fmt_acc, read_toml, show_progress


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="train fresh models on a distilled set and test them")
    p.add_argument("path", metavar="RUN_DIR_OR_FILE")
    p.add_argument("--head", default=None, help=f"{' or '.join(HEADS)} (default: as distilled)")
    p.add_argument("--models", type=int, default=None, help="number of fresh models (20; DD / SLDD sets: 200)")
    p.add_argument("--steps", default=None, help="T (e.g. 300), a change of the distilled T (+50, -20) or a fraction of it (x0.5, x10/30)")
    p.add_argument("--target", default=None, help="test data (needed for exported files)")
    p.add_argument("--variant", default=None, metavar="NAME",
                   help="DD / SLDD sets: how to train on them: learned (default: the learned schedule), first-steps:N, extended:K "
                        "(K more steps at the mean lr; 5: the paper's 35), average-lr, shuffle-within, shuffle-across, "
                        "shuffle-steps-within, shuffle-steps-across (whole steps permuted, each keeps its images), "
                        "or like-ld (Adam, minibatches of 10, T chosen on validation)")
    p.add_argument("--protocol", default=None, metavar="NAME",
                   help=f"how the fresh models train: {', '.join(list_protocols())} (default paper: Adam, T random minibatches, "
                        "20 models; dc / dc-dsa: the DatasetCondensation / DSA / MTT protocol, ConvNet-3, 5 models; qin2024: Qin et al. 2024's, "
                        "dc-dsa for 3,000 epochs)")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help="label sets: train the fresh models with this optimiser (sgd: plain SGD at one constant lr; default: "
                        "the set's, Adam)")
    p.add_argument("--lr", type=float, default=None,
                   help="label sets: the optimiser's lr (default: Adam's 0.001; --optimizer sgd: chosen on the validation split "
                        f"from {', '.join(f'{v:g}' for v in SGD_LRS)})")
    p.add_argument("--order", type=int, default=None, metavar="K",
                   help="label sets: draw each model's minibatches from stream K of its seed (same initialisations, another order)")
    p.add_argument("--label-temperature", default=None, metavar="T",
                   help="label sets: train on the labels at softmax temperature T (softmax(log(labels) / T); 1: as they are), "
                        "or auto: chosen from 1, 2, 4, 8 on the validation split as these models train (as distill --label-temperature auto)")
    p.add_argument("--snapshot", default=None, metavar="K",
                   help="a run directory's validated snapshot K instead of its selected set, or best-learned (the loop's "
                        "choice among its learned snapshots, when a start candidate won); saved as ...-snapK.json. A DD / SLDD "
                        "run: checkpoint, the set at its last checkpoint, while it runs (saved as ...-iterN.json)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = read_toml(args.config)
    pick = lambda name, default=None: getattr(args, name) if getattr(args, name) is not None else cfg.get(name, default)  # noqa: E731
    models = pick("models")
    r = evaluate(args.path, arch=pick("arch"), head=pick("head"), models=None if models is None else int(models), steps=pick("steps"),
                 target=pick("target"), data_root=pick("data_root"), device=pick("device") or "auto", seed=pick("seed"),
                 variant=pick("variant"), protocol=pick("protocol"), progress=show_progress(args),
                 optimizer=pick("optimizer"), lr=pick("lr"), order=pick("order"), label_temperature=pick("label_temperature"),
                 snapshot=pick("snapshot"))
    at = f" (labels at temperature {r['label_temperature']:g})" if r.get("label_temperature") is not None else ""
    if r.get("protocol") not in (None, "paper"):
        text = f"{r['arch']}, protocol {r['protocol']}: {r['models']} models x {r['steps']} steps: test accuracy {fmt_acc(r)}"
    elif "variant" in r:
        text = f"{r['arch']}, variant {r['variant']}: {r['models']} networks x {r['steps']} steps: test accuracy {fmt_acc(r)}"
    else:
        how = f", {r['optimizer']} lr {r['lr']:g}" + (f", order {r['order']}" if r.get("order") is not None else "")
        text = f"{r['arch']} / {r['head']} head{how}, {r['models']} models x {r['steps']} steps: test accuracy {fmt_acc(r)}"
    if r.get("checkpoint_iteration") is not None:
        at += f" (the set at outer iteration {r['checkpoint_iteration']}, its last checkpoint)"
    if r.get("snapshot") is not None:
        at += f" (snapshot {r['snapshot']['number']}: epoch {r['snapshot']['epoch']}, validation {r['snapshot']['val_accuracy']:.2f})"
    emit(r, args.json, text + at)
    return 0
