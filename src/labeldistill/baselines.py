"""The paper's baselines: the base images with their true labels (optionally smoothed).

The number of steps is chosen on the validation split by training one model and
measuring it at the reference code's checkpoints (10, 25, 50, ...), keeping the earliest
best; then K test models are trained for that many steps (section 4.2).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import protocol
from .data import load_for_arch
from .engine import HEADS, Learner, ModelState, accuracy, evaluate_labels, make_learner, model_seeds, train_models
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


def run_baseline(learner: Learner, problem: Problem, cfg: BaselineConfig = BaselineConfig()) -> dict:
    """Run one baseline; returns the result dictionary (see :class:`~labeldistill.engine.Evaluation`)."""
    if problem.cross_dataset:
        raise ValueError("baselines need true labels: use a within-dataset problem")
    t0 = time.perf_counter()
    batch = cfg.batch_size or protocol.inner_batch_size(problem.n_base, problem.target.name)
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
    target = load_for_arch(s.target, s.arch, data_root=data_root, seed=s.seed, split=s.split, device=device)
    arch = s.arch or default_arch(target.name, target.preprocessing.channels)
    if s.base > len(target.train):
        raise UserError(f"--base {s.base} is more than the {len(target.train)} training images of {target.name}.")
    problem = build_problem(target, s.base, s.seed, select=s.base_select)
    learner = make_learner(arch, int(problem.base_x.shape[1]), int(problem.base_x.shape[-1]), target.num_classes, head=s.head)
    cfg = BaselineConfig(smoothing=s.smoothing, models=s.models, batch_size=s.batch_size, seed=s.seed)
    result = run_baseline(learner, problem, cfg)
    result.update(target=target.name, base=s.base, arch=arch, head=s.head, smoothing=s.smoothing, device=device,
                  settings=dataclasses.asdict(s), versions=versions(), float_settings=floats, base_indices=[int(i) for i in problem.base_index],
                  base_select=problem.base_select, base_sha256=problem.base_sha256)
    return result
