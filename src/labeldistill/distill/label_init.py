"""How the learned labels start (``--label-init``): a registry, one function per start.

``uniform`` (the default, the authors'): every label 1/C -- the labels' own start, so runs are
bit for bit as before. ``onehot``: the base images' true classes (within-dataset only). ``teacher``:
an early-stopped expert's soft labels (:mod:`labeldistill.teacher`), the same labels that
``baseline --labels teacher`` tests under the run's test protocol (same teacher architecture, ZCA,
temperature rule), which the loop then refines with its meta-gradient. ``set``: the labels of another set on the same
images (``--label-set FILE``: a finished run or a distilled-set file, say the mean of two runs' sets,
``labeldistill export RUN_A RUN_B``), to refine further; its content hash is recorded.

A start is computed once, when a run starts (a resumed run's labels come from its checkpoint);
what it was (and the teacher's record) is kept in ``config.json`` and in the distilled set.
Add one with ``@register_label_init("name")`` on ``fn(cfg, problem, *, ledger, progress) -> (labels N x C or None, record)``
(``ledger``: a folder where long evaluations may record finished models, or None; ``progress``: whether long work
may show progress bars).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..problem import Problem
from ..registry import Registry

LabelInit = Callable[..., tuple[torch.Tensor | None, dict]]
LABEL_INITS: Registry[LabelInit] = Registry("label init")


def register_label_init(name: str) -> Callable[[LabelInit], LabelInit]:
    return LABEL_INITS.register(name)


def list_label_inits() -> list[str]:
    return LABEL_INITS.names()


def initial_labels(cfg, problem: Problem, *, ledger: Path | None = None, progress: bool = False) -> tuple[torch.Tensor | None, dict]:
    """The labels a run starts from (None: the labels' own uniform start) and a record of how they were made;
    ``ledger``: a folder (the run directory's) where a teacher's temperature choice keeps its finished models;
    ``progress``: bars over a teacher's training and its choice's students."""
    labels, record = LABEL_INITS.get(cfg.label_init)(cfg, problem, ledger=ledger, progress=progress)
    return labels, {"label_init": cfg.label_init, **record}


@register_label_init("uniform")
def _uniform(cfg, problem: Problem, *, ledger: Path | None = None, progress: bool = False) -> tuple[None, dict]:
    return None, {}


@register_label_init("onehot")
def _onehot(cfg, problem: Problem, *, ledger: Path | None = None, progress: bool = False) -> tuple[torch.Tensor, dict]:
    if problem.cross_dataset:
        raise UserError("--label-init onehot needs the base images' classes in the target: a cross-dataset base set has none "
                        "(use uniform or teacher).")
    return F.one_hot(problem.base_y.to(torch.long), problem.target.num_classes).to(torch.get_default_dtype()), {}


@register_label_init("teacher")
def _teacher(cfg, problem: Problem, *, ledger: Path | None = None, progress: bool = False) -> tuple[torch.Tensor, dict]:
    from ..engine import make_learner
    from ..protocols import get_protocol, target_zca
    from ..teacher import teacher_soft_labels

    t = problem.target
    proto = get_protocol(cfg.test_protocol)
    channels, size = int(problem.base_x.shape[1]), int(problem.base_x.shape[-1])
    zca = target_zca(proto, t, channels)
    student = make_learner(cfg.arch if proto.is_paper else (proto.arch or cfg.arch), channels, size, t.num_classes, head="linear")
    labels, record = teacher_soft_labels(problem, proto=proto, zca=zca, student=student, seed=cfg.seed, arch=cfg.teacher_arch,
                                         epochs=cfg.teacher_epochs, patience=cfg.teacher_patience, temperature=cfg.temperature,
                                         batch=cfg.inner_batch, lr=cfg.model_lr, ledger=ledger, epoch=cfg.teacher_epoch,
                                         progress=progress, recipe=cfg.teacher_recipe, teacher_lr=cfg.teacher_lr)
    return labels, record


@register_label_init("set")
def _set(cfg, problem: Problem, *, ledger: Path | None = None, progress: bool = False) -> tuple[torch.Tensor, dict]:
    from ..artifact import load

    ds = load(cfg.label_set)
    if ds.learned != "labels":
        raise UserError(f"--label-set {cfg.label_set} learned {ds.learned}: a start needs labels learned on real images.")
    x = problem.base_x.detach().cpu()
    if tuple(ds.images.shape) != tuple(x.shape) or not torch.equal(ds.images.cpu().to(x.dtype), x):
        raise UserError(f"--label-set {cfg.label_set} labels other images than this run's base set (its images differ: another "
                        "target, seed, N, selector or preprocessing); only labels of the same images can start it.")
    if ds.num_classes != problem.target.num_classes:
        raise UserError(f"--label-set {cfg.label_set} has {ds.num_classes} classes; {problem.target.name} has {problem.target.num_classes}.")
    return ds.labels.detach().to(problem.base_x.device, torch.get_default_dtype()), {
        "label_set": str(cfg.label_set), "label_set_sha256": ds.content_sha256()}
