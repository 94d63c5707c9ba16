"""Teacher soft labels: an early-stopped expert labels the base images (Qin et al. 2024).

A model trained on the target's whole training split, early-stopped on the validation split
(the "early-stopped expert" of Qin et al., "A Label is Worth a Thousand Images in Dataset
Distillation"), labels the base images with ``softmax(logits / temperature)``. The teacher is
cached per (target and split, architecture, seed, numerics, training settings), so every run of
one seed shares it. The temperature is given, or chosen on the validation split
(``temperature="auto"``): for each of :data:`TEMPERATURES` one student trains on the base images
with those labels the way the final test will (the paper protocol's step search, or the dc /
dc-dsa protocol's fixed epochs), and the labels of the best validation accuracy are kept.

Used by ``baseline --labels teacher`` and by ``distill --label-init teacher`` (the loop then
refines the same labels the teacher baseline tests). The parts:

- :mod:`.config`: how a teacher trains (:class:`TeacherConfig`, the named recipes, the early-stop rule, the default
  architecture, the epochs that may label);
- :mod:`.cache`: the cache files (keys, headers, partial and finished trainings a longer teacher goes on from);
- :mod:`.train`: the training itself, resumable epoch by epoch;
- :mod:`.labels`: the soft labels, with the temperature and labelling epoch chosen by students;
- :mod:`.run`: the teacher a finished run started from.
"""
from ..calibration import TEMPERATURES, choose_temperature, grid_edge, parse_temperature
from .cache import FINAL, PARTIAL, shared_teachers, teacher_cache_dir, trained_epochs
from .config import (TEACHER_EPOCHS, TEACHER_RECIPES, TeacherConfig, check_teacher_recipe, default_teacher_arch,
                     parse_teacher_epoch, teacher_config)
from .labels import teacher_labels, teacher_soft_labels
from .run import RunTeacher, run_teacher
from .train import train_teacher, train_teacher_epochs

__all__ = [
    "FINAL", "PARTIAL", "TEACHER_EPOCHS", "TEACHER_RECIPES", "TEMPERATURES", "RunTeacher", "TeacherConfig",
    "check_teacher_recipe", "choose_temperature", "default_teacher_arch", "grid_edge", "parse_teacher_epoch",
    "parse_temperature", "run_teacher", "shared_teachers", "teacher_cache_dir", "teacher_config", "teacher_labels",
    "teacher_soft_labels", "train_teacher", "train_teacher_epochs", "trained_epochs",
]
