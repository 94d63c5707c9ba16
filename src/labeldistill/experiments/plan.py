"""From a cell to the run that computes it: configuration, run directory, data, stand-ins, cost.

A cell maps to exactly one run: ``ld`` / ``ld-rr`` -> a distillation (second-order / ridge),
``dd-ours`` / ``dd-ours-rr`` -> the same loop learning images (``learn="images"``), ``dd`` /
``sldd`` -> the unrolled trainer (:func:`labeldistill.unrolled.run_unrolled`), the baselines ->
:func:`labeldistill.baselines.baseline`. ``@arch`` / ``@head`` / ``@steps`` / ``@variant`` on a
distillation cell add an evaluation of that run. Runs live in ``OUT/runs/<run slug>/`` and
are shared by every cell that needs them (a Table 9 cell and a Table 1 cell use the same run).
``@protocol`` re-tests a label set under another evaluation protocol (ConvNet-3, fixed epochs, DSA:
``labeldistill.protocols``) and runs a baseline under it. A ``mean`` cell's run is the mean of other cells' label sets
(its ``parts``, planned here too), tested under its ``@protocol`` (:mod:`.means`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import paper_defaults
from ..baselines import BaselineSettings
from ..data import dataset_status, resolve_data_root
from ..data.catalog import CATALOG, TEST_IMAGE_STAND_INS
from ..data.splits import DEFAULT_FRACTIONS
from ..distill import DistillConfig
from ..distill.config import method_defaults, stored_settings
from ..lrsearch import SEARCH_MODELS, SGD_LRS
from ..protocols import get_protocol
from ..runs.metrics import last_epoch
from ..unrolled import UnrolledRunConfig
from .cells import METHODS, Cell
from .means import MeanSettings, mean_settings
from .tables._common import NAMES

QUICK_EPOCHS = 40  # --quick: the reduced protocol's epochs (the paper: 400 / 800)
TEST_MODELS = 20  # fresh test models per cell (the paper's 20)
DD_TEST_MODELS = 200  # fresh networks testing a DD / SLDD set (DD's protocol, which the paper's DD numbers follow)
STAND_IN_SPLIT = (0.8, 0.1, 0.1)


def reduced_note() -> str:
    """The label of the reduced protocol, for headers, cell JSONs and messages."""
    return f"REDUCED protocol (--quick): {QUICK_EPOCHS} epochs instead of 400 / 800, everything else as in the paper"


def reduced_row() -> str:
    """The label of the reduced protocol on each table row."""
    return f"REDUCED ({QUICK_EPOCHS} epochs, --quick)"

# Settings that change how a run computes, not what: same result up to floating-point rounding.
IGNORED_KEYS = ("device", "checkpoint_minutes", "val_group", "cuda_graph", "meta_gradient", "checkpoint_every", "test_group")

# ---- the time model (estimates, calibrated on this project's 2-core CPU machine)
# One loop meta-step (target batch 1,024) and one DD / SLDD outer iteration (30 unrolled steps on 10 images and the
# backward through them), measured by benchmarks/bench_unrolled.py on this project's 2-core CPU (AVX512, one thread
# beside one other job; session 29, records/checks/bench-unrolled-cpu-s29.json, bench-unrolled-cifar10-cpu-s29.json):
# LeNet on MNIST, AlexCifarNet on CIFAR-10. Another architecture: LeNet's figure times ARCH_FACTOR. (The figures
# before, 0.2 s a second-order step and a guessed 0.5 s a DD iteration times 70 for AlexNet, put CIFAR-10's DD run at
# 7 days against the 20 hours it takes.)
STEP_SECONDS = {"ridge": {"lenet": 0.0225, "alexnet": 0.91}, "second-order": {"lenet": 0.071, "alexnet": 2.24}}
UNROLLED_ITERATION_SECONDS = {"lenet": 0.175, "alexnet": 4.04}
# DD's test of 200 networks by the schedule: MNIST's LeNets 96 s (session 14's run); CIFAR-10's AlexCifarNets 20 in
# 5.5 minutes beside two other jobs (session 29), about 40 minutes for 200 beside one.
UNROLLED_TEST_SECONDS = {"lenet": 100.0, "alexnet": 2400.0}
# Learned images add the image meta-gradient to the step (a guess from the step's extra backward pass, not measured).
IMAGE_STEP_FACTOR = 1.5
VALIDATION_OVERHEAD = 1.25  # label-selection validations every 5 epochs (measured: ridge ~0.075 s/step all in)
# Forward+backward cost relative to LeNet (measured; ConvNet-3: 1.95 s against 0.044 s for a step on 100 MNIST images,
# one thread, session 12; without it a ConvNet-3 evaluation of a label set was estimated at LeNet's 30 s, not hours).
ARCH_FACTOR = {"lenet": 1.0, "alexnet": 70.0, "resnet14": 24.0, "convnet3": 44.0}
TEST_SECONDS = 30.0  # 20 fresh LeNets for ~300 steps, then the test set (K models in one batched job)
# Larger networks gain nothing from training K at once: their test is K x ~300 single-model steps at
# ARCH_FACTOR x one LeNet step on 100 images (0.03 s, one thread beside another job).
MODEL_STEP_SECONDS = 0.03
TYPICAL_TEST_STEPS = 300
BASELINE_SECONDS = 45.0  # one validation model up to 1,000 steps, then 20 test models (LeNet)
# paper-table7: 150 LeNets x 1,000 steps + 20 validations of 150 models (a rough guess, not measured);
# the feature selectors: one LeNet for 2,000 steps of 256, then the features of the training split.
SELECT_SECONDS = {"paper-table7": 900.0, "other": 120.0}
# Fixed-epoch protocols (dc, dc-dsa): one ConvNet-3 step on 100 images, one thread beside another job (measured:
# about 1 s in sessions 7-18, 0.39 s in session 31: a dc-dsa student's 1,000 steps in 6.5 min, records/runs/
# mnist-implicit-k1-100-s0; sessions 43-45, the field table's five-model tests of 1,000 steps each: 19 to 43 minutes on
# MNIST and CIFAR-10 alike, 0.23 to 0.52 s a step, depending on what shared the cores); a teacher (LeNet, early-stopped,
# about 15 epochs of 9 s) and its 4 temperature students.
PROTOCOL_STEP_SECONDS = 0.3
# --method implicit: one label step a student on 100 MNIST images (ConvNet-3: the implicit gradient, then 20 full-batch
# epochs of following), one thread beside one other job (measured, session 31: 50.7 s); scaled by N / 100.
IMPLICIT_STEP_SECONDS = 50.7
# A teacher's training (Adam, minibatches of 256 over the training split, early-stopped), one thread beside one other job:
# LeNet on MNIST about 15 epochs of 9 s; AlexCifarNet on CIFAR-10 14 epochs (best 11) in 37 minutes (session 34).
TEACHER_SECONDS = {"lenet": 150.0, "alexnet": 2230.0}
# One epoch of a teacher that runs all its epochs (patience >= epochs: the ConvNet-3 expert rows), one thread: LeNet on
# MNIST 9 s, AlexCifarNet on CIFAR-10 160 s, ConvNet-3 about 110 s on MNIST and CIFAR-10 alike (session 45's experts:
# 32 epochs in 3,813 s and 3,250 s beside another job; session 9 measured 570 s on MNIST with the code of then).
TEACHER_EPOCH_SECONDS = {"lenet": 10.0, "alexnet": 160.0, "convnet3": 110.0}
TEMPERATURE_STUDENTS = 4
TEACHER_KEYS = ("teacher_arch", "teacher_epochs", "teacher_patience", "teacher_recipe", "teacher_lr")  # how a row's teacher trains, where it names one
# --teacher-epoch auto: a student for each of 1, 2, 4, 8 and the best epoch (MNIST's LeNet: 12, CIFAR-10's AlexCifarNet:
# 11), the best epoch's already trained for the temperature; then the temperature again at a chosen early epoch.
EPOCH_STUDENTS = 4 + TEMPERATURE_STUDENTS - 1


def teacher_students(cfg) -> int:
    """Validation students a teacher's labels cost: the temperature choice's, and the epoch choice's."""
    return TEMPERATURE_STUDENTS + (EPOCH_STUDENTS if getattr(cfg, "teacher_epoch", "best") == "auto" else 0)


