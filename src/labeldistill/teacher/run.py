"""The teacher a run started from (``distill --label-init teacher``), with the run's set and target split: for
experiments on a run's base images against its teacher (``studies/``)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifact import DistilledSet, load
from ..data import TargetData
from ..engine import Learner, ModelState
from ..errors import UserError
from ..numerics import float32_precision
from ..problem import run_target
from ..runs import read_json
from .config import TeacherConfig
from .labels import teacher_labels
from .train import train_teacher


@dataclass
class RunTeacher:
    """A teacher-started run's pieces (:func:`run_teacher`): its distilled set (``run``: base images, their labels), its
    target split (``data``), and the teacher its start came from (``learner``, ``state``, ``record``) at the run's
    ``temperature``; ``seed`` is the run's (its split's, and the test models' of its evaluations)."""

    run: DistilledSet
    data: TargetData
    learner: Learner
    state: ModelState
    record: dict
    temperature: float
    seed: int
    float_settings: dict

    def labels(self, x: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """``softmax(teacher(x) / T)`` at the run's temperature, or another."""
        return teacher_labels(self.learner, self.state, x, self.temperature if temperature is None else temperature)


@contextmanager
def run_teacher(run_dir: str | Path, device: str = "cpu", data_root: str | Path | None = None) -> Iterator[RunTeacher]:
    """The teacher a run started from (``distill --label-init teacher``), with the run's set and target split, under the
    run's float settings for the block (the teacher cache's key records them): the same cached teacher, or the same
    teacher trained again where the cache lacks it. For experiments on a run's base images against its teacher
    (``studies/per_view_teacher.py``, ``studies/implicit_labels.py``). A teacher of whitened images is refused
    (it labels whitened views, which these experiments do not make). ``data_root``: where the target is (default: where
    the run found it)."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / "config.json")
    cfg, init = record.get("config") or {}, record.get("label_init") or {}
    if init.get("label_init") != "teacher":
        raise UserError(f"{run_dir} did not start from teacher labels (--label-init teacher): it has no teacher to reuse.")
    if (init["teacher"].get("key") or {}).get("zca") is not None:
        raise UserError(f"{run_dir}'s teacher was trained on whitened images; this helper gives teachers of plain images only.")
    with float32_precision(bool(cfg.get("allow_tf32", False)), bool(cfg.get("deterministic", False))) as floats:
        ds = load(run_dir, device=device)
        root = data_root if data_root is not None else record.get("data_root")
        data = run_target(cfg["target"], root, cfg, int(cfg["seed"]), device, int(ds.images.shape[-1]))
        t_learner, t_state, teacher = train_teacher(data, TeacherConfig(**init["teacher"]["config"]), zca=None)
        yield RunTeacher(ds, data, t_learner, t_state, teacher, float(init["temperature"]), int(cfg["seed"]), floats)
