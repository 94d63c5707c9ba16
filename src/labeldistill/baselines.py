"""The paper's baselines: the base images with their true labels (optionally smoothed), or
with a teacher's soft labels.

The number of steps is chosen on the validation split by training one model and
measuring it at the reference code's checkpoints (10, 25, 50, ...), keeping the earliest
best; then K test models are trained for that many steps (section 4.2). Under another
evaluation protocol (``protocol="dc"`` / ``"dc-dsa"``) the protocol's fixed epochs are used
instead, with its architecture, optimiser, augmentation and ZCA.

Teacher labels (``labels="teacher"``): a model trained on the target's whole training split,
early-stopped on the validation split (the "early-stopped expert" of Qin et al. 2024, "A
Label is Worth a Thousand Images in Dataset Distillation"), labels the base images with its
softmax at a temperature. The teacher is cached per (target and split, architecture, seed,
numerics, training settings), so every run of one seed shares it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import protocol
from .data import load_for_arch
from .engine import HEADS, Learner, ModelState, accuracy, evaluate_labels, make_learner, model_seeds, predict, train_models
from .engine.recipe import TrainRecipe
from .errors import UserError, check_choice
from .models import MODELS
from .problem import Problem, build_problem
from .protocol import default_arch
from .runs import RunLock, atomic_write_json
from .numerics import float32_precision
from .runs.provenance import resolve_device, versions
from .selectors import canonical_selector


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


def choose_steps(learner: Learner, problem: Problem, labels: torch.Tensor, cfg: BaselineConfig, batch: int) -> tuple[int, dict[int, float]]:
    """Earliest checkpoint with the best validation accuracy of one model."""
    checkpoints = protocol.baseline_checkpoints(problem.n_base)
    val = problem.target.val
    curve: dict[int, float] = {}

    def observe(step: int, state: ModelState) -> None:
        curve[step] = float(accuracy(learner, state, val.x, val.y)[0]) * 100

    seed = model_seeds(cfg.seed, "validation-models", 1)
    train_models(learner, problem.base_x, labels, max(checkpoints), seed, batch_size=batch, lr=cfg.lr, observe_at=checkpoints, observer=observe)
    best = max(curve.values())
    return next(s for s in checkpoints if curve[s] == best), curve


def run_baseline(learner: Learner, problem: Problem, cfg: BaselineConfig = BaselineConfig(), labels: torch.Tensor | None = None) -> dict:
    """Run one baseline; returns the result dictionary (see :class:`~labeldistill.engine.Evaluation`).

    ``labels``: N x C label distributions for the base images (default: their true labels,
    smoothed by ``cfg.smoothing``), e.g. a teacher's (:func:`teacher_labels`)."""
    if problem.cross_dataset:
        raise ValueError("baselines need true labels: use a within-dataset problem")
    t0 = time.perf_counter()
    batch = cfg.batch_size or protocol.inner_batch_size(problem.n_base, problem.target.name)
    if labels is None:
        labels = true_labels(problem.base_y, problem.target.num_classes, cfg.smoothing)
    steps, curve = choose_steps(learner, problem, labels, cfg, batch)
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
    models: int = 20
    seed: int = 0
    batch_size: int | None = None
    split: tuple[float, float, float] | None = None
    device: str = "auto"
    allow_tf32: bool = False  # TF32 convolutions / matmuls on a GPU (see numerics.py)
    base_select: str = "random"  # base-set selector (labeldistill.selectors.list_selectors())
    # How test models train (labeldistill.protocols): "paper" (T chosen on validation, Adam) or "dc" / "dc-dsa".
    protocol: str = "paper"
    labels: str = "true"  # "true" (one-hot, smoothed by `smoothing`), "smooth" (smoothing, 0.1 unless given) or "teacher"
    temperature: float = 1.0  # softmax temperature of teacher labels
    teacher_arch: str | None = None  # None: the target's default architecture (convnet3 under dc protocols)
    teacher_epochs: int = 30  # at most this many epochs over the training split ...
    teacher_patience: int = 3  # ... stopping after this many without a better validation accuracy


LABEL_KINDS = ("true", "smooth", "teacher")


@dataclass(frozen=True)
class TeacherConfig:
    """How a teacher trains: Adam, minibatches of ``batch_size`` over the whole training split, at most
    ``epochs`` epochs, keeping the epoch of best validation accuracy and stopping ``patience`` epochs after it."""

    arch: str
    seed: int = 0
    epochs: int = 30
    patience: int = 3
    batch_size: int = 256
    lr: float = 1e-3


