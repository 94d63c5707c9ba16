"""The paper's baselines: the base images with their true labels (optionally smoothed), or
with a teacher's soft labels.

The number of steps is chosen on the validation split by training one model and
measuring it at the reference code's checkpoints (10, 25, 50, ...), keeping the earliest
best; then K test models are trained for that many steps (section 4.2). Under another
evaluation protocol (``protocol="dc"`` / ``"dc-dsa"``) the protocol's fixed epochs are used
instead, with its architecture, optimiser, augmentation and ZCA.

Teacher labels (``labels="teacher"``): an early-stopped expert's soft labels for the base
images, at a given temperature or one chosen on the validation split (:mod:`labeldistill.teacher`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import paper_defaults
from .artifact import DistilledSet
from .data import load_for_arch
from .engine import HEADS, Learner, evaluate_labels, make_learner
from .errors import UserError, check_choice
from .models import MODELS
from .problem import Problem, build_problem
from .paper_defaults import default_arch
from .runs import RunLock, atomic_write_json
from .numerics import float32_precision
from .runs.ledger import run_ledger
from .runs.provenance import pin_code_identity, resolve_device, versions
from .selectors import canonical_selector
from .stepsearch import choose_steps
from .teacher import TeacherConfig, check_teacher_recipe, parse_teacher_epoch, parse_temperature, teacher_labels, teacher_soft_labels, train_teacher  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class BaselineConfig:
    smoothing: float = 0.0  # label smoothing epsilon (the paper's LS baseline: 0.1)
    models: int = 20
    batch_size: int | None = None  # N_i; None: the paper's rule for N
    lr: float = 1e-3
    seed: int = 0


def true_labels(y: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot labels, smoothed as ``(1 - eps) * onehot + eps / C``."""
    onehot = F.one_hot(y, num_classes).float()
    return onehot * (1.0 - smoothing) + smoothing / num_classes


def run_baseline(learner: Learner, problem: Problem, cfg: BaselineConfig = BaselineConfig(), labels: torch.Tensor | None = None) -> dict:
    """Run one baseline; returns the result dictionary (see :class:`~labeldistill.engine.Evaluation`).

    ``labels``: N x C label distributions for the base images (default: their true labels,
    smoothed by ``cfg.smoothing``), e.g. a teacher's (:func:`teacher_labels`)."""
    if problem.cross_dataset:
        raise ValueError("baselines need true labels: use a within-dataset problem")
    t0 = time.perf_counter()
    batch = cfg.batch_size or paper_defaults.inner_batch_size(problem.n_base, problem.target.name)
    if labels is None:
        labels = true_labels(problem.base_y, problem.target.num_classes, cfg.smoothing)
    steps, curve = choose_steps(learner, problem, labels, seed=cfg.seed, lr=cfg.lr, batch=batch)
    test = problem.target.test
    ev = evaluate_labels(learner, problem.base_x, labels, test.x, test.y, steps=steps, models=cfg.models, seed=cfg.seed, batch_size=batch, lr=cfg.lr)
    out = ev.to_dict()
    out.update(
        seconds=round(time.perf_counter() - t0, 3),
        validation_curve={str(k): round(v, 4) for k, v in curve.items()},
        batch_size=batch,
        config=asdict(cfg),
    )
    return out


@dataclasses.dataclass
class BaselineSettings:
    target: str = "mnist"
    base: int = 100
    smoothing: float = 0.0
    head: str = "linear"
    arch: str | None = None
    models: int | None = None  # test models; None: the protocol's (paper 20; dc, dc-dsa, qin2024 5)
    seed: int = 0
    batch_size: int | None = None
    split: tuple[float, float, float] | None = None
    device: str = "auto"
    allow_tf32: bool = False  # TF32 convolutions / matmuls on a GPU (see numerics.py)
    base_select: str = "random"  # base-set selector (labeldistill.selectors.list_selectors())
    # How test models train (labeldistill.protocols): "paper" (T chosen on validation, Adam) or "dc" / "dc-dsa".
    protocol: str = "paper"
    labels: str = "true"  # "true" (one-hot, smoothed by `smoothing`), "smooth" (smoothing, 0.1 unless given) or "teacher"
    temperature: float | str = 1.0  # softmax temperature of teacher labels; "auto": chosen on validation (teacher/labels.py)
    teacher_arch: str | None = None  # None: the target's default architecture (lenet / alexnet), under every protocol
    teacher_epochs: int = 30  # at most this many epochs over the training split ...
    teacher_patience: int = 3  # ... stopping after this many without a better validation accuracy
    teacher_epoch: int | str = "best"  # which epoch's weights label: "best" (validation accuracy), "auto" (students') or N
    teacher_recipe: str = "adam"  # how the teacher trains (teacher.TEACHER_RECIPES): "adam" (cheap) or "expert" (SGD, DSA)
    teacher_lr: float | None = None  # the teacher's lr; None: its recipe's

    def __post_init__(self) -> None:
        if self.models is None:  # resolved here, so the records name the number that trained
            from .protocols import get_protocol

            self.models = get_protocol(self.protocol).models


