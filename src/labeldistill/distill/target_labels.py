"""What the loop's target loss compares with (``--target-labels``), beyond the paper.

``true`` (the default, the paper's): the target's class indices, so runs are bit for bit as before. ``teacher``: an
early-stopped expert's probabilities on the target's training images at ``--target-temperature`` (the
knowledge-distillation target): each step then asks that a model trained on the base set predict what the teacher
predicts on a target minibatch, all its classes, not only the true one. The teacher is the one ``--label-init
teacher`` trains (the same architecture rule, cache and seed; :mod:`labeldistill.teacher`), on the images as the loop
sees them. Computed once when a run starts or resumes (a cached teacher gives the same numbers again); validation and
the test still score against the true classes.
"""
from __future__ import annotations

import torch

from ..problem import Problem


def loop_targets(cfg, problem: Problem, *, progress: bool = False) -> tuple[torch.Tensor | None, dict]:
    """The target labels of the loop's steps (None: the target's class indices) and a record of how they were made
    (``progress``: a bar over the teacher's training)."""
    if cfg.target_labels == "true":
        return None, {"target_labels": "true"}
    from ..teacher import default_teacher_arch, teacher_config, teacher_labels, train_teacher

    t = problem.target
    arch = cfg.teacher_arch or default_teacher_arch(t.name, t.preprocessing.channels, int(t.train.x.shape[-1]))
    learner, state, record = train_teacher(t, teacher_config(arch, seed=cfg.seed, epochs=cfg.teacher_epochs, patience=cfg.teacher_patience,
                                                             recipe=cfg.teacher_recipe, lr=cfg.teacher_lr), progress=progress)
    probs = teacher_labels(learner, state, t.train.x, float(cfg.target_temperature)).to(t.train.x.device)
    agree = float((probs.argmax(-1) == t.train.y).float().mean())
    return probs, {"target_labels": "teacher", "temperature": float(cfg.target_temperature), "teacher": record,
                   "argmax_agrees_with_true_classes": round(agree, 6)}
