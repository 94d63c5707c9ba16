"""The one online loop shared by every meta-gradient strategy (paper Algorithm 1).

Per step (:mod:`.step`, device work only): a target minibatch (N_o) and an inner minibatch
of base examples (N_i); the strategy's meta-gradient and an Adam step on what is learned
(``--learn``, :mod:`.learned`: the labels, then clamp + renormalise; or the images, then
clamp to [0, 1]; or both); an Adam step of the persistent model on the base minibatch;
the reset monitor on the target error (reset the model on over-fitting, recording T_i).
The host reads the steps' records in chunks (one synchronisation per chunk, not per
step), replays them through the reference monitor as a check, logs them and keeps a
fresh model ready for the next reset. After every ``val_every`` epochs a snapshot (labels,
and images when learned) is queued for validation (label selection on ``validation_models`` fresh models each, batched). Training always runs all epochs.
Every piece of state lives in :meth:`state_dict`, so a run resumed from any checkpoint
continues exactly as if it had never stopped.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..engine import HeadConfig, Learner, make_learner
from ..errors import UserError
from ..problem import Problem
from ..runs import MetricsLog, StopRequest, load_state, save_state
from ..runs.ledger import run_ledger
from ..seeding import draw_seed, torch_generator
from .augment import loop_augmenter
from .config import DistillConfig, resolve_meta_gradient
from .labels import FixedLabels, Labels
from .learned import SyntheticSet, build_synthetic
from .reset import DeviceResetMonitor, ResetMonitor
from .step import RECORD_FIELDS, MetaStep
from .students import ProtocolStudents
from .strategies import STRATEGIES
from .validation import LabelSelector, PaperScore, ProtocolScore, Score, Snapshot, save_snapshot

CHECKPOINT = "checkpoint.safetensors"
MAX_CHUNK = 25  # steps between host reads of the step records


class NonFiniteError(UserError):
    """Labels or losses became NaN / inf; the last good checkpoint is kept."""


class Interrupted(UserError):
    """Stopped by Ctrl-C or SIGTERM (a scheduler's preemption) after writing a checkpoint."""

    exit_code = 130
    prefix = ""  # a requested stop is not an error: "labeldistill: Stopped at ...; Resume with: ..."


@dataclass
class LoopResult:
    labels: torch.Tensor  # the selected labels
    images: torch.Tensor | None  # the selected images (normalised) when images are learned, else None
    steps: int  # their T
    selected: Snapshot
    seconds: float  # wall time of the loop (validations included)
    seconds_per_step: float  # loop steps only
    resets: int
    t_list: list[int]


class Distiller:
    """Runs the online loop for one resolved :class:`DistillConfig` on one :class:`Problem`.

    Args:
        cfg: a resolved config (``cfg.resolve(...)``).
        problem: target data and base images, on the training device.
        model_factory: optional user module factory (features + head); default ``cfg.arch``.
        run_dir: where checkpoints and the metrics log go (None: keep nothing on disk).
        progress: show a progress bar.
        initial_labels: where the learned labels start (``--label-init``, :mod:`.label_init`); None: uniform.
        target_labels: what the target loss compares with, one row per target training example (``--target-labels``,
            :mod:`.target_labels`: probability vectors); None: the target's class indices.
    """

    def __init__(self, cfg: DistillConfig, problem: Problem, *, model_factory: Callable[[], nn.Module] | None = None,
                 run_dir: str | Path | None = None, progress: bool = True, initial_labels: torch.Tensor | None = None,
                 target_labels: torch.Tensor | None = None) -> None:
        cfg = cfg.with_method_defaults()  # a config given as it is (resolve() has done it otherwise)
        self.cfg, self.problem = cfg, problem
        self.target_labels = target_labels
        t = problem.target
        strategy_cls = STRATEGIES.get(cfg.method)
        self.strategy = strategy_cls.from_config(cfg, inner_lr=cfg.inner_lr, target_scale=cfg.target_scale, horizon=cfg.horizon,
                                                 meta_gradient=resolve_meta_gradient(cfg.meta_gradient, problem.base_x.device))
        c, size = int(problem.base_x.shape[1]), int(problem.base_x.shape[-1])
        head_cfg = HeadConfig(cfg.ridge_lambda, cfg.ridge_step, cfg.scale_lr)
        self.learner: Learner = make_learner(model_factory or cfg.arch, c, size, t.num_classes, head=self.strategy.head, head_config=head_cfg)
        self.device = problem.base_x.device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.n_train = len(t.train)
        self.steps_per_epoch = math.ceil(self.n_train / cfg.target_batch)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        # Independent streams: changing one purpose's draws never shifts another's.
        self.g_target = torch_generator(cfg.seed, "target-batches")
        self.g_inner = torch_generator(cfg.seed, "inner-batches")
        self.g_init = torch_generator(cfg.seed, "model-init")
        self.augmenter = loop_augmenter(cfg.augment, cfg.seed, c, self.device)  # None unless --augment
        self.synthetic: SyntheticSet = build_synthetic(cfg.learn, problem, seed=cfg.seed, image_init=cfg.image_init,
                                                       label_lr=cfg.label_lr, image_lr=cfg.image_lr, device=self.device,
                                                       initial_labels=initial_labels, label_param=cfg.label_param)
        # The persistent model: the paper's young model (Adam, reset on over-fitting), or students trained the test's way
        # (distill/students.py), never reset, for a strategy that learns through them.
        self.students = self._students(c) if self.strategy.persistent == "protocol" else None
        self.model_opt: torch.optim.Optimizer | None = None
        if self.students is None:
            self.model = self.learner.init([draw_seed(self.g_init)], device=self.device)
            self.model_opt = self.learner.optimizer(self.model, cfg.model_lr, capturable=self.device.type == "cuda")
        else:
            self.model = self.students.state
        # The model the next reset switches to, drawn ahead (same seed order as drawing at the reset).
        self.fresh_seed = draw_seed(self.g_init)
        self.monitor = ResetMonitor(cfg.reset_window)
        # A reset is at least 2w + 1 steps after the last one: reading records at least that
        # often leaves time to refill the fresh model before it can be needed again.
        self.chunk = max(1, min(MAX_CHUNK, 2 * cfg.reset_window + 1))
        self.val_group = cfg.val_group or (16 if self.device.type == "cuda" else 4)
        self.selector = LabelSelector(cfg.seed, models=cfg.validation_models)
        self.score = self._selection_score(model_factory, c, size)
        self.epoch = 0  # completed epochs
        self.pos = 0  # steps done in the current epoch
        self.step = 0  # steps done in all
        self.perm: torch.Tensor | None = None  # the current epoch's order of target examples
        self.inner_rows: torch.Tensor | None = None  # the current epoch's inner minibatches (steps x N_i)
        self._epoch_on_device: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, record) not yet read
        self._stepper: MetaStep | None = None
        self.loop_seconds = 0.0
        self.total_seconds = 0.0
        self.last_val: float | None = None
        self._base_seconds = 0.0  # wall time of earlier sessions of a resumed run
        self.log: MetricsLog | None = None
        self._stop = StopRequest()  # Ctrl-C / SIGTERM: checkpoint at the next step, then stop
        # A driver of several runs (:mod:`.stack`) sets this: a due validation then waits (``validation_due``) until the
        # driver has scored it together with the other runs' and calls :meth:`complete_validation`.
        self.defer_validation = False
        self.validation_due = False
        # The most runs this run shared a batched step with (distill/batched.py; 0: never): its numbers then equal the
        # run alone up to rounding only, so the run records it (result.json "batched_stack").
        self.batched_stack = 0

    def _students(self, channels: int) -> ProtocolStudents:
        from ..protocols import get_protocol, target_zca

        proto, cfg = get_protocol(self.cfg.test_protocol), self.cfg
        return ProtocolStudents(self.learner, proto, channels=channels, n_base=self.problem.n_base, seed=cfg.seed,
                                students=cfg.students, follow_epochs=cfg.follow_epochs, first_epochs=cfg.student_epochs,
                                refresh_every=cfg.refresh_every, last_step=self.total_steps, progress=self.progress,
                                zca=target_zca(proto, self.problem.target, channels), device=self.device)

    @property
    def resets(self) -> bool:
        """Whether the persistent model is reset on over-fitting (the paper's; never for students)."""
        return self.students is None

    @property
    def measures_t(self) -> bool:
        """Whether the loop measures a T for the paper protocol (its reset monitor's); students trained the test's way
        never step by it, so their sets have none (the snapshots' T is a placeholder)."""
        return self.students is None

    @property
    def labels(self) -> Labels | FixedLabels:
        """The labels of the synthetic set (learned :class:`Labels`, or fixed one-hot ones when images are learned)."""
        return self.synthetic.labels  # type: ignore[return-value]

    # -- steps ---------------------------------------------------------------------------
    def _start_epoch(self) -> None:
        """Draw the epoch's target order and inner minibatches (the same streams as drawing per step)."""
        cfg, n_base = self.cfg, self.problem.n_base
        self.perm = torch.randperm(self.n_train, generator=self.g_target)
        self.inner_rows = torch.stack([torch.randperm(n_base, generator=self.g_inner)[: cfg.inner_batch] for _ in range(self.steps_per_epoch)])
        self._epoch_on_device = None

    def _build_stepper(self) -> MetaStep:
        fresh = self.learner.init([self.fresh_seed], device=self.device) if self.resets else None
        monitor = DeviceResetMonitor(self.cfg.reset_window, self.device)
        monitor.load(self.monitor)
        return MetaStep(strategy=self.strategy, learner=self.learner, model=self.model, model_opt=self.model_opt, synthetic=self.synthetic,
                        monitor=monitor, fresh=fresh, problem=self.problem, full_batch=self.cfg.target_batch,
                        cuda_graph=self.cfg.cuda_graph, augment=self.augmenter, target_labels=self.target_labels, students=self.students)

    def _one_step(self) -> None:
        assert self._stepper is not None
        self.take_record(self._stepper(*self.step_inputs()))

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next step's target rows and inner rows (on the device)."""
        cfg = self.cfg
        assert self.perm is not None and self.inner_rows is not None
        if self._epoch_on_device is None:
            self._epoch_on_device = (self.perm.to(self.device), self.inner_rows.to(self.device))
        perm, inner = self._epoch_on_device
        return perm[self.pos * cfg.target_batch : (self.pos + 1) * cfg.target_batch], inner[self.pos]

    def take_record(self, record: torch.Tensor) -> None:
        """Queue the record of the step just taken (read on the host at the next flush)."""
        self._pending.append((self.step + 1, self.epoch + 1, record))

    def _flush(self) -> None:
        """Read the queued step records (one host synchronisation), check and log them."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = torch.stack([r for _, _, r in pending]).tolist()
        f = {name: i for i, name in enumerate(RECORD_FIELDS)}
        for (step, epoch, _), v in zip(pending, values):
            if not v[f["finite"]]:
                raise NonFiniteError(
                    f"Non-finite loss or label gradient at step {step}; stopped without saving it. "
                    "The last good checkpoint is kept: lower --label-lr / --model-lr, then resume."
                )
            error, loss = v[f["error"]], v[f["loss"]]
            rec: dict = {"kind": "step", "step": step, "epoch": epoch, "error": round(error, 4), "loss": round(loss, 6)}
            if self.cfg.grad_var_every and step % self.cfg.grad_var_every == 0:
                rec["grad_var"] = v[f["grad_var"]]
            reset = self.monitor.update(error) if self.resets else False
            if reset != bool(v[f["reset"]]) or (reset and self.monitor.t_list[-1] != int(v[f["T_i"]])):
                raise RuntimeError(f"internal error: device and host reset monitors disagree at step {step}")
            if reset:
                rec["reset"], rec["T_i"] = True, self.monitor.t_list[-1]
                self.fresh_seed = draw_seed(self.g_init)
                assert self._stepper is not None
                self._stepper.refill(self.learner.init([self.fresh_seed], device=self.device))
            self._write(rec)

    # -- the loop -----------------------------------------------------------------------
    def run(self, on_epoch: Callable[[Distiller], None] | None = None) -> LoopResult:
        """Run the remaining epochs, validate, and return the selected labels.

        Args:
            on_epoch: called with this distiller after each epoch (its records read, any
                validation and checkpoint done), e.g. to record the labels' trajectory.
        """
        try:
            with self._stop:
                self.start()
                while self.advance(on_epoch):
                    pass
                return self.finish()
        finally:
            self.close_bar()

    # The loop in three parts, so that a driver can step several runs in lockstep (:mod:`.stack`):
    # ``start``, then ``advance`` until it returns False, then ``finish``. ``run`` is exactly that.
    def start(self, *, bar: bool = True) -> None:
        """Begin this session of the loop (a new run, or a resumed one): its clocks, progress bar and step function."""
        self._t_start = time.perf_counter()
        self._last_ckpt = time.monotonic()
        self._bar = tqdm(total=self.total_steps, initial=self.step, disable=not (self.progress and bar), desc=f"distill {self.cfg.method}",
                         unit="step", dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30.0)
        self._stepper = self._build_stepper()
        if self.students is not None and not self.students.trained:  # their first, whole training, on the start labels
            self.students.train_first(self.problem.base_x, self.synthetic.labels.seen(), progress=self.progress and bar)
            self.save_now()  # minutes of work: kept before the first step

    def advance(self, on_epoch: Callable[[Distiller], None] | None = None) -> bool:
        """Take one step (and after an epoch's last step, the epoch's snapshot, validation and
        checkpoint); False, doing nothing, once every epoch is done. In three parts, so that a driver of several
        runs can take the step itself: :meth:`begin_step`, the step (:meth:`step_inputs`, :meth:`take_record`),
        :meth:`end_step`."""
        if not self.begin_step(on_epoch):
            return False
        t0 = time.perf_counter()
        self._one_step()
        self.end_step(t0, on_epoch)
        return True

    def begin_step(self, on_epoch: Callable[[Distiller], None] | None = None) -> bool:
        """Before a step: finish an epoch left open by a checkpoint, start the next one; False once every epoch is done."""
        if self.pos >= self.steps_per_epoch:  # a checkpoint taken after an epoch's last step, before its end
            self._end_epoch(on_epoch)
        if self.epoch >= self.cfg.epochs:
            return False
        if self.perm is None or self.inner_rows is None:
            self._start_epoch()
        return True

    def end_step(self, t0: float, on_epoch: Callable[[Distiller], None] | None = None) -> None:
        """After a step (begun at ``t0``): count it, read the records in chunks, checkpoint when due or asked, end the epoch."""
        cfg = self.cfg
        self.pos += 1
        self.step += 1
        if len(self._pending) >= self.chunk or self.pos == self.steps_per_epoch:
            self._flush()
            self._postfix(self._bar)
        self.loop_seconds += time.perf_counter() - t0
        self._bar.update(1)
        if self._stop.requested:
            self.save_now()
            raise Interrupted(f"Stopped at step {self.step}; checkpoint written. Resume with: labeldistill distill --resume {self.run_dir}")
        if self.run_dir is not None and time.monotonic() - self._last_ckpt > 60 * cfg.checkpoint_minutes:
            self.save_now()
        if self.pos == self.steps_per_epoch:
            self._end_epoch(on_epoch)

    def _end_epoch(self, on_epoch: Callable[[Distiller], None] | None) -> None:
        cfg = self.cfg
        self.epoch += 1
        self.pos, self.perm, self.inner_rows = 0, None, None
        if self.epoch % cfg.val_every == 0:
            self._snapshot()
            if len(self.selector.pending) >= self.val_group:
                if self.defer_validation:
                    self.validation_due = True  # complete_validation validates and checkpoints
                else:
                    self._validate()
            if not self.validation_due:
                self.save_now()
        if on_epoch is not None:
            on_epoch(self)

    def complete_validation(self, accuracies: torch.Tensor) -> None:
        """Take the pending snapshots' validation ``accuracies`` (as ``self.score`` would give them, computed by a
        driver together with other runs') and, when the validation was due at an epoch's end, checkpoint as then."""
        self._validate(lambda snaps, models: accuracies)
        if self.validation_due:
            self.validation_due = False
            self.save_now()

    def save_now(self) -> None:
        """Read the queued step records and write a checkpoint (with a run directory)."""
        self._flush()
        self.checkpoint(time.perf_counter() - self._t_start)
        self._last_ckpt = time.monotonic()

    def finish(self) -> LoopResult:
        """After the last step: validate what is left, write the final checkpoint, return the selection."""
        if self.selector.best is None and not self.selector.pending:  # fewer epochs than val_every
            self._snapshot()
        self._validate()
        self._postfix(self._bar)
        self.save_now()
        self.close_bar()
        best = self.selector.best
        assert best is not None
        return LoopResult(best.labels, best.images, best.steps_t, best, self.total_seconds, self.loop_seconds / max(1, self.step),
                          self.monitor.resets, list(self.monitor.t_list))

    def close_bar(self) -> None:
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.close()

    def _snapshot(self) -> None:
        """Queue the current labels (and images, when learned) with the current T for validation."""
        syn = self.synthetic
        self.selector.add(self.epoch, self.step, self.monitor.estimate_steps(), syn.labels.seen(), images=syn.images.snapshot())

    def _selection_score(self, model_factory, channels: int, size: int) -> Score:
        """How snapshots are scored: the paper's (models of the loop's own architecture and head, trained T steps), or
        under a fixed-epoch ``select_protocol``, students of that protocol (its architecture, else the loop's)."""
        from ..protocols import get_protocol, target_zca

        proto, t, cfg = get_protocol(self.cfg.select_protocol), self.problem.target, self.cfg
        if proto.is_paper:
            return PaperScore(self.learner, self.problem.base_x, t.val.x, t.val.y, seed=cfg.seed, batch_size=cfg.inner_batch,
                              lr=cfg.model_lr)
        student = make_learner(proto.arch or model_factory or cfg.arch, channels, size, t.num_classes, head="linear")
        return ProtocolScore(student, self.problem.base_x, t.val.x, t.val.y, seed=cfg.seed, batch_size=cfg.inner_batch,
                             lr=cfg.model_lr, protocol=proto, zca=target_zca(proto, t, channels),
                             ledger=None if self.run_dir is None else run_ledger(self.run_dir), progress=self.progress)

    def _validate(self, score: Score | None = None) -> None:
        if self.run_dir is not None:  # every validated snapshot, for later study (re-selection, trajectories)
            for snap in self.selector.pending:
                save_snapshot(self.run_dir, snap)
        for rec in self.selector.flush(score or self.score):
            self.last_val = rec["val_accuracy"]
            self._write(rec)

    def _postfix(self, bar: tqdm) -> None:
        ma = self.monitor.moving_average
        bar.set_postfix(
            acc=f"{100 - ma:.1f}" if ma is not None else "-", resets=self.monitor.resets,
            val=f"{self.last_val:.1f}" if self.last_val is not None else "-", refresh=False,
        )

    def _write(self, rec: dict) -> None:
        if self.log is not None:
            self.log.write(rec)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format_version": 1,
            **self.synthetic.state_dict(),  # labels (and their Adam) and / or images (and theirs), as learned
            **({"model": {"params": self.model.params, "buffers": self.model.buffers, "head": self.model.head},
                "model_opt": self.model_opt.state_dict()} if self.students is None else {"students": self.students.state_dict()}),
            "generators": {"target": self.g_target.get_state(), "inner": self.g_inner.get_state(), "init": self.g_init.get_state(),
                           **({"augment": self.augmenter.state_dict()} if self.augmenter is not None else {})},
            "perm": self.perm, "inner_rows": self.inner_rows, "fresh_seed": self.fresh_seed, "epoch": self.epoch, "pos": self.pos, "step": self.step,
            "monitor": self.monitor.state_dict(), "selector": self.selector.state_dict(),
            "loop_seconds": self.loop_seconds, "total_seconds": self.total_seconds, "last_val": self.last_val,
            "batched_stack": self.batched_stack,
        }

    def load_state_dict(self, s: dict) -> None:
        self.synthetic.load_state_dict(s)
        if self.students is not None:
            self.students.load_state_dict(s["students"])
        else:
            self.model.copy_(s["model"]["params"], s["model"]["buffers"], s["model"]["head"])
            self.model_opt = self.learner.optimizer(self.model, self.cfg.model_lr, capturable=self.device.type == "cuda")
            self.model_opt.load_state_dict(s["model_opt"])
        # load_state_dict restores the saving machine's options: a run started on a GPU and resumed on
        # a CPU (or back) needs this machine's capturable setting.
        for opt in (*self.synthetic.optimizers(), *([self.model_opt] if self.model_opt is not None else [])):
            for group in opt.param_groups:
                group["capturable"] = self.device.type == "cuda"
        for name, g in (("target", self.g_target), ("inner", self.g_inner), ("init", self.g_init)):
            g.set_state(s["generators"][name].to(torch.uint8).cpu())
        if self.augmenter is not None:
            self.augmenter.load_state_dict(s["generators"]["augment"])
        self.perm = s["perm"].cpu() if s["perm"] is not None else None
        self.epoch, self.pos, self.step = int(s["epoch"]), int(s["pos"]), int(s["step"])
        # Checkpoints of format 1 drew inner minibatches and the next reset's seed lazily;
        # drawing them now from the restored generators gives the same values.
        self.fresh_seed = int(s["fresh_seed"]) if s.get("fresh_seed") is not None else draw_seed(self.g_init)
        if s.get("inner_rows") is not None:
            self.inner_rows = s["inner_rows"].cpu()
        elif self.perm is not None:
            rest = [torch.randperm(self.problem.n_base, generator=self.g_inner)[: self.cfg.inner_batch] for _ in range(self.steps_per_epoch - self.pos)]
            self.inner_rows = torch.cat([torch.zeros(self.pos, self.cfg.inner_batch, dtype=torch.long), torch.stack(rest)])
        self.monitor = ResetMonitor.from_state(s["monitor"])
        self.selector = LabelSelector.from_state(s["selector"], self.device)
        if self.selector.models != self.cfg.validation_models:
            raise UserError(f"The checkpoint validates each label snapshot with {self.selector.models} model(s), the config with "
                            f"{self.cfg.validation_models}; resume with the run's own config (validation_models = {self.selector.models}).")
        self.loop_seconds, self.total_seconds, self.last_val = s["loop_seconds"], s["total_seconds"], s["last_val"]
        self.batched_stack = int(s.get("batched_stack", 0))

    def checkpoint(self, session_seconds: float) -> None:
        """Record the wall time so far and, with a run directory, write the checkpoint atomically."""
        self.total_seconds = self._base_seconds + session_seconds
        if self.run_dir is None:
            return
        state = self.state_dict()
        state["metrics_offset"] = self.log.flush() if self.log is not None else 0
        save_state(self.run_dir / CHECKPOINT, state)

    def open_log(self, resume: bool) -> None:
        """Open the metrics log; on resume, restore the checkpoint and truncate the log to it."""
        assert self.run_dir is not None
        offset = None
        if resume:
            s = load_state(self.run_dir / CHECKPOINT, device=self.device)
            self.load_state_dict(s)
            offset = int(s["metrics_offset"])
            self._base_seconds = self.total_seconds
        self.log = MetricsLog(self.run_dir / "metrics.jsonl", resume_offset=offset)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