_OFFICIAL_TRAIN = {"mnist": 60_000, "kmnist": 60_000, "kuzushiji-49": 232_365, "cifar10": 50_000, "cifar100": 50_000,
                   "digits": 1_797, "emnist-letters": 124_800, "cub": 5_994, "cifar100-test-stand-in": 9_999}

# Stand-ins for a missing base-image source, in order of preference. A stand-in is never the
# target's own dataset nor one that shares images with it (KMNIST's characters are Kuzushiji-49's).
_SOURCE_STAND_INS = {"emnist-letters": ("mnist", "kmnist", "kmnist-test-file")}
_RELATED = {"kmnist": {"kmnist", "kuzushiji-49"}, "kuzushiji-49": {"kmnist", "kuzushiji-49"},
            "cifar100": {"cifar100", "cifar100-test-stand-in"}}
_STAND_IN_DESCRIPTION = {  # (what, where from)
    "mnist": ("MNIST digits", "random images of MNIST's official train part"),
    "kmnist": ("KMNIST characters", "random images of KMNIST's official train part"),
    "kmnist-test-file": ("KMNIST characters", "random images of the 80% training part of KMNIST's official test images"),
}


class DataView:
    """What is under the data root (one ``dataset_status`` call), and the stand-ins available."""

    def __init__(self, data_root: str | Path | None = None) -> None:
        self.root = resolve_data_root(data_root)
        self.rows = {r["name"]: r for r in dataset_status(data_root)}

    def present(self, name: str) -> bool:
        if name.startswith("npz:"):
            return Path(name[4:]).is_file()
        row = self.rows.get(name)
        return bool(row and row["present"])

    def how_to_get(self, name: str) -> str:
        if name.startswith("npz:"):
            return f"put the file {name[4:]} in place"
        row = self.rows.get(name) or {}
        return row.get("problem") or row.get("how_to_get") or "see 'labeldistill datasets'"

    def kmnist_stand_in(self) -> Path | None:
        path = self.root / "kmnist_test.npz"
        return path if path.is_file() else None

    def source_stand_in(self, source: str, target: str) -> tuple[str, tuple[str, str]] | None:
        """(dataset argument, (what, where from)) of the first available stand-in for a missing
        ``source`` that is a different dataset from ``target`` (and shares no images with it)."""
        related = _RELATED.get(target, {target})
        for name in _SOURCE_STAND_INS.get(source, ()):
            family = "kmnist" if name == "kmnist-test-file" else name
            if family in related:
                continue
            if name == "kmnist-test-file":
                if not self.present("kmnist") and self.kmnist_stand_in() is not None:
                    return f"npz:{self.kmnist_stand_in()}", _STAND_IN_DESCRIPTION[name]
            elif self.present(name):
                return name, _STAND_IN_DESCRIPTION[name]
        return None

    def train_size(self, name: str) -> int:
        """Training-split size (after the validation part is set aside), for time estimates."""
        if name.startswith("npz:"):
            try:
                import numpy as np

                with np.load(name[4:]) as z:
                    return int(len(z["y"]) * STAND_IN_SPLIT[0])
            except Exception:  # noqa: BLE001  (only an estimate)
                return 8_000
        row = self.rows.get(name) or {}
        n = ((row.get("sizes") or {}).get("train")) or _OFFICIAL_TRAIN.get(name, 50_000)
        val = CATALOG.get(name).val_size if name in CATALOG else None
        if val is None:
            return int(n * STAND_IN_SPLIT[0])
        val = val if val >= 1 else n * val
        return max(1, int(n - val) if val < n else int(n * 0.9))


