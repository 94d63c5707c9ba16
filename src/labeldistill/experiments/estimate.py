"""The time model of ``reproduce --dry-run``: what a plan's run, its test and its teacher are estimated to cost on
this project's 2-core CPU, from per-step figures measured here (``docs/benchmarks.md``, "reproduce --dry-run's time
model"), and the order in which units of work go to workers. Estimates only: nothing here runs anything."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from .. import paper_defaults
from ..lrsearch import SEARCH_MODELS, SGD_LRS
from ..protocols import get_protocol
from ..runs.metrics import last_epoch
from .plan import TEST_MODELS, DataView, Plan

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
# --teacher-epoch auto: a student for each of 1, 2, 4, 8 and the best epoch (MNIST's LeNet: 12, CIFAR-10's AlexCifarNet:
# 11), the best epoch's already trained for the temperature; then the temperature again at a chosen early epoch.
EPOCH_STUDENTS = 4 + TEMPERATURE_STUDENTS - 1


def teacher_students(cfg) -> int:
    """Validation students a teacher's labels cost: the temperature choice's, and the epoch choice's."""
    return TEMPERATURE_STUDENTS + (EPOCH_STUDENTS if getattr(cfg, "teacher_epoch", "best") == "auto" else 0)


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
        """Epochs of the plan's teacher still to train (0: nothing, it is cached or counted above; a shorter teacher it
        goes on from, cached or counted above, pays for its epochs); None where neither the cache nor the estimate holds
        any of it."""
        from ..teacher import trained_epochs

        target, teacher = plan.cell.target, _teacher_of(plan)
        if (target, teacher) in self.counted:
            return 0
        shorter = max((t.epochs for g, t in self.counted if g == target and _goes_on_from(t, teacher)), default=0)
        self.counted.add((target, teacher))
        cached, trained = trained_epochs(self.folder, target, teacher)
        trained = max(trained, shorter)
        return 0 if cached else (max(0, teacher.epochs - trained) if trained else None)

    def choose(self, plan: Plan) -> bool:
        """Whether the plan's choice of its teacher's labels (temperature, epoch) is still to be paid: not paid by a row
        above (finished, or counted in this estimate) with the same teacher, protocol and choice, whose students the model
        ledgers beside it then give (rundirs.sibling_ledgers). Marks it paid."""
        key = _choice_key(plan)
        if key in self.chosen:
            return False
        self.chosen.add(key)
        return True

    def paid(self, plan: Plan) -> None:
        """A row with nothing left to run (finished, or stored): its teacher-label choice, if it made one, is paid."""
        if "teacher" in (getattr(plan.config, "labels", None), getattr(plan.config, "label_init", None)):
            self.choose(plan)


def _goes_on_from(shorter, teacher) -> bool:
    """Whether ``teacher`` goes on from ``shorter`` (both :class:`~labeldistill.teacher.TeacherConfig`) once that one has
    trained, as the teacher cache lets it (``teacher.cache._goes_on_from``): every setting but the length the same, fewer
    epochs, and neither stopped early (patience at least the epochs: the ConvNet-3 expert rows)."""
    return (dataclasses.replace(shorter, epochs=teacher.epochs, patience=teacher.patience) == teacher
            and shorter.epochs < teacher.epochs and shorter.patience >= shorter.epochs and teacher.patience >= teacher.epochs)


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
    """Estimated seconds still to spend on the plan's run in ``state`` (``rundirs.run_state``'s), and the epochs
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