_DEFAULT_CACHE = object()


def teacher_cache_dir() -> Path | None:
    """Next to the base-set selections (``selectors.default_cache_dir()``): ``.../teachers``; None when caching is off."""
    from .selectors import default_cache_dir

    d = default_cache_dir()
    return None if d is None else d.parent / "teachers"


def _teacher_key(target, cfg: TeacherConfig, zca) -> dict:
    from .selectors._cache import numerics_key

    key = {"target": target.name, "split_sha256": target.split_record.get("index_sha256"), "seed": cfg.seed,
           "preprocessing": target.preprocessing.to_dict(), "teacher": dataclasses.asdict(cfg), "numerics": numerics_key(),
           "zca": None if zca is None else {"eps": zca.eps, "fitted_on": zca.fitted_on}}
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _teacher_file(folder: Path, target_name: str, cfg: TeacherConfig, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(target_name).split(":", 1)[-1]).name)[:40]
    return Path(folder) / f"{stem}-{cfg.arch}-seed{cfg.seed}-{digest}.safetensors"


def _cached_teacher(path: Path, key: dict, learner: Learner, seeds: list[int], reference: torch.Tensor) -> tuple[ModelState, dict] | None:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as f:
            record = json.loads((f.metadata() or {}).get("record", "{}"))
        saved = load_file(str(path))
    except (OSError, SafetensorError, json.JSONDecodeError):
        return None
    if record.get("key") != key:
        return None
    state = learner.init(seeds, device=reference.device)
    if set(saved) != set(state.params):
        return None
    params = {n: saved[n].to(t.device, t.dtype) for n, t in state.params.items()}
    return ModelState(params, state.buffers, state.head, reference), record


def train_teacher(target, cfg: TeacherConfig, *, zca=None, cache_dir: Path | None | object = _DEFAULT_CACHE) -> tuple[Learner, ModelState, dict]:
    """Train (or reuse from the cache) an early-stopped teacher on ``target``'s training split.

    One model (seed ``model_seeds(cfg.seed, "teacher", 1)``), Adam, shuffled minibatches; after each
    epoch its validation accuracy is measured; the best epoch's weights are kept and training stops
    ``cfg.patience`` epochs after it (or at ``cfg.epochs``). ``zca``: the protocol's whitening, applied
    to every split. Returns the learner, its one-model state and a record with its validation and test
    accuracy (%), the best epoch, the epochs trained and the cache file (``cache_dir``: default
    :func:`teacher_cache_dir`; None: no cache).
    """
    from .runs.files import atomic_write_bytes

    channels, size = target.preprocessing.channels, int(target.train.x.shape[-1])
    learner = make_learner(cfg.arch, channels, size, target.num_classes)
    seeds = model_seeds(cfg.seed, "teacher", 1)
    tx = target.train.x if zca is None else zca.apply(target.train.x)
    key = _teacher_key(target, cfg, zca)
    folder = teacher_cache_dir() if cache_dir is _DEFAULT_CACHE else cache_dir
    path = None if folder is None else _teacher_file(folder, target.name, cfg, key)  # type: ignore[arg-type]
    if path is not None and path.exists():
        found = _cached_teacher(path, key, learner, seeds, tx)
        if found is not None:
            return learner, found[0], {**found[1], "cache": {"file": str(path), "reused": True}}
    t0 = time.perf_counter()
    vx = target.val.x if zca is None else zca.apply(target.val.x)
    batch = min(cfg.batch_size, len(target.train))
    per_epoch = TrainRecipe.steps_per_epoch(len(target.train), batch)
    curve: dict[int, float] = {}
    best: dict = {}

    def observe(step: int, st: ModelState) -> bool:
        epoch = step // per_epoch
        curve[epoch] = float(accuracy(learner, st, vx, target.val.y)[0]) * 100
        if not best or curve[epoch] > best["val"]:
            best.update(val=curve[epoch], epoch=epoch, state=st.select(slice(None)))
        return epoch - best["epoch"] >= cfg.patience

    train_models(learner, tx, true_labels(target.train.y, target.num_classes), 1, seeds, batch_size=batch,
                 recipe=TrainRecipe(optimizer="adam", lr=cfg.lr, epochs=cfg.epochs),
                 observe_at=[per_epoch * (e + 1) for e in range(cfg.epochs)], observer=observe)
    state: ModelState = best["state"]
    state.reference = tx
    test_x = target.test.x if zca is None else zca.apply(target.test.x)
    record = {"arch": cfg.arch, "val_accuracy": round(best["val"], 4), "best_epoch": best["epoch"], "epochs_trained": max(curve),
              "test_accuracy": round(float(accuracy(learner, state, test_x, target.test.y)[0]) * 100, 4),
              "validation_curve": {str(k): round(v, 4) for k, v in curve.items()}, "config": dataclasses.asdict(cfg),
              "seconds": round(time.perf_counter() - t0, 3), "key": key, "versions": versions()}
    if path is not None:
        from safetensors.torch import save

        tensors = {n: t.detach().cpu().contiguous() for n, t in state.params.items()}
        atomic_write_bytes(path, save(tensors, metadata={"record": json.dumps(record, sort_keys=True)}))
    return learner, state, {**record, "cache": {"file": None if path is None else str(path), "reused": False}}