@dataclass
class Options:
    out: Path = Path("reproduce")
    quick: bool = False
    stand_in: bool = False
    data_root: str | None = None
    device: str | None = None
    progress: bool = False
    reuse_any_version: bool = False  # reuse finished runs / cells of other numerics versions (marked)
    base_select: str | None = None  # base selector for cells that do not name one (None: random)
    seeds: tuple[int, ...] | None = None  # --seeds: every cell run with each seed, shown as the mean over seeds
    batched: bool = False  # --batched: a stack's steps as one batched step (distill/batched.py)

    @property
    def protocol(self) -> str:
        return "quick" if self.quick else "full"


@dataclass
class Plan:
    cell: Cell
    kind: str  # "distill", "unrolled" (DD / SLDD), "baseline" or "mean" (of other cells' label sets)
    config: DistillConfig | UnrolledRunConfig | BaselineSettings | MeanSettings
    run_cell: Cell  # the cell that names the run (no evaluation keys, no defaults)
    run_slug: str
    cell_slug: str
    evaluation: dict | None  # {"arch", "head", "steps"[, "optimizer", "order", "protocol"]} (label sets) or {"arch", "variant"} (DD / SLDD)
    channels: int
    reduced: bool
    stand_in: tuple[str, ...] = ()
    missing: tuple[dict, ...] = ()  # {"dataset", "how_to_get"}
    needs: tuple[str, ...] = field(default=())
    select: str = "random"  # the base selector of the run
    num_classes: int = 10  # the target's classes (a DD / SLDD configuration depends on them)
    parts: tuple[Plan, ...] = ()  # a mean's: the plans of the cells whose label sets it averages

    def run_dir(self, out: Path) -> Path:
        return Path(out) / "runs" / self.run_slug

    def cell_file(self, out: Path) -> Path:
        return Path(out) / "cells" / f"{self.cell_slug}.json"

    def expected_config(self) -> dict:
        """The resolved configuration a finished run must have to be reused for this cell."""
        if self.kind == "distill":
            cfg = self.config.resolve(self.config.target, self.channels)  # type: ignore[union-attr]
            return normalise_distill(cfg.to_dict())
        if self.kind == "unrolled":
            resolved, _ = self.config.resolve(self.config.target, self.num_classes, self.channels)  # type: ignore[union-attr]
            return normalise_unrolled(resolved.to_dict())
        if self.kind == "mean":
            return normalise_mean(dataclasses.asdict(self.config))
        s = dataclasses.asdict(self.config)
        proto = get_protocol(s.get("protocol"))
        s["arch"] = s["arch"] or (paper_defaults.default_arch(self.config.target, self.channels) if proto.is_paper else proto.arch)
        return normalise_baseline(s)


