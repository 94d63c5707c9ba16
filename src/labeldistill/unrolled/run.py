"""DD / SLDD as a run, shaped like a label-distillation run: the same data loading (outer
iterations over the target's training split, validation held out), run directory (config.json,
metrics.jsonl, checkpoint, result.json, distilled.safetensors), lock, float settings, resume and
Ctrl-C handling as :mod:`labeldistill.distill.run`; the loop is :class:`UnrolledDistiller`.

A finished run tests its set the way it was learned (DD's protocol: 200 fresh Xavier networks,
the schedule's steps, lrs and order, plain SGD) and saves it as a :class:`DistilledSet` whose
``schedule`` field holds the learned schedule.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import paper_defaults
from ..artifact import DistilledSet
from ..data import TargetData, load_for_arch
from ..data.preprocess import Preprocessing
from ..errors import UserError
from ..numerics import float32_precision, float_settings
from ..runs import MetricsLog, StopRequest, atomic_write_json, read_json
from ..runs.ledger import evaluation_ledger
from ..runs.provenance import pin_code_identity, resolve_device, versions
from ..settings import from_dict
from .config import _DATASET, METHODS, UnrolledConfig, unrolled_config
from .evaluate import evaluate_set
from .network import FunctionalNet
from .schedule import learned_schedule, to_file_schedule
from .trainer import UnrolledDistiller, initial_images, step_classes

UNROLLED_FIELDS = frozenset(f.name for f in dataclasses.fields(UnrolledConfig)) - {"method"}
# Flat names of trainer settings whose own names mean something else at the run level ("epochs" is
# the outer epochs there, as the CLI's --epochs): the reference's names.
ALIASES = {"distill_epochs": "epochs", "distill_steps": "steps"}


@dataclass
class UnrolledRunConfig:
    """One DD / SLDD run: the problem and bookkeeping; ``unrolled`` holds the trainer's settings.

    Args:
        target: target dataset (catalog name, ``npz:FILE``, ``folder:DIR``).
        method: ``"dd"`` or ``"sldd"``.
        base: number of distilled images; must be ``steps x classes x k`` (default 100 = 10
            steps x 10 classes x 1 image per class).
        arch: None: LeNet for greyscale, AlexCifarNet for colour targets.
        epochs: outer epochs over the training split (None: the preset's, DD 400, SLDD 350).
        test_models: fresh networks of the final test (DD: 200); test_group of them at once
            (never changes a result).
        checkpoint_minutes, checkpoint_every: a checkpoint at least this often (and every this
            many outer iterations if > 0), on Ctrl-C, and at the end.
        unrolled: :class:`UnrolledConfig` fields overriding the preset of the target
            (:func:`unrolled_config`); after :meth:`resolve`, all of them.
    """

    target: str = "mnist"
    method: str = "dd"
    base: int = 100
    arch: str | None = None
    seed: int = 0
    epochs: int | None = None
    split: tuple[float, float, float] | None = None
    test_models: int = 200
    test_group: int = 50
    checkpoint_minutes: float = 3.0
    checkpoint_every: int = 0
    device: str = "auto"
    allow_tf32: bool = False
    deterministic: bool = False  # deterministic GPU kernels (numerics.float32_precision)
    cuda_graph: bool = True  # on a GPU, each outer iteration replayed as one CUDA graph (UnrolledDistiller)
    unrolled: dict = field(default_factory=dict)

    @classmethod
    def from_settings(cls, **settings: object) -> UnrolledRunConfig:
        """Flat settings: run fields, and any :class:`UnrolledConfig` field (``steps=5``,
        ``batch_size=256``, ``outer_epochs=...``) into ``unrolled``. Unknown names: one-line error."""
        known = {f.name for f in dataclasses.fields(cls)} - {"unrolled"}
        run = {k: v for k, v in settings.items() if k in known}
        over = dict(settings.get("unrolled") or {})  # type: ignore[arg-type]
        over.update({k: v for k, v in settings.items() if k in UNROLLED_FIELDS - known})
        over.update({ALIASES[k]: v for k, v in settings.items() if k in ALIASES})
        names = known | (UNROLLED_FIELDS - known) | set(ALIASES)
        unknown = sorted(set(settings) - names - {"unrolled"})
        if unknown:
            raise UserError(f"Unknown DD / SLDD setting(s) {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
        return cls(**run, unrolled=over)  # type: ignore[arg-type]

    def validate(self) -> None:
        from ..models import MODELS

        if self.method not in METHODS:
            raise UserError(f"Unknown unrolled method '{self.method}'. Known: {', '.join(METHODS)}.")
        ints = {"base": self.base, "test_models": self.test_models, "test_group": self.test_group}
        if self.epochs is not None:
            ints["epochs"] = self.epochs
        for name, v in ints.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}.")
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise UserError(f"checkpoint_every must be an integer of at least 0, got {self.checkpoint_every!r}.")
        if not self.checkpoint_minutes > 0:
            raise UserError(f"checkpoint_minutes must be positive, got {self.checkpoint_minutes!r}.")
        bad = sorted(set(self.unrolled) - UNROLLED_FIELDS)
        if bad:
            raise UserError(f"Unknown DD / SLDD setting(s) {', '.join(bad)}. Known: {', '.join(sorted(UNROLLED_FIELDS))}.")
        if self.arch is not None:
            self.arch = MODELS.canonical(self.arch)

    def resolve(self, target_name: str, num_classes: int, channels: int) -> tuple[UnrolledRunConfig, UnrolledConfig]:
        """Fill in the arch, the target's preset and the images per class (``base / (steps x classes)``)."""
        over = dict(self.unrolled)
        if self.epochs is not None:
            if over.get("outer_epochs", self.epochs) != self.epochs:
                raise UserError(f"epochs = {self.epochs} and outer_epochs = {over['outer_epochs']} disagree; give one.")
            over["outer_epochs"] = self.epochs
        k_given = over.pop("images_per_class", None)
        preset = unrolled_config(_preset(target_name), self.method, **over)
        per = preset.steps * num_classes
        if self.base % per:
            raise UserError(f"--base {self.base} is not steps x classes x k: {preset.steps} steps x {num_classes} classes "
                            f"x k images per class ({per}, {2 * per}, ...).")
        k = self.base // per
        if k_given is not None and k_given != k:
            raise UserError(f"images_per_class = {k_given} disagrees with --base {self.base} ({preset.steps} steps x "
                            f"{num_classes} classes x {k}).")
        ucfg = dataclasses.replace(preset, images_per_class=k)
        arch = self.arch or paper_defaults.default_arch(target_name, channels)
        unrolled = {k: v for k, v in ucfg.to_dict().items() if k != "method"}  # the method is the run's
        return dataclasses.replace(self, arch=arch, epochs=ucfg.outer_epochs, unrolled=unrolled), ucfg

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["unrolled"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.unrolled.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UnrolledRunConfig:
        cfg = from_dict(cls, d, what="DD / SLDD setting", tuples=("split",))
        cfg.unrolled = {k: (tuple(v) if k == "betas" and v is not None else v) for k, v in dict(cfg.unrolled).items()}
        return cfg


def _preset(target_name: str) -> str:
    """Which reference setting a target takes: its own (MNIST, CIFAR-10), else MNIST's."""
    name = paper_defaults.settings_name(target_name)
    return name if name in _DATASET else "mnist"


def is_unrolled_record(record: dict) -> bool:
    """Whether a run directory's config.json belongs to a DD / SLDD run."""
    return record.get("method") in METHODS and "unrolled" in (record.get("config") or {})


def distill_unrolled(target: str = "mnist", *, method: str = "dd", base: int = 100, out: str | Path | None = None,
                     resume: bool = False, data_root: str | Path | None = None, download: bool = False, progress: bool = True,
                     config: UnrolledRunConfig | None = None, **settings: object) -> DistilledSet:
    """Learn DD / SLDD images (and SLDD's labels) and per-step lrs; ``labeldistill.distill(..., method="dd")``.

    Args:
        settings: any :class:`UnrolledRunConfig` field (``seed``, ``epochs``, ``test_models``,
            ``arch``, ``device``, ...) or :class:`UnrolledConfig` field (``steps``, ``batch_size``, ...;
            ``epochs`` is the outer epochs here, ``distill_epochs`` / ``distill_steps`` the trainer's).
    Example:
        >>> ds = labeldistill.distill("mnist", method="dd", out="runs/mnist-dd")
        >>> ds.images.shape, ds.schedule.lrs[:3], ds.evaluation["accuracy_mean"]
    """
    if resume:
        if out is None:
            raise UserError("resume needs the run directory (out=...).")
        record = read_json(Path(out) / "config.json")
        if not is_unrolled_record(record):
            raise UserError(f"{out} is not a DD / SLDD run.")
        cfg = UnrolledRunConfig.from_dict(record["config"])
        if "device" in settings:
            cfg.device = str(settings.pop("device"))
        if "cuda_graph" in settings:  # how the steps are launched, not what they compute: may change on resume
            cfg.cuda_graph = bool(settings.pop("cuda_graph"))
        if settings:
            raise UserError(f"A resumed run keeps its settings; only the device and cuda_graph may change (got {', '.join(sorted(settings))}).")
    elif config is not None:
        cfg = dataclasses.replace(config, **settings) if settings else config
    else:
        cfg = UnrolledRunConfig.from_settings(target=target, method=method, base=base, **settings)
    return run_unrolled(cfg, out=out, resume=resume, data_root=data_root, download=download, progress=progress)


def run_unrolled(cfg: UnrolledRunConfig, *, out=None, resume=False, data_root=None, download=False, progress=True) -> DistilledSet:
    pin_code_identity()  # its records name the code it started with
    cfg.validate()
    with float32_precision(cfg.allow_tf32, cfg.deterministic):
        return _run(cfg, out=out, resume=resume, data_root=data_root, download=download, progress=progress)


def _run(cfg: UnrolledRunConfig, *, out, resume, data_root, download, progress) -> DistilledSet:
    from ..distill.loop import CHECKPOINT, Interrupted, NonFiniteError
    from ..distill.run import _lock_run_dir, _record_resume, _save_result, finished_run

    done = finished_run(out, resume)
    if done is not None:
        return done
    run_dir = Path(out) if out is not None else None
    lock = _lock_run_dir(run_dir, resume)
    log: MetricsLog | None = None
    try:
        device = resolve_device(cfg.device)
        data = load_for_arch(cfg.target, cfg.arch, data_root=data_root, seed=cfg.seed, split=cfg.split, device=device, download=download)
        resolved, ucfg = cfg.resolve(data.name, data.num_classes, data.preprocessing.channels)
        net = FunctionalNet.from_arch(resolved.arch, data.preprocessing.channels, int(data.train.x.shape[-1]), data.num_classes, device=device)
        dist = UnrolledDistiller(ucfg, data.train.x, data.train.y, net, data.num_classes, seed=resolved.seed,
                                 cuda_graph=resolved.cuda_graph)
        ckpt = run_dir / CHECKPOINT if run_dir is not None else None
        if run_dir is not None:
            record = _config_record(resolved, cfg, data, device, data_root)
            offset = None
            if resume:
                old = read_json(run_dir / "config.json")
                if old.get("split_sha256") != record["split_sha256"]:
                    raise UserError(f"The data found now differ from the data {run_dir} was started on; resume with the same --data-root.")
                offset = dist.load_checkpoint(ckpt)  # changes only the distiller: _record_resume still refuses other numerics
                offset = 0 if offset is None else int(offset)
                if dist.initial_images() is None and _can_redraw_start(old, device):  # a checkpoint from before they were kept
                    dist.initial = dist.draw_initial()
                _record_resume(run_dir, old, record, device, at={"iteration": dist.iteration})  # which code made which iterations
            else:
                atomic_write_json(run_dir / "config.json", record)
            log = MetricsLog(run_dir / "metrics.jsonl", resume_offset=offset)

        stop = StopRequest()  # Ctrl-C / SIGTERM: checkpoint after the current outer iteration, then stop
        bar = tqdm(total=dist.total_iterations, initial=dist.iteration, disable=not progress, desc=f"distill {resolved.method}",
                   unit="it", dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30.0)

        def tick(_: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

        try:
            with stop:
                dist.run(checkpoint=ckpt, checkpoint_every=resolved.checkpoint_every, checkpoint_minutes=resolved.checkpoint_minutes,
                         metrics=log, on_iteration=tick, stop=lambda: stop.requested)
        except FloatingPointError as e:
            raise NonFiniteError(f"{e} The last checkpoint is kept.") from None
        finally:
            bar.close()
            if log is not None:
                log.close()
        if dist.iteration < dist.total_iterations:
            hint = f"checkpoint written. Resume with: labeldistill distill --resume {run_dir}" if run_dir is not None else "nothing kept (no run directory)."
            raise Interrupted(f"Stopped at outer iteration {dist.iteration} of {dist.total_iterations}; {hint}")

        ds = _distilled_set(dist, resolved, ucfg, data)
        t0 = time.perf_counter()
        try:
            # Each finished test network goes into the run's evaluation ledger (the one `evaluate RUN` keeps): the 200-network
            # test of a CIFAR-10 set is about an hour of one CPU thread, and a stopped test resumes with the networks it lacks.
            ev = evaluate_set(ds.to(device), data, models=resolved.test_models, seed=resolved.seed, group=resolved.test_group,
                              ledger=None if run_dir is None else evaluation_ledger(run_dir), progress=progress)
        except KeyboardInterrupt:
            kept = (f"the loop's final checkpoint and the finished test networks are kept. Resume with: labeldistill distill "
                    f"--resume {run_dir}" if run_dir is not None else "nothing kept (no run directory).")
            raise Interrupted(f"Stopped while testing the distilled set; {kept}") from None
        test_seconds = time.perf_counter() - t0
        result = {
            **ev,
            "T": ucfg.inner_steps, "method": resolved.method, "arch": resolved.arch, "target": data.name, "seed": resolved.seed,
            "base": resolved.base, "images_per_class": ucfg.images_per_class, "distill_steps": ucfg.steps, "distill_epochs": ucfg.epochs,
            "outer_epochs": ucfg.outer_epochs, "iterations": dist.iteration, "learned": ds.learned, "image_init": ds.image_init,
            "distill_seconds": round(dist.seconds, 2), "test_seconds": round(test_seconds, 2),
            "seconds": round(dist.seconds + test_seconds, 2),
            "seconds_per_iteration": round(dist.seconds / max(1, dist.iteration), 5),
            "device": device, "versions": versions(), "float_settings": float_settings(),
        }
        return _save_result(ds, result, resolved, run_dir)
    finally:
        if lock is not None:
            lock.release()


def _distilled_set(dist: UnrolledDistiller, cfg: UnrolledRunConfig, ucfg: UnrolledConfig, data: TargetData) -> DistilledSet:
    return _assemble_set(dist.images.detach(), dist.step_labels().detach(), dist.lrs().detach(), dist.initial_images(), cfg, ucfg,
                         data.preprocessing, list(data.class_names), data.name)


def _can_redraw_start(record: dict, device: object) -> bool:
    """Whether ``device`` draws the same start images from the seed as the run whose config.json is ``record`` did:
    only a device of the kind it started on ("cuda:1" and "cuda" are one kind; a CPU's generator draws other numbers)."""
    def kind(d: object) -> str:
        return str(d).split(":", 1)[0]

    return kind(record.get("device")) == kind(device)


def _assemble_set(images: torch.Tensor, labels: torch.Tensor, lrs: torch.Tensor, initial: torch.Tensor | None, cfg: UnrolledRunConfig,
                  ucfg: UnrolledConfig, preprocessing: Preprocessing, class_names: list[str], target: str) -> DistilledSet:
    """The distilled set of a run's learned tensors: ``images`` S x B x C x H x W, ``labels`` S x B classes (DD) or S x B x C
    vectors (SLDD), ``lrs`` the T learned lrs (through softplus), ``initial`` the images before learning (None: not known)."""
    per_step = int(images.shape[1])
    classes_per_step = [int(c) for c in step_classes(len(class_names), ucfg.images_per_class)]  # SLDD's labels start there
    labels = labels.flatten(0, 1)
    if labels.dtype == torch.int64:  # DD: fixed classes -> one-hot rows
        labels = F.one_hot(labels, len(class_names)).to(images.dtype)
    learned = "images+labels" if ucfg.learns_labels else "images"
    recipe = {
        "optimizer": "sgd", "momentum": 0.0, "schedule": True, "arch": cfg.arch, "method": cfg.method, "learned": learned,
        "batch_size": per_step, "init": ucfg.init, "init_gain": ucfg.init_gain,
        "loss": "soft-cross-entropy" if ucfg.learns_labels else "cross-entropy", "test_models": cfg.test_models,
    }
    provenance = {
        "target": target, "seed": cfg.seed, "method": cfg.method, "learned": learned, "image_init": "normal",
        "base_dataset": None, "base_indices": None, "base_labels": None, "cross_dataset": False,
        "classes_per_step": classes_per_step,
    }
    schedule = learned_schedule(lrs.cpu().tolist(), ucfg.steps, per_step)
    return DistilledSet(
        images=images.flatten(0, 1).clone().cpu(), labels=labels.clone().cpu(), steps=ucfg.inner_steps, preprocessing=preprocessing,
        class_names=list(class_names), recipe=recipe, provenance=provenance, learned=learned, image_init="normal",
        initial_images=None if initial is None else initial.flatten(0, 1).cpu(), schedule=to_file_schedule(schedule),
    )


def checkpoint_set(run_dir: str | Path) -> DistilledSet:
    """A DD / SLDD run's set as it stands at its last checkpoint (a run still going, or stopped): the images, labels and
    learned schedule of that outer iteration, which ``provenance["checkpoint_iteration"]`` gives.

    For looking at a long run before it ends (``labeldistill report``) and testing it (``labeldistill evaluate RUN
    --snapshot checkpoint``). Reads the run directory only, no data. The checkpoint is written whole and then renamed
    into place, so a running job's file can be read at any time.
    """
    from ..distill.loop import CHECKPOINT
    from ..runs import load_state

    run_dir = Path(run_dir)
    record = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else None
    if not isinstance(record, dict) or not is_unrolled_record(record):
        raise UserError(f"{run_dir} is not a DD / SLDD run directory (no config.json of a --method dd / sldd run); "
                        "a label-distillation run's snapshots are numbers (--snapshot K).")
    if not (run_dir / CHECKPOINT).is_file():
        raise UserError(f"{run_dir} has no checkpoint yet (the first is written within --checkpoint-minutes of the start).")
    state = load_state(run_dir / CHECKPOINT)
    cfg, ucfg = UnrolledRunConfig.from_dict(record["config"]), UnrolledConfig.from_dict(state["config"])
    class_names = list((record.get("problem") or {}).get("class_names") or [])
    images = state["images"]
    labels = state["labels"]
    if labels is None:  # DD: the fixed classes of every step
        labels = step_classes(len(class_names), ucfg.images_per_class).expand(ucfg.steps, -1).contiguous()
    initial = state.get("initial_images")
    if initial is None and _can_redraw_start(record, "cpu"):  # a checkpoint from before they were kept; drawn here on the CPU
        initial = initial_images(images.shape, int(state["seed"]), ucfg.image_std, dtype=images.dtype)
    ds = _assemble_set(images, labels, F.softplus(state["raw_lrs"]), initial, cfg, ucfg, Preprocessing.from_dict(record["preprocessing"]),
                       class_names, str((record.get("problem") or {}).get("target") or cfg.target))
    ds.provenance["checkpoint_iteration"] = int(state["iteration"])
    return ds


def _config_record(resolved: UnrolledRunConfig, given: UnrolledRunConfig, data: TargetData, device: str, data_root) -> dict:
    split = data.split_record
    return {
        "config": resolved.to_dict(),
        "given": given.to_dict(),
        "method": resolved.method,
        "device": device,
        "data_root": str(data_root) if data_root is not None else None,
        "versions": versions(),
        "float_settings": float_settings(),
        "problem": {"target": data.name, "class_names": data.class_names,
                    "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}},
        "preprocessing": data.preprocessing.to_dict(),
        "split_sha256": split.get("sha256"),
        "split": split,
    }