LABEL_KINDS = ("true", "smooth", "teacher")


def baseline(s: BaselineSettings, *, data_root=None, out=None, progress: bool = False, save_set: str | Path | None = None) -> dict:
    """Run one baseline end to end (load data, same base set as ``distill`` with the same seed).

    With ``out`` (a run directory), a fixed-epoch protocol records each finished model in ``out/ledger/``
    (:class:`~labeldistill.runs.ledger.ModelLedger`): run again after an interruption, it trains only the
    models it lacks. ``progress``: a progress bar over those models' training. ``save_set``: a file to write the
    labelled base set to (:func:`labelled_set`; e.g. the teacher's labels on random real images, Qin et al.'s set),
    which ``load``, ``evaluate`` and ``export`` read like a distilled set.

    Example:
        >>> baseline(BaselineSettings(target="mnist", base=100, smoothing=0.1), data_root="data")["accuracy_mean"]
    """
    pin_code_identity()  # its records name the code it started with
    if save_set is not None and not Path(save_set).parent.is_dir():  # said now, not after an hour of training
        raise UserError(f"--save-set {save_set}: the folder {Path(save_set).parent} does not exist.")
    device = resolve_device(s.device)
    check_choice("head", s.head, HEADS)
    s = dataclasses.replace(s, base_select=canonical_selector(s.base_select))
    if s.arch is not None:
        s = dataclasses.replace(s, arch=MODELS.canonical(s.arch))
    from .protocols import canonical_protocol

    s = dataclasses.replace(s, protocol=canonical_protocol(s.protocol), labels=check_choice("label kind", s.labels, LABEL_KINDS))
    if s.teacher_arch is not None:
        s = dataclasses.replace(s, teacher_arch=MODELS.canonical(s.teacher_arch))
    if s.labels == "smooth" and not s.smoothing:
        s = dataclasses.replace(s, smoothing=0.1)  # the paper's LS baseline
    s = dataclasses.replace(s, temperature=parse_temperature(s.temperature), teacher_epoch=parse_teacher_epoch(s.teacher_epoch))
    if s.labels == "teacher" and (s.smoothing or s.teacher_epochs < 1 or s.teacher_patience < 1):
        raise UserError("--labels teacher takes at least one teacher epoch and patience, and no --smoothing.")
    check_teacher_recipe(s.teacher_recipe, s.teacher_lr)
    lock = RunLock(out).acquire() if out else None
    try:
        with float32_precision(s.allow_tf32) as floats:
            result, labelled = _baseline(s, device, data_root, floats, ledger=run_ledger(out) if out else None, progress=progress)
        if save_set is not None:
            labelled.save(save_set)
            result["saved_set"] = str(save_set)
        if out:
            atomic_write_json(Path(out) / "result.json", result)
        return result
    finally:
        if lock is not None:
            lock.release()