def teacher_labels(learner: Learner, state: ModelState, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(teacher(x) / temperature)``: N x C probability vectors (float32)."""
    if not temperature > 0:
        raise UserError(f"--temperature must be positive, got {temperature}.")
    return torch.softmax(predict(learner, state, x)[0].float() / temperature, dim=-1)


def baseline(s: BaselineSettings, *, data_root=None, out=None) -> dict:
    """Run one baseline end to end (load data, same base set as ``distill`` with the same seed).

    Example:
        >>> baseline(BaselineSettings(target="mnist", base=100, smoothing=0.1), data_root="data")["accuracy_mean"]
    """
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
    if s.labels == "teacher" and (s.smoothing or not s.temperature > 0 or s.teacher_epochs < 1 or s.teacher_patience < 1):
        raise UserError("--labels teacher takes a positive --temperature, at least one teacher epoch and patience, and no --smoothing.")
    lock = RunLock(out).acquire() if out else None
    try:
        with float32_precision(s.allow_tf32) as floats:
            result = _baseline(s, device, data_root, floats)
        if out:
            atomic_write_json(Path(out) / "result.json", result)
        return result
    finally:
        if lock is not None:
            lock.release()


def _baseline(s: BaselineSettings, device: str, data_root, floats: dict) -> dict:
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
    labels, teacher = None, None
    if s.labels == "teacher":
        teacher_arch = s.teacher_arch or (default_arch(target.name, channels) if proto.is_paper else "convnet3")
        tcfg = TeacherConfig(arch=teacher_arch, seed=s.seed, epochs=s.teacher_epochs, patience=s.teacher_patience)
        t_learner, t_state, teacher = train_teacher(target, tcfg, zca=zca)
        labels = teacher_labels(t_learner, t_state, problem.base_x if zca is None else zca.apply(problem.base_x), s.temperature)
    if proto.is_paper:
        result = run_baseline(learner, problem, cfg, labels=labels)
    else:
        result = _protocol_baseline(proto, learner, problem, cfg, labels, zca)
    if teacher is not None:
        result.update(teacher=teacher, temperature=s.temperature)
    if not proto.is_paper or s.labels != "true":
        result.update(protocol=proto.name, labels=s.labels)
    result.update(target=target.name, base=s.base, arch=arch, head=s.head, smoothing=s.smoothing, device=device,
                  settings=dataclasses.asdict(s), versions=versions(), float_settings=floats, base_indices=[int(i) for i in problem.base_index],
                  base_select=problem.base_select, base_sha256=problem.base_sha256)
    return result


def _protocol_baseline(proto, learner: Learner, problem: Problem, cfg: BaselineConfig, labels, zca) -> dict:
    """A baseline under a protocol with fixed epochs (no step search): K models the protocol's way."""
    from .protocols import evaluate_protocol

    t0 = time.perf_counter()
    if labels is None:
        labels = true_labels(problem.base_y, problem.target.num_classes, cfg.smoothing)
    batch = cfg.batch_size or protocol.inner_batch_size(problem.n_base, problem.target.name)
    test = problem.target.test
    ev = evaluate_protocol(proto, learner, problem.base_x, labels, test.x, test.y, steps=1, seed=cfg.seed, models=cfg.models,
                           batch_size=batch, lr=cfg.lr, zca=zca)
    out = ev.to_dict()
    out.update(seconds=round(time.perf_counter() - t0, 3), config=asdict(cfg))
    return out
