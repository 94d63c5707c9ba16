"""From a cell to the run that computes it: configuration, run directory, data, stand-ins (what it costs: :mod:`.estimate`).

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
from ..protocols import get_protocol
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

TEACHER_KEYS = ("teacher_arch", "teacher_epochs", "teacher_patience", "teacher_recipe", "teacher_lr")  # how a row's teacher trains, where it names one

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
