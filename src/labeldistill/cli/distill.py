"""``labeldistill distill``: learn labels, select them on validation, test 20 fresh models; or,
with ``--method dd`` / ``sldd``, run the unrolled trainer (images and per-step lrs) and test its
set on 200 fresh networks by the learned schedule."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..distill import DistillConfig, list_learn, list_methods, run_distillation
from ..distill.extend import extend_run
from ..distill.label_init import list_label_inits
from ..distill.learned import IMAGE_INITS
from ..protocols import canonical_protocol
from ..runs import RunLock, read_json
from ..errors import UserError
from ..selectors import list_selectors
from ..unrolled import METHODS as UNROLLED_METHODS
from ..unrolled import UnrolledRunConfig, is_unrolled_record, run_unrolled
from .common import add_common, add_teacher_recipe, emit, fmt_acc, merge, parse_split, read_toml, show_progress


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="learn soft labels for base images (the paper's LD / LD RR, and methods beyond it), or images too; or run original DD / SLDD")
    p.add_argument("--target", default=None, help="target dataset: catalog name, npz:FILE, folder:DIR (default mnist)")
    p.add_argument("--source", default=None, help="take the base images from this dataset (cross-dataset)")
    p.add_argument("--base", type=int, default=None,
                   help="number of base examples N (default 100); dd / sldd: distilled images, steps x classes x k (100 = 10 x 10 x 1)")
    p.add_argument("--method", default=None, help=f"meta-gradient: {', '.join(list_methods())} (default second-order); or {', '.join(UNROLLED_METHODS)}: "
                        "the original dataset distillation (learned images and per-step lrs; SLDD also learns labels)")
    p.add_argument("--learn", default=None, choices=list_learn(),
                   help="what is learned: labels (LD, default), images (the paper's 'our DD': fixed one-hot labels) or images+labels")
    p.add_argument("--image-init", default=None, choices=list(IMAGE_INITS),
                   help="start of learned images: uniform noise in [0, 1] or the real base images (default uniform for images, "
                        "real for images+labels)")
    p.add_argument("--image-lr", type=float, default=None, help="Adam lr of learned images, pixel space (default 1e-3 from uniform noise, the paper's; 1e-4 from real images)")
    p.add_argument("--label-init", default=None, choices=list_label_inits(),
                   help="where learned labels start: uniform 1/C (default, the authors'), onehot (the base images' classes) or "
                        "teacher (an early-stopped expert's soft labels, as baseline --labels teacher) or set (the labels of "
                        "--label-set)")
    p.add_argument("--label-set", default=None, metavar="FILE",
                   help="--label-init set: a distilled set (file or run directory) on the same base images whose labels start "
                        "the run, e.g. the mean of two runs' sets (labeldistill export RUN_A RUN_B); its hash is recorded")
    p.add_argument("--temperature", default=None, help="--label-init teacher: softmax temperature, a number (1) or auto (chosen on validation)")
    p.add_argument("--teacher-arch", default=None, help="--label-init teacher: the teacher's architecture (default: the loop's, by default "
                   "the dataset's cheap one: lenet / alexnet, which --method implicit keeps; convnet3: the field's expert, slow on a CPU)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="--label-init teacher: most epochs the teacher trains (30)")
    p.add_argument("--teacher-patience", type=int, default=None, help="--label-init teacher: epochs without a better validation accuracy before it stops (3)")
    add_teacher_recipe(p, prefix="--label-init teacher: ")
    p.add_argument("--teacher-epoch", default=None, help="--label-init teacher: which of the teacher's epochs labels (best: its best validation accuracy, the default; auto: the epoch whose labels train the best student on the validation split, Qin et al.'s early-stopped expert; or an epoch number)")
    p.add_argument("--label-temperature", default=None,
                   help="softmax temperature of the final labels before the test: a number (1: as learned, the default) or auto "
                        "(chosen on validation as the test trains, from 1, 2, 4, 8: the teacher labels' rule)")
    p.add_argument("--start-candidate", default=None, choices=["auto", "on", "off"],
                   help="keep the start labels when they validate better than every learned snapshot (auto: on for "
                        "--label-init teacher / onehot with --learn labels)")
    p.add_argument("--epochs", type=int, default=None, help="epochs over the target training split (paper: 400 / 800; dd 400, sldd 350)")
    p.add_argument("--target-size", type=int, default=None, help="use only M target training examples")
    p.add_argument("--split", default=None, help="TRAIN,VAL,TEST fractions for data without official splits (default 0.8,0.1,0.1)")
    p.add_argument("--inner-batch", type=int, default=None, help="N_i, base examples per step (paper rule by N)")
    p.add_argument("--target-batch", type=int, default=None, help="N_o, target examples per step (1024; --method implicit: 2048)")
    p.add_argument("--label-lr", type=float, default=None, help="Adam lr of the labels (1e-3; --method implicit: 0.03)")
    p.add_argument("--label-param", default=None, choices=["probabilities", "logits"],
                   help="what Adam steps for the labels: probabilities (default, the paper's: clamped, renormalised) or logits "
                        "(labels = softmax of learned logits, so steps scale a start's small entries; beyond the paper; "
                        "--method implicit's default)")
    p.add_argument("--target-scale", default=None, choices=["shared", "fitted"],
                   help="ridge, implicit: the target loss's logit scale: shared (default, the paper's: the head's calibration) or "
                        "fitted (each step's loss-minimising scale, so labels gain nothing from sharpness alone; beyond the paper; "
                        "--method implicit's default)")
    p.add_argument("--target-labels", default=None, choices=["true", "teacher"],
                   help="what the target loss compares with: the true classes (the paper's, default) or a teacher's "
                        "probabilities on the target images (knowledge distillation; the --label-init teacher's teacher)")
    p.add_argument("--target-temperature", type=float, default=None, help="--target-labels teacher: softmax temperature (1)")
    p.add_argument("--model-lr", type=float, default=None, help="Adam lr of the model (1e-3)")
    p.add_argument("--inner-lr", type=float, default=None, help="alpha of the virtual inner step (0.01)")
    p.add_argument("--horizon", type=int, default=None, metavar="K",
                   help="--method lookahead / lookahead-linear: virtual steps the meta-objective looks ahead (1; beyond the paper)")
    g = p.add_argument_group("--method implicit (beyond the paper: labels learned through students trained the test's way)")
    g.add_argument("--students", type=int, default=None, metavar="K", help="students the label gradient is averaged over (1)")
    g.add_argument("--views", type=int, default=None, metavar="V", help="augmented views of each base image in the gradient (4)")
    g.add_argument("--cg-iters", type=int, default=None, help="conjugate-gradient steps of the implicit solve (10)")
    g.add_argument("--damping", type=float, default=None, help="ridge added to the students' weight decay in the solve (1e-3)")
    g.add_argument("--follow-epochs", type=int, default=None, help="students' epochs at the protocol's final lr after each label step (20)")
    g.add_argument("--student-epochs", type=int, default=None, help="the students' first training, epochs (the test protocol's)")
    g.add_argument("--refresh-every", type=int, default=None, metavar="R",
                   help="every R label steps, replace one student (in turn) by a fresh one trained the whole way on the labels "
                        "as they are (5; 0: never; each costs a first training, none after the last step)")
    p.add_argument("--augment", default=None, metavar="NAME",
                   help="augment every step's inner minibatch like this protocol's test: dsa (dc-dsa's DSA, per image; beyond "
                        "the paper) or none (default, the paper)")
    p.add_argument("--meta-gradient", default=None, choices=["auto", "jvp", "double-backward"],
                   help="second-order gradient form, both exact (auto: jvp on a GPU, double-backward on a CPU)")
    p.add_argument("--reset-window", type=int, default=None, help="moving-average window = patience (50 / 100 / 200; 50 when images are learned)")
    p.add_argument("--val-every", type=int, default=None, help="epochs between label-selection validations (5)")
    p.add_argument("--validation-models", type=int, default=None, metavar="M",
                   help="fresh models per label-selection validation; selection on their mean accuracy (1, the paper's)")
    p.add_argument("--select-protocol", default=None, metavar="NAME",
                   help="how label selection scores each snapshot (and a start candidate): paper (default: one model trained T "
                        "steps) or dc / dc-dsa (--validation-models students of that protocol each; beyond the paper, slow on a CPU)")
    p.add_argument("--test-models", type=int, default=None, help="fresh test models of the paper protocol (20; dd / sldd: 200); a --test-protocol dc / dc-dsa trains its own 5")
    p.add_argument("--test-protocol", default=None, metavar="NAME", help="how the final test trains fresh models: paper (default), dc, dc-dsa, qin2024 (labeldistill.protocols)")
    p.add_argument("--base-select", default=None, metavar="NAME",
                   help="how the base set is chosen: " + ", ".join(list_selectors()) + " (default random, the paper's draw)")
    p.add_argument("--allow-tf32", action="store_true", default=None,
                   help="let a GPU use TF32 for convolutions and matmuls (default off: float32 as on a CPU; recorded)")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic GPU kernels: a GPU run repeats bit for bit, a stacked run equals the run alone (recorded)")
    p.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false", default=None,
                   help="on a GPU, launch each step's kernels from Python instead of replaying one CUDA graph (the same "
                        "arithmetic, slower; may change on --resume)")
    p.add_argument("--out", default=None, help="run directory (required unless --resume)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--extend", default=None, metavar="DIR",
                   help="continue the run in DIR (stopped or finished) to --epochs N in a new run directory --out: the same "
                        "as a run started with N epochs, paying only the new ones; its other settings are DIR's")
    p.add_argument("--download", action="store_true", help="fetch missing datasets with torchvision")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the same as --progress off)")
    add_common(p, progress="on")  # a distillation's bar goes into its log too: a background run says where it is
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> DistillConfig:
    flags = {k: v for k, v in vars(args).items()}
    flags["split"] = parse_split(args.split)
    toml = read_toml(args.config)
    cfg = merge(DistillConfig, toml, flags)
    if (flags.get("test_models") is not None or "test_models" in toml) and canonical_protocol(cfg.test_protocol) != "paper":
        # Said, not ignored: a fixed-epoch protocol trains its own count (its record names it); evaluate takes another.
        raise UserError(f"--test-models counts the paper protocol's test models; --test-protocol {cfg.test_protocol} trains "
                        "its own (5). For another count, test the finished run: labeldistill evaluate RUN --protocol "
                        f"{cfg.test_protocol} --models M.")
    return cfg


def run(args: argparse.Namespace) -> int:
    if args.extend:
        if args.resume or not args.out:
            raise UserError("--extend DIR makes a new run: give it --out NEW (and no --resume).")
        args.resume = str(extend_run(args.extend, args.out, epochs=args.epochs, val_every=args.val_every))
    if args.resume:
        out = Path(args.resume)
        if not (out / "config.json").exists():
            RunLock.check_free(out)  # a run that has just started holds its lock before it writes config.json
            raise UserError(f"{out} is not a run directory (no config.json); nothing to resume.")
        record = read_json(out / "config.json")
        if is_unrolled_record(record):
            return run_dd(args, record)
        cfg = DistillConfig.from_dict(record["config"])
        if args.device is not None:  # a run may move between machines (e.g. started on a GPU, finished on a CPU)
            cfg.device = args.device
        if args.cuda_graph is not None:
            cfg.cuda_graph = args.cuda_graph
        data_root = args.data_root or record.get("data_root")
        resume = True
    else:
        if (args.method or read_toml(args.config).get("method")) in UNROLLED_METHODS:
            return run_dd(args)
        if not args.out:
            raise UserError("distill needs --out DIR (the run directory), or --resume DIR.")
        out, cfg, data_root, resume = Path(args.out), config_from_args(args), args.data_root, False
    ds = run_distillation(cfg, out=out, resume=resume, data_root=data_root, download=args.download, progress=show_progress(args))
    r = ds.evaluation or {}
    learned = "" if r.get("learned", "labels") == "labels" else f", learning {r['learned']}"
    t = f"T={ds.steps}" if ds.steps is not None else f"{r.get('test_protocol')}'s fixed epochs, no T"
    text = (f"{r['method']}{learned} on {r['target']} with {r['base']} base examples: test accuracy {fmt_acc(r)} "
            f"({r['models']} models, {t}, {r['seconds']:.0f} s). Run directory: {out}")
    if r.get("already_finished"):
        text += "\nThe run had finished: nothing was run, and its record is as it was."
    if "label_temperature" in r:
        text += f"\nLabels tested at temperature {r['label_temperature']['temperature']:g}."
    if (r.get("start_candidate") or {}).get("selected") == "start":
        text += "\nThe start labels were kept: they validated better than every learned snapshot (result.json: start_candidate)."
    emit({**r, "run_dir": str(out)}, args.json, text)
    return 0


# Flags of label distillation that mean nothing to DD / SLDD (dest -> flag).
NOT_FOR_UNROLLED = {
    "source": "--source", "learn": "--learn", "image_init": "--image-init", "image_lr": "--image-lr", "target_size": "--target-size",
    "inner_batch": "--inner-batch", "label_lr": "--label-lr", "label_param": "--label-param", "target_scale": "--target-scale", "model_lr": "--model-lr", "inner_lr": "--inner-lr",
    "horizon": "--horizon",
    "students": "--students", "views": "--views", "cg_iters": "--cg-iters", "damping": "--damping",
    "follow_epochs": "--follow-epochs", "student_epochs": "--student-epochs", "refresh_every": "--refresh-every",
    "meta_gradient": "--meta-gradient", "reset_window": "--reset-window", "val_every": "--val-every",
    "validation_models": "--validation-models", "base_select": "--base-select", "start_candidate": "--start-candidate",
    "label_temperature": "--label-temperature", "augment": "--augment",
    "select_protocol": "--select-protocol", "target_labels": "--target-labels", "target_temperature": "--target-temperature",
}


def run_dd(args: argparse.Namespace, record: dict | None = None) -> int:
    """``--method dd|sldd``: the unrolled trainer in a run directory (or resume one)."""
    if record is not None:
        out, resume = Path(args.resume), True
        cfg = UnrolledRunConfig.from_dict(record["config"])
        if args.device is not None:  # a run may move between machines
            cfg.device = args.device
        if args.cuda_graph is not None:
            cfg.cuda_graph = args.cuda_graph
        data_root = args.data_root or record.get("data_root")
    else:
        toml = read_toml(args.config)
        method = args.method or toml.get("method")
        given = [flag for dest, flag in NOT_FOR_UNROLLED.items() if getattr(args, dest, None) is not None or dest in toml]
        if given:
            raise UserError(f"{given[0]} does not apply to --method {method} (it learns images and per-step learning rates"
                            f"{', and labels' if method == 'sldd' else ''}).")
        if not args.out:
            raise UserError("distill needs --out DIR (the run directory), or --resume DIR.")
        flags = {"target": args.target, "base": args.base, "seed": args.seed, "epochs": args.epochs, "device": args.device,
                 "arch": args.arch, "test_models": args.test_models, "allow_tf32": args.allow_tf32, "deterministic": args.deterministic,
                 "split": parse_split(args.split), "batch_size": args.target_batch, "cuda_graph": args.cuda_graph}
        settings = {**{k: v for k, v in toml.items() if k != "method"}, **{k: v for k, v in flags.items() if v is not None}}
        if isinstance(settings.get("split"), list):
            settings["split"] = tuple(settings["split"])
        cfg = UnrolledRunConfig.from_settings(method=method, **settings)
        out, data_root, resume = Path(args.out), args.data_root, False
    ds = run_unrolled(cfg, out=out, resume=resume, data_root=data_root, download=args.download, progress=show_progress(args))
    r = ds.evaluation or {}
    text = (f"{r['method']} on {r['target']}: {r['base']} learned images, T={r['T']} learned steps: test accuracy {fmt_acc(r)} "
            f"({r['models']} networks, {r['seconds']:.0f} s). Run directory: {out}")
    if r.get("already_finished"):
        text += "\nThe run had finished: nothing was run, and its record is as it was."
    emit({**r, "run_dir": str(out)}, args.json, text)
    return 0