def _baseline(s: BaselineSettings, device: str, data_root, floats: dict, *, ledger: Path | None = None,
              progress: bool = False) -> tuple[dict, DistilledSet]:
    """``ledger``: where fixed-epoch protocols record finished models (the run directory's), so a rerun resumes."""
    from .protocols import get_protocol, require_kornia, target_zca

    proto = get_protocol(s.protocol)
    if not proto.is_paper and s.head != "linear":
        raise UserError(f"--protocol {proto.name} trains standard models (the linear head); drop --head {s.head}.")
    if not proto.is_paper and s.batch_size is not None and proto.batch_size is not None:  # it would be ignored
        raise UserError(f"--batch-size applies to the paper protocol; --protocol {proto.name} trains with minibatches of {proto.batch_size}.")
    target = load_for_arch(s.target, s.arch or (None if proto.is_paper else proto.arch), data_root=data_root, seed=s.seed, split=s.split,
                           device=device)
    channels = target.preprocessing.channels
    arch = s.arch or (None if proto.is_paper else proto.arch) or default_arch(target.name, channels)
    if s.base > len(target.train):
        raise UserError(f"--base {s.base} is more than the {len(target.train)} training images of {target.name}.")
    if proto.uses_zca(channels):
        require_kornia(f"--protocol {proto.name}")
    problem = build_problem(target, s.base, s.seed, select=s.base_select)
    learner = make_learner(arch, int(problem.base_x.shape[1]), int(problem.base_x.shape[-1]), target.num_classes, head=s.head)
    cfg = BaselineConfig(smoothing=s.smoothing, models=s.models, batch_size=s.batch_size, seed=s.seed)
    zca = target_zca(proto, target, channels)
    labels, teacher = true_labels(problem.base_y, target.num_classes, s.smoothing), None
    if s.labels == "teacher":
        batch = s.batch_size or paper_defaults.inner_batch_size(problem.n_base, target.name)
        labels, teacher = teacher_soft_labels(problem, proto=proto, zca=zca, student=learner, seed=s.seed, arch=s.teacher_arch,
                                              epochs=s.teacher_epochs, patience=s.teacher_patience, temperature=s.temperature,
                                              batch=batch, lr=cfg.lr, ledger=ledger, epoch=s.teacher_epoch, progress=progress,
                                              recipe=s.teacher_recipe, teacher_lr=s.teacher_lr)
    if proto.is_paper:
        result = run_baseline(learner, problem, cfg, labels=labels)
    else:
        result = _protocol_baseline(proto, learner, problem, cfg, labels, zca, ledger=ledger, progress=progress)
    if teacher is not None:
        result.update(teacher=teacher.pop("teacher"), **teacher)  # teacher, temperature (and its choice)
    if not proto.is_paper or s.labels != "true":
        result.update(protocol=proto.name, labels=s.labels)
    result.update(target=target.name, base=s.base, arch=arch, head=s.head, smoothing=s.smoothing, device=device,
                  settings=dataclasses.asdict(s), versions=versions(), float_settings=floats, base_indices=[int(i) for i in problem.base_index],
                  base_select=problem.base_select, base_sha256=problem.base_sha256)
    return result, labelled_set(s, problem, labels, result, proto=proto, arch=arch, zca=zca)


def labelled_set(s: BaselineSettings, problem: Problem, labels: torch.Tensor, result: dict, *, proto, arch: str, zca) -> DistilledSet:
    """The base images with a baseline's labels as a distilled-set file's content: what ``load`` / ``evaluate`` /
    ``export`` read. Trained as the baseline tested them: the paper protocol at its chosen T (Adam), a fixed-epoch
    protocol by its own epochs (no T; the set names the protocol, and carries its ZCA where it has one). The labels are
    given, not learned (``recipe["method"]`` is ``"baseline"``, ``provenance["labels"]`` says which and how made)."""
    batch = s.batch_size or paper_defaults.inner_batch_size(problem.n_base, problem.target.name)  # as run_baseline trains
    recipe = {"optimizer": "adam", "lr": result["config"]["lr"], "batch_size": batch,
              "arch": arch, "head": s.head, "method": "baseline", "learned": "labels"}
    if not proto.is_paper:
        recipe["test_protocol"] = proto.name
    made = {"kind": s.labels, "smoothing": s.smoothing}
    if s.labels == "teacher":
        made.update({k: result[k] for k in ("temperature", "epoch", "temperature_choice", "epoch_choice") if k in result})
        made["teacher"] = {k: result["teacher"][k] for k in ("arch", "best_epoch", "val_accuracy", "test_accuracy", "config", "key")
                           if k in result["teacher"]}
    target = problem.target
    provenance = {**problem.provenance(), "target": target.name, "base_classes": problem.base_class_names,
                  "base_labels": [int(v) for v in problem.base_y.cpu()], "seed": s.seed, "labels": made}
    return DistilledSet(images=problem.base_x.detach().cpu(), labels=labels.detach().float().cpu(),
                        steps=int(result["steps"]) if proto.is_paper else None, preprocessing=target.preprocessing,
                        class_names=list(target.class_names), recipe=recipe, provenance=provenance, learned="labels",
                        zca=None if zca is None else zca.to("cpu"))


def _protocol_baseline(proto, learner: Learner, problem: Problem, cfg: BaselineConfig, labels, zca, *, ledger: Path | None = None,
                       progress: bool = False) -> dict:
    """A baseline under a protocol with fixed epochs (no step search): K models the protocol's way."""
    from .protocols import evaluate_protocol

    t0 = time.perf_counter()
    if labels is None:
        labels = true_labels(problem.base_y, problem.target.num_classes, cfg.smoothing)
    batch = cfg.batch_size or paper_defaults.inner_batch_size(problem.n_base, problem.target.name)
    test = problem.target.test
    ev = evaluate_protocol(proto, learner, problem.base_x, labels, test.x, test.y, steps=1, seed=cfg.seed, models=cfg.models,
                           batch_size=batch, lr=cfg.lr, zca=zca, ledger=ledger,
                           progress=progress)
    out = ev.to_dict()  # its seconds: every model's training, those of an earlier interrupted session included
    out.update(wall_seconds=round(time.perf_counter() - t0, 3), config=asdict(cfg))
    return out