def _canonical_dataset(name: str | None) -> str | None:
    """Catalog aliases to one name; file and folder datasets to their real absolute path
    (``npz:../d/k.npz`` and ``npz:/abs/d/k.npz`` name the same data)."""
    if name is None:
        return None
    for prefix in ("npz:", "folder:"):
        if name.startswith(prefix):
            return prefix + os.path.realpath(os.path.expanduser(name[len(prefix):]))
    return CATALOG.canonical(name.lower()) if name.lower() in CATALOG else name


def _jsonish(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _normalise(d: dict, keys: tuple[str, ...]) -> dict:
    d = {k: v for k, v in _jsonish(d).items() if k not in IGNORED_KEYS}
    for k in keys:
        d[k] = _canonical_dataset(d.get(k))
    if d.get("split") is None and str(d["target"]).startswith("npz:"):  # a single file: the default fractions apply
        d["split"] = list(DEFAULT_FRACTIONS)
    return d


def _with_defaults(d: dict, cls: type) -> dict:
    """Settings added after a run was made take their default (the value that run had)."""
    return {**{f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}, **d}


def normalise_distill(d: dict) -> dict:
    d = _with_defaults(stored_settings(d), DistillConfig)  # what a record from before a setting existed had
    for k, v in method_defaults(d["method"], d["target_labels"]).items():  # one recorded before it existed: the method's default
        if d[k] is None:
            d[k] = v
    if d.get("image_lr") is None:  # a record from before the image lr existed: the value resolve() gives that run
        from ..distill.learned import LEARN, default_image_lr

        learn = LEARN.get(d.get("learn") or "labels")
        d["image_lr"] = default_image_lr(d.get("image_init") if learn.images else None)
    return _normalise(d, ("target", "source"))


def normalise_unrolled(d: dict) -> dict:
    """A DD / SLDD run's resolved configuration (:class:`UnrolledRunConfig`), comparable across writers."""
    return _normalise(_with_defaults(d, UnrolledRunConfig), ("target",))


def normalise_baseline(d: dict) -> dict:
    return _normalise(_with_defaults(d, BaselineSettings), ("target",))


def normalise_mean(d: dict) -> dict:
    """A mean's settings (:class:`~.means.MeanSettings`), comparable across writers."""
    return _normalise(_with_defaults(d, MeanSettings), ("target",))  # (its JSON round trip makes the parts a list)


def normalise_config(kind: str, d: dict) -> dict:
    """A stored configuration of a run of this kind ("distill", "unrolled", "baseline", "mean") in the form the code
    compares: settings added since it was written take the value its run had."""
    return {"distill": normalise_distill, "unrolled": normalise_unrolled, "mean": normalise_mean}.get(kind, normalise_baseline)(d)


def config_diff(expected: dict, stored: dict) -> list[str]:
    keys = sorted(set(expected) | set(stored))
    return [f"{k}: {stored.get(k)!r} (wanted {expected.get(k)!r})" for k in keys if expected.get(k) != stored.get(k)]


def plan_cell(cell: Cell, opts: Options, data: DataView) -> Plan:
    info = METHODS[cell.method]
    channels = CATALOG.get(cell.target).channels
    target, source, split = cell.target, cell.source, None
    notes: list[str] = []
    if opts.stand_in and source is not None and not data.present(source):
        found = data.source_stand_in(source, cell.target)
        if found is not None:
            source, (what, where) = found
            notes.append(f"stand-in: {what} as the base set instead of {NAMES.get(cell.source, cell.source)} ({where}, "
                         f"their labels ignored; a different dataset from the {NAMES.get(cell.target, cell.target)} target)")
    if opts.stand_in and target == "kmnist" and not data.present("kmnist") and data.kmnist_stand_in() is not None:
        target, split = f"npz:{data.kmnist_stand_in()}", STAND_IN_SPLIT
        notes.append(f"stand-in: KMNIST target = {target} (the 10,000 official test images; kmnist_train.npz is "
                     "missing) split 80/10/10")
    stand_in_target = TEST_IMAGE_STAND_INS.get(target)
    if opts.stand_in and stand_in_target and not data.present(target) and data.present(stand_in_target):
        target = stand_in_target
        name = NAMES.get(cell.target, cell.target)
        notes.append(f"stand-in: {name} target = {stand_in_target} ({name}'s official test images alone, as its training "
                     "split is missing; split 80/10/10 into train / validation / test, stratified and seeded; "
                     "not the paper's data)")
    needs = tuple(n for n in (target, source) if n is not None)
    missing = tuple({"dataset": n, "how_to_get": data.how_to_get(n)} for n in dict.fromkeys(needs) if not data.present(n))
    device = opts.device or "auto"
    seed = cell.seed
    select = cell.select or opts.base_select or "random"
    named = {"select": select if select != "random" else None}  # a run's name says how its base set was chosen
    drop = {"seed": None} if seed == 0 else {}
    evaluation: dict | None = None
    parts: tuple[Plan, ...] = ()
    config: DistillConfig | UnrolledRunConfig | BaselineSettings | MeanSettings
    if info["kind"] == "mean":  # the mean of its parts' label sets (their runs shared with their own cells), tested under @protocol
        parts = tuple(plan_cell(part, opts, data) for part in cell.parts)
        missing = tuple({m["dataset"]: m for p in parts for m in p.missing}.values())
        notes = list(dict.fromkeys(n for p in parts for n in p.stand_in))
        config = mean_settings(cell, list(parts), split, device)
        run_cell = cell.with_settings(**drop, **named)
    elif info["kind"] == "unrolled":  # DD / SLDD: no base set (images learned from noise), DD's 200 test networks
        select, named = "random", {"select": None}
        config = UnrolledRunConfig(
            target=target, method=info["method"], base=cell.base, seed=seed, epochs=QUICK_EPOCHS if opts.quick else None,
            split=split, device=device, test_models=DD_TEST_MODELS)
        run_cell = cell.with_settings(arch=None, variant=None, **drop)
        if cell.is_evaluation:
            evaluation = {"arch": cell.arch, "variant": cell.variant}
    elif info["kind"] == "distill":
        learn = {"learn": info["learn"], "image_init": info["image_init"]} if "learn" in info else {}
        if learn:  # learned from uniform noise: no base selection applies
            select, named = "random", {"select": None}
        start = {k: info[k] for k in ("label_init", "temperature", "teacher_epoch", *TEACHER_KEYS) if k in info}
        # A run made under its @protocol (students trained the test's way): that protocol tests and selects; its own epochs
        # (one over the target), which --quick leaves as they are (its cost is the protocol's training, not the loop's epochs).
        under = {"test_protocol": cell.protocol, "select_protocol": cell.protocol} if cell.distils_under_protocol else {}
        quick_epochs = QUICK_EPOCHS if opts.quick and not under else None
        # A row may name its loop's epochs and validation interval (e.g. more label epochs than the method's default).
        loop = {k: info[k] for k in ("epochs", "val_every") if k in info}
        config = DistillConfig(
            target=target, source=source, base=cell.base, method=info["method"], seed=seed, target_size=cell.target_size,
            epochs=loop.pop("epochs", quick_epochs), test_models=TEST_MODELS, split=split, device=device, **learn, **start,
            **under, **loop)
        if select != "random" and distill_takes_select():
            config = dataclasses.replace(config, base_select=select)
        run_cell = cell.with_settings(arch=None, head=None, steps=None, optimizer=None, order=None,
                                      protocol=cell.protocol if under else None, **drop, **named)
        if cell.get("target-size") == "all":
            run_cell = run_cell.with_settings(target_size=None)
        if cell.is_evaluation:
            evaluation = {"arch": cell.arch, "head": cell.head, "steps": cell.steps}
            evaluation.update({k: v for k, v in (("optimizer", cell.optimizer), ("order", cell.order), ("protocol", cell.protocol))
                               if v is not None})
    else:
        proto = get_protocol(cell.protocol)
        default = paper_defaults.default_arch(cell.target, channels) if proto.is_paper else proto.arch
        arch = cell.arch if cell.arch not in (None, default) else None
        teacher = {k: info[k] for k in ("labels", "temperature", "teacher_epoch", *TEACHER_KEYS) if k in info}
        config = BaselineSettings(target=target, base=cell.base, smoothing=info["smoothing"], head=info["head"], arch=arch,
                                  models=TEST_MODELS if proto.is_paper else proto.models, seed=seed, split=split, device=device,
                                  base_select=select, protocol=proto.name, **teacher)
        run_cell = cell.with_settings(arch=arch, **drop, **named)
    suffix = "-stand-in" if notes else ""
    # --quick does not change a baseline or a run made under its protocol: share the run
    quick_run = opts.quick and info["kind"] not in ("baseline", "mean") and not cell.distils_under_protocol
    return Plan(cell=cell, kind=info["kind"], config=config, run_cell=run_cell,
                run_slug=run_cell.slug + suffix + ("-quick" if quick_run else ""),
                cell_slug=cell.with_settings(**named).slug + suffix + ("-quick" if opts.quick else ""),
                evaluation=evaluation, channels=channels, reduced=opts.quick, stand_in=tuple(notes), missing=missing, needs=needs,
                select=select, num_classes=_num_classes(cell.target), parts=parts)


def _num_classes(target: str) -> int:
    """The catalog's class count (10 where the names come from the files, as for CUB's 200: only a
    DD / SLDD plan reads it, and those run on MNIST and CIFAR-10)."""
    entry = CATALOG.get(target) if target in CATALOG else None
    names = getattr(entry, "class_names", None)
    return len(names) if names else 10


def distill_takes_select() -> bool:
    """Whether :class:`DistillConfig` has ``base_select`` (distillation with a base selector)."""
    return "base_select" in {f.name for f in dataclasses.fields(DistillConfig)}


# ---- time estimates -----------------------------------------------------------------------------

def measured_seconds(per_arch: dict[str, float], arch: str) -> float:
    """The measured figure for ``arch``, else LeNet's scaled by :data:`ARCH_FACTOR`."""
    return per_arch[arch] if arch in per_arch else per_arch["lenet"] * ARCH_FACTOR.get(arch, 1.0)


def distill_steps(plan: Plan, data: DataView) -> tuple[int, int]:
    """(epochs, meta-steps) of a distillation: steps = epochs * ceil(train size / target batch)
    (DD / SLDD: outer epochs and outer iterations)."""
    if plan.kind == "unrolled":
        resolved, ucfg = plan.config.resolve(plan.config.target, plan.num_classes, plan.channels)  # type: ignore[union-attr]
        n = data.train_size(resolved.target)
        return int(ucfg.outer_epochs), int(ucfg.outer_epochs * math.ceil(n / ucfg.batch_size))
    cfg = plan.config.resolve(plan.config.target, plan.channels)  # type: ignore[union-attr]
    n = data.train_size(cfg.target)
    if cfg.target_size:
        n = min(n, cfg.target_size)
    return int(cfg.epochs), int(cfg.epochs * math.ceil(n / cfg.target_batch))


def run_seconds(plan: Plan, data: DataView, teachers: TeacherCosts | None = None) -> float:
    """Estimated seconds of the plan's run (distillation + its 20-model test, or the baseline); ``teachers``: what of
    its teacher to count (:class:`TeacherCosts`; None: all of it)."""
    if plan.kind == "unrolled":
        resolved, _ = plan.config.resolve(plan.config.target, plan.num_classes, plan.channels)  # type: ignore[union-attr]
        arch = resolved.arch or "lenet"
        _, iterations = distill_steps(plan, data)
        return iterations * measured_seconds(UNROLLED_ITERATION_SECONDS, arch) + measured_seconds(UNROLLED_TEST_SECONDS, arch)
    if plan.kind == "distill" and plan.cell.distils_under_protocol:
        return implicit_seconds(plan, data, teachers)
    if plan.kind == "mean":  # its own test (its parts are cells of their own: the dry run counts each run once)
        proto = get_protocol(plan.config.protocol)  # type: ignore[union-attr]
        return protocol_seconds(proto, plan.cell.base, proto.models)
    if plan.kind == "distill":
        cfg = plan.config.resolve(plan.config.target, plan.channels)  # type: ignore[union-attr]
        arch = cfg.arch or "lenet"
        per_arch = STEP_SECONDS.get(cfg.method, STEP_SECONDS["second-order"])  # lookahead: about a second-order step
        step = measured_seconds(per_arch, arch) * (IMAGE_STEP_FACTOR if cfg.learn != "labels" else 1.0)
        _, steps = distill_steps(plan, data)
        start = teacher_seconds(plan, teachers) + TEMPERATURE_STUDENTS * BASELINE_SECONDS if cfg.label_init == "teacher" else 0.0
        return steps * step * VALIDATION_OVERHEAD + test_seconds(arch) + start
    proto = get_protocol(plan.config.protocol)  # type: ignore[union-attr]
    teacher = plan.config.labels == "teacher"  # type: ignore[union-attr]
    if not proto.is_paper:
        students = plan.config.models + (choice_students(plan, teachers) if teacher else 0)  # type: ignore[union-attr]
        return protocol_seconds(proto, plan.cell.base, students) + (teacher_seconds(plan, teachers) if teacher else 0.0)
    arch = plan.config.arch or paper_defaults.default_arch(plan.config.target, plan.channels)  # type: ignore[union-attr]
    return BASELINE_SECONDS * ARCH_FACTOR.get(arch, 1.0) * (1 + TEMPERATURE_STUDENTS if teacher else 1) + (teacher_seconds(plan, teachers) if teacher else 0.0)


class TeacherCosts:
    """The teachers an estimate has counted: one that several rows share (trained once, then cached) is paid once, and
    what the teacher cache already holds of one (a finished teacher, an interrupted training, a shorter teacher it goes
    on from: :func:`~labeldistill.teacher.trained_epochs`) is not paid again. Without it, every row pays its whole
    teacher."""

    def __init__(self, folder: Path | None) -> None:
        self.folder, self.counted, self.chosen = folder, set(), set()

    def epochs_left(self, plan: Plan) -> int | None:
        """Epochs of the plan's teacher still to train (0: nothing, it is cached or counted above); None where the
        cache holds none of it and it is not counted yet."""
        from ..teacher import trained_epochs

        teacher = _teacher_of(plan)
        if (plan.cell.target, teacher) in self.counted:
            return 0
        self.counted.add((plan.cell.target, teacher))
        cached, trained = trained_epochs(self.folder, plan.cell.target, teacher)
        return 0 if cached else (max(0, teacher.epochs - trained) if trained else None)

    def choose(self, plan: Plan) -> bool:
        """Whether the plan's choice of its teacher's labels (temperature, epoch) is still to be paid: not paid by a row
        above (finished, or counted in this estimate) with the same teacher, protocol and choice, whose students the model
        ledgers beside it then give (runner.sibling_ledgers). Marks it paid."""
        key = _choice_key(plan)
        if key in self.chosen:
            return False
        self.chosen.add(key)
        return True

    def paid(self, plan: Plan) -> None:
        """A row with nothing left to run (finished, or stored): its teacher-label choice, if it made one, is paid."""
        if "teacher" in (getattr(plan.config, "labels", None), getattr(plan.config, "label_init", None)):
            self.choose(plan)


def _teacher_of(plan: Plan):
    """The plan's teacher's settings (:func:`~labeldistill.teacher.teacher_config`): its ``teacher_arch``, else the
    dataset's architecture (the estimate does not model :func:`~labeldistill.teacher.default_teacher_arch`'s ConvNet-3
    for images that architecture cannot take)."""
    from ..teacher import teacher_config

    cfg = plan.config
    arch = getattr(cfg, "teacher_arch", None) or paper_defaults.default_arch(cfg.target, plan.channels)  # type: ignore[union-attr]
    return teacher_config(arch, seed=int(cfg.seed), epochs=int(getattr(cfg, "teacher_epochs", 30)),  # type: ignore[union-attr]
                          patience=int(getattr(cfg, "teacher_patience", 3)), recipe=getattr(cfg, "teacher_recipe", "adam"),
                          lr=getattr(cfg, "teacher_lr", None))


def _choice_key(plan: Plan) -> tuple:
    """What decides the students that choose a teacher's labels: the teacher, the protocol they train under (a baseline's
    or a run made under its protocol: the cell's; a loop started from the labels: the paper's) and what they choose."""
    under = plan.kind == "baseline" or plan.cell.distils_under_protocol
    cfg = plan.config
    return (plan.cell.target, _teacher_of(plan), plan.cell.protocol if under else None, str(getattr(cfg, "temperature", None)),
            str(getattr(cfg, "teacher_epoch", "best")))


def choice_students(plan: Plan, teachers: TeacherCosts | None = None) -> int:
    """Students of the plan's teacher-label choice still to train: all (:func:`teacher_students`), or none where
    ``teachers`` has it paid by a row above."""
    return teacher_students(plan.config) if teachers is None or teachers.choose(plan) else 0


def teacher_seconds(plan: Plan, teachers: TeacherCosts | None = None) -> float:
    """Estimated seconds of the plan's teacher (:func:`_teacher_of`); with ``teachers``, only what is left of it to train."""
    teacher = _teacher_of(plan)
    arch, epochs, patience = teacher.arch, teacher.epochs, teacher.patience
    left = None if teachers is None else teachers.epochs_left(plan)
    if left == 0:
        return 0.0
    if patience >= epochs:  # no early stop: every epoch left is trained
        return (epochs if left is None else left) * measured_seconds(TEACHER_EPOCH_SECONDS, arch)
    return measured_seconds(TEACHER_SECONDS, arch)  # early-stopped: its length unknown, counted whole


def implicit_seconds(plan: Plan, data: DataView, teachers: TeacherCosts | None = None) -> float:
    """Estimated seconds of a run made under its protocol (``--method implicit``): the teacher and its temperature
    students, the start candidate (its protocol students; no paper step search since session 32), the students' first
    training, the label steps, the refreshed students' trainings, the snapshots' protocol students and the protocol's test."""
    cfg = plan.config.resolve(plan.config.target, plan.channels)  # type: ignore[union-attr]
    proto, n = get_protocol(cfg.test_protocol), plan.cell.base
    _, steps = distill_steps(plan, data)
    start = teacher_seconds(plan, teachers) + protocol_seconds(proto, n, choice_students(plan, teachers)) if cfg.label_init == "teacher" else 0.0
    if cfg.start_candidate == "on":
        start += protocol_seconds(proto, n, cfg.validation_models)
    snapshots = max(1, int(cfg.epochs) // cfg.val_every)
    refreshes = (steps - 1) // cfg.refresh_every if cfg.refresh_every else 0  # none after the last step
    return (start + protocol_seconds(proto, n, cfg.students + refreshes) + steps * cfg.students * IMPLICIT_STEP_SECONDS * n / 100
            + protocol_seconds(proto, n, snapshots * cfg.validation_models) + protocol_seconds(proto, n, proto.models))


def protocol_seconds(proto, n_images: int, models: int) -> float:
    """Estimated seconds for ``models`` ConvNet-3s trained on ``n_images`` under a fixed-epoch protocol."""
    steps = (proto.epochs or 0) * math.ceil(n_images / (proto.batch_size or n_images))
    return models * steps * PROTOCOL_STEP_SECONDS


def selection_seconds(plan: Plan) -> float:
    """Estimated seconds to choose the plan's base set (paid once per target, N, seed and selector:
    the choice is cached in OUT/selections and shared by every method)."""
    if plan.select == "random":
        return 0.0
    arch = paper_defaults.default_arch(plan.cell.target, plan.channels)
    return SELECT_SECONDS.get(plan.select, SELECT_SECONDS["other"]) * (1.7 if plan.cell.base > 100 else 1.0) * ARCH_FACTOR.get(arch, 1.0)


def evaluation_seconds(plan: Plan) -> float:
    if not plan.evaluation:
        return 0.0
    if plan.kind == "unrolled":  # DD's 200 networks, of the architecture the set was learned with unless the cell names another
        resolved, _ = plan.config.resolve(plan.config.target, plan.num_classes, plan.channels)  # type: ignore[union-attr]
        return measured_seconds(UNROLLED_TEST_SECONDS, plan.evaluation.get("arch") or resolved.arch or "lenet")
    proto = get_protocol(plan.evaluation.get("protocol"))
    if not proto.is_paper:
        return protocol_seconds(proto, plan.cell.base, proto.models)
    arch = plan.evaluation.get("arch") or paper_defaults.default_arch(plan.cell.target, plan.channels)
    search = 1.0 + len(SGD_LRS) * SEARCH_MODELS / TEST_MODELS if plan.evaluation.get("optimizer") == "sgd" else 1.0  # + the lr search
    return test_seconds(arch) * search


def test_seconds(arch: str) -> float:
    """Estimated seconds of the paper protocol's 20-model test of a label set with ``arch``."""
    if arch == "lenet":
        return TEST_SECONDS
    return TEST_MODELS * TYPICAL_TEST_STEPS * MODEL_STEP_SECONDS * ARCH_FACTOR.get(arch, 1.0)


def remaining_run_seconds(plan: Plan, data: DataView, state: str, run_dir: Path, teachers: TeacherCosts | None = None
                          ) -> tuple[float, int | None]:
    """Estimated seconds still to spend on the plan's run in ``state`` (``runner.run_state``'s), and the epochs
    a resumed distillation has done: a finished run (or a conflict, which runs nothing) costs nothing, a
    resumed one what is left of its loop (its test and validations still to come scale alike)."""
    if state in ("finished", "conflict"):
        return 0.0, None
    seconds, done = run_seconds(plan, data, teachers), None
    if state == "resume" and plan.kind in ("unrolled", "distill"):
        epochs, _ = distill_steps(plan, data)
        done = last_epoch(run_dir / "metrics.jsonl")
        if done:
            seconds *= max(0.0, 1.0 - done / max(1, epochs))
    return seconds, done


def longest_first(units: list[list[int]], cost: list[float]) -> list[list[int]]:
    """The units of work, the longest estimated first (``cost``: each unit's seconds; ties keep their
    order). Handed to a pool of workers in this order, they finish within 4/3 of the best possible time
    when the estimates are exact (Graham's LPT rule); the table's own order can leave one long cell
    (DD, SLDD) running alone at the end."""
    return [units[k] for k in sorted(range(len(units)), key=lambda k: -cost[k])]


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"
