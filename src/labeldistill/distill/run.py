"""``distill()``: load the data, run the loop in a run directory, test, save the distilled set."""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..artifact import FILE_NAME, DistilledSet, load
from ..data import load_source, load_for_arch
from ..engine import Evaluation, PaperTest, evaluate_labels
from ..errors import UserError
from ..numerics import float32_precision, float_settings
from ..problem import Problem, build_problem
from ..runs import RunLock, atomic_write_json, read_json
from ..runs.ledger import run_ledger
from ..runs.provenance import numerics_of, pin_code_identity, resolve_device, versions
from .config import DistillConfig
from .label_init import initial_labels
from .target_labels import loop_targets
from .loop import CHECKPOINT, Distiller, Interrupted, LoopResult
from .start import START_FILE, StartCandidate, prefer_start, score_start
from ..seeding import derive_seed
from ..teacher import shared_teachers


def prepare(cfg: DistillConfig, *, data_root: str | Path | None = None, download: bool = False) -> tuple[DistillConfig, Problem, str]:
    """Resolve the device, load the target (and source) and pick the base set."""
    device = resolve_device(cfg.device)
    target = load_for_arch(cfg.target, cfg.arch, data_root=data_root, seed=cfg.seed, split=cfg.split, device=device,
                           download=download, target_size=cfg.target_size)
    source = None
    if cfg.source is not None:
        source = load_source(cfg.source, preprocessing=target.preprocessing, data_root=data_root, seed=cfg.seed, device=device, download=download)
    resolved = cfg.resolve(target.name, target.preprocessing.channels)
    n_pool = len(source.images) if source is not None else len(target.train)
    if resolved.base > n_pool:
        raise UserError(f"--base {resolved.base} is more than the {n_pool} images available for the base set.")
    return resolved, build_problem(target, resolved.base, resolved.seed, source, select=resolved.base_select), device


def distill(
    target: str = "mnist",
    *,
    source: str | None = None,
    base: int = 100,
    method: str = "second-order",
    config: DistillConfig | None = None,
    model: Callable[[], nn.Module] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    data_root: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
    **settings: object,
) -> DistilledSet:
    """Learn soft labels for ``base`` images (or the images themselves: ``learn="images"``) so
    that models trained on them do well on ``target``.

    Args:
        target: the target dataset (catalog name, ``npz:FILE``, ``folder:DIR``).
        source: take the base images from this dataset instead (cross-dataset).
        base: number of base examples N.
        method: ``"second-order"`` or ``"ridge"``.
        config: a full :class:`DistillConfig` (then target/source/base/method are ignored).
        model: your own module factory (returns an ``nn.Module`` with ``features`` and ``head``).
        out: run directory (checkpoints, metrics, result.json, the distilled set); None keeps
            nothing on disk.
        resume: continue the run in ``out`` from its last checkpoint.
        settings: any other :class:`DistillConfig` field, e.g. ``epochs=40, seed=1``, or
            ``learn="images"`` / ``"images+labels"`` (the paper's image distillation, Appendix C).
    Returns:
        The :class:`~labeldistill.DistilledSet`; its ``evaluation`` holds the test result.
    Example:
        >>> ds = labeldistill.distill("mnist", base=100, method="ridge", data_root="data", epochs=40)
        >>> ds.evaluation["accuracy_mean"]
    """
    if resume:
        if out is None:
            raise UserError("resume needs the run directory (out=...).")
        cfg = DistillConfig.from_dict(read_json(Path(out) / "config.json")["config"])
    else:
        cfg = config or DistillConfig(target=target, source=source, base=base, method=method)
        cfg = dataclasses.replace(cfg, **settings) if settings else cfg
    return run_distillation(cfg, model=model, out=out, resume=resume, data_root=data_root, download=download, progress=progress)


def run_distillation(cfg: DistillConfig, *, model=None, out=None, resume=False, data_root=None, download=False, progress=True) -> DistilledSet:
    pin_code_identity()  # its records name the code it started with
    cfg.validate()
    with float32_precision(cfg.allow_tf32, cfg.deterministic):
        return _run(cfg, model=model, out=out, resume=resume, data_root=data_root, download=download, progress=progress)


def _run(cfg: DistillConfig, *, model, out, resume, data_root, download, progress) -> DistilledSet:
    done = finished_run(out, resume)
    if done is not None:
        return done
    session = RunSession(cfg, model=model, out=out, resume=resume, data_root=data_root, download=download, progress=progress)
    try:
        try:
            loop = session.distiller.run()
        finally:
            session.distiller.close()
        return session.conclude(loop)
    finally:
        session.release()


class RunSession:
    """One distillation run around its loop: the run directory taken (lock, config.json, metrics log,
    resume checks), the data loaded and the :class:`Distiller` made; after the loop, :meth:`conclude`
    tests the selected set and saves it. ``distill`` runs one; :mod:`.stack` steps several loops together."""

    def __init__(self, cfg: DistillConfig, *, model=None, out=None, resume=False, data_root=None, download=False, progress=True) -> None:
        self.run_dir = run_dir = Path(out) if out is not None else None
        if resume and run_dir is None:
            raise UserError("resume needs the run directory (out=...).")
        self.lock = _lock_run_dir(run_dir, resume)
        try:
            self.resolved, self.problem, self.device = prepare(cfg, data_root=data_root, download=download)
            start = None
            with shared_teachers():  # the labels' start and the loop's targets may ask for one teacher: trained once
                if resume:  # the labels come from the checkpoint; how they started, from config.json
                    old = read_json(run_dir / "config.json")
                    self.label_init = old.get("label_init") or {"label_init": "uniform"}
                else:
                    start, self.label_init = initial_labels(self.resolved, self.problem, progress=progress,
                                                            ledger=None if run_dir is None else run_ledger(run_dir))
                targets, self.target_labels = loop_targets(self.resolved, self.problem, progress=progress)  # again on resume: a cached teacher
                self.distiller = Distiller(self.resolved, self.problem, model_factory=model, run_dir=run_dir, progress=progress,
                                           initial_labels=start, target_labels=targets)
                self.start = self._start_candidate(start, resume)
            if run_dir is not None:
                record = {**_config_record(self.resolved, cfg, self.problem, self.device, data_root, model), "label_init": self.label_init}
                if resume:
                    if old.get("split_sha256") != record["split_sha256"] or old["problem"]["base_indices"] != record["problem"]["base_indices"]:
                        raise UserError(f"The data found now differ from the data {run_dir} was started on; resume with the same --data-root.")
                    _check_same_config(old, self.resolved, run_dir)
                    _record_resume(run_dir, old, record, self.device)
                else:
                    atomic_write_json(run_dir / "config.json", record)
                self.distiller.open_log(resume)
        except BaseException:
            self.release()
            raise

    def _start_candidate(self, start: torch.Tensor | None, resume: bool) -> StartCandidate | None:
        """The start labels scored on validation (``start_candidate``: distill/start.py), once per run: a resumed run
        reads them from its run directory (or, started before they were kept, makes its start again)."""
        cfg, run_dir = self.resolved, self.run_dir
        if cfg.start_candidate != "on":
            return None
        if resume and run_dir is not None and (run_dir / START_FILE).exists():
            return StartCandidate.load(run_dir, self.problem.base_x.device)
        if start is None:
            start, _ = initial_labels(cfg, self.problem, ledger=None if run_dir is None else run_ledger(run_dir),
                                      progress=self.distiller.progress)
        cand = score_start(self.distiller.learner, self.problem, start, seed=cfg.seed, batch=cfg.inner_batch, lr=cfg.model_lr,
                           score=self.distiller.score, models=cfg.validation_models, progress=self.distiller.progress,
                           steps=None if self.distiller.measures_t else self.distiller.monitor.estimate_steps())  # students: no T
        if run_dir is not None:
            cand.save(run_dir)
        return cand

    def release(self) -> None:
        """Let go of the run directory (its writer lock)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def paper_test(self, loop: LoopResult) -> PaperTest | None:
        """What :meth:`conclude`'s test trains, where it is exactly ``evaluate_labels`` of it (the paper's test protocol,
        no label temperature), so that a driver of several runs can train their tests together and hand each its
        :class:`~..engine.Evaluation` (``conclude(loop, evaluation=...)``); None where the test is anything else."""
        r = self.resolved
        if r.test_protocol != "paper" or r.label_temperature != 1.0:
            return None
        loop = self._tested(loop)
        images = loop.images if loop.images is not None else self.problem.base_x
        return PaperTest(self.distiller.learner, images, loop.labels, loop.steps, r.test_models, r.seed, r.inner_batch, r.model_lr)

    def _tested(self, loop: LoopResult) -> LoopResult:
        """The loop's selection, or the start labels at their own T where they validate better."""
        if prefer_start(self.start, self.distiller.selector.best_error):
            assert self.start is not None
            return dataclasses.replace(loop, labels=self.start.labels, steps=self.start.steps)
        return loop

    def conclude(self, loop: LoopResult, evaluation: Evaluation | None = None) -> DistilledSet:
        """Test the loop's selected snapshot (or the start labels, when they validate better) and save the distilled
        set and result.json. ``evaluation``: that test's result, computed already (:meth:`paper_test`)."""
        resolved, problem, distiller, run_dir = self.resolved, self.problem, self.distiller, self.run_dir
        device = self.device
        start_won = prefer_start(self.start, distiller.selector.best_error)
        loop = self._tested(loop)
        t0 = time.perf_counter()
        test = problem.target.test
        # Test models train on the selected snapshot's images when images were learned.
        images = loop.images if loop.images is not None else problem.base_x
        zca = None
        try:
            tempered = _label_temperature(resolved, problem, distiller, images, loop.labels, loop.steps,
                                          ledger=None if run_dir is None else run_ledger(run_dir))
            if tempered is not None:
                loop = dataclasses.replace(loop, labels=tempered[0])
            if resolved.test_protocol == "paper":
                ev = evaluation if evaluation is not None else evaluate_labels(
                    distiller.learner, images, loop.labels, test.x, test.y, steps=loop.steps, models=resolved.test_models,
                    seed=resolved.seed, batch_size=resolved.inner_batch, lr=resolved.model_lr)
            else:
                ev, zca = _test_under_protocol(resolved, problem, images, loop.labels, loop.steps,
                                               ledger=None if run_dir is None else run_ledger(run_dir), progress=distiller.progress)
        except KeyboardInterrupt:
            hint = f" Resume with: labeldistill distill --resume {run_dir}" if run_dir is not None else ""
            raise Interrupted(f"Stopped while testing the selected labels; the loop's final checkpoint is kept.{hint}") from None
        # Students trained the test's way never measured a T for the paper protocol (the loop's is a placeholder): the
        # set and its result say it has none, so no reader trains it for the placeholder's steps.
        set_t = loop.steps if distiller.measures_t else None
        result = ev.to_dict()
        result.update(
            T=set_t, selected_epoch=loop.selected.epoch, resets=loop.resets, T_list=loop.t_list,
            distill_seconds=round(loop.seconds, 2), test_seconds=round(time.perf_counter() - t0, 2),
            seconds=round(loop.seconds + time.perf_counter() - t0, 2), seconds_per_step=round(loop.seconds_per_step, 5),
            method=resolved.method, arch=resolved.arch, head=distiller.strategy.head, base=resolved.base,
            target=problem.target.name, source=resolved.source, seed=resolved.seed, epochs=resolved.epochs, device=device,
            meta_gradient=distiller.strategy.meta_gradient if resolved.method == "second-order" else None,
            learned=resolved.learn, image_init=resolved.image_init,
            versions=versions(), float_settings=float_settings(),
        )
        if resolved.test_protocol != "paper":
            result.update(test_protocol=resolved.test_protocol, test_arch=ev.extra.get("arch"))
        if resolved.select_protocol != "paper":  # the snapshots (and a start candidate) were scored under it
            result["select_protocol"] = resolved.select_protocol
        if distiller.batched_stack:  # steps taken in a batched stack: equal to the run alone up to rounding only
            result["batched_stack"] = distiller.batched_stack
        if resolved.augment != "none":
            result["augment"] = resolved.augment
        if tempered is not None:
            result["label_temperature"] = tempered[1]
        if self.start is not None:  # selected: "start" (the start labels at their own T) or "learned" (the selected snapshot)
            result.update(start_candidate={**self.start.record(), "selected": "start" if start_won else "learned",
                                           "learned_val_accuracy": round(100.0 - distiller.selector.best_error, 4)})
            if start_won:
                result["selected_epoch"] = 0
        initial = distiller.synthetic.initial_images()
        recipe = {"optimizer": "adam", "lr": resolved.model_lr, "batch_size": resolved.inner_batch, "arch": resolved.arch,
                  "head": distiller.strategy.head, "ridge_lambda": resolved.ridge_lambda, "ridge_step": resolved.ridge_step,
                  "scale_lr": resolved.scale_lr, "method": resolved.method, "learned": resolved.learn}
        if resolved.test_protocol != "paper":
            recipe["test_protocol"] = resolved.test_protocol
        ds = DistilledSet(
            images=images.detach().cpu(), labels=loop.labels.detach().cpu(), steps=set_t,
            preprocessing=problem.target.preprocessing, class_names=list(problem.target.class_names),
            recipe=recipe,
            provenance={**_provenance(problem, distiller, resolved.seed), "label_init": self.label_init,
                        **({"target_labels": self.target_labels} if resolved.target_labels != "true" else {})},
            learned=resolved.learn, image_init=resolved.image_init,
            initial_images=None if initial is None else initial.detach().cpu(),
            zca=None if zca is None else zca.to("cpu"),
        )
        return _save_result(ds, result, resolved, run_dir)


def _label_temperature(cfg: DistillConfig, problem: Problem, distiller: Distiller, images, labels, steps: int, *,
                       ledger: Path | None) -> tuple[torch.Tensor, dict] | None:
    """The final labels at ``cfg.label_temperature`` (calibration.py) and a record; None at temperature 1 (untouched).
    ``auto``: one student per grid temperature on the validation split, trained as the final test trains."""
    from ..calibration import choose_label_temperature, temper, validation_scorer

    if cfg.label_temperature == 1.0:
        return None
    if cfg.label_temperature != "auto":
        return temper(labels.detach(), float(cfg.label_temperature)), {"temperature": float(cfg.label_temperature)}
    from ..engine import make_learner
    from ..protocols import get_protocol, target_zca

    proto = get_protocol(cfg.test_protocol)
    channels = int(images.shape[1])
    student = distiller.learner if proto.is_paper else make_learner(proto.arch or cfg.arch, channels, int(images.shape[-1]),
                                                                    problem.target.num_classes, head="linear")
    score = validation_scorer(problem, proto=proto, student=student, seed=derive_seed(cfg.seed, "label-temperature"),
                              batch=cfg.inner_batch, lr=cfg.model_lr, zca=target_zca(proto, problem.target, channels),
                              steps=steps, images=images, ledger=ledger)
    return choose_label_temperature(labels, score)


def _test_under_protocol(cfg: DistillConfig, problem: Problem, images, labels, steps: int, *, ledger: Path | None = None,
                         progress: bool = False):
    """The final test under a non-paper protocol (``cfg.test_protocol``): its architecture (ConvNet-3 for dc /
    dc-dsa), its optimiser, epochs, augmentation and models; ZCA (colour data under dc-dsa) fitted on the
    target's training split and returned, so that the distilled set records it. ``ledger``: where finished test
    models are recorded (the run directory's), so that a run stopped while testing resumes model by model."""
    from ..engine import make_learner
    from ..protocols import evaluate_protocol, get_protocol, require_kornia, target_zca

    proto = get_protocol(cfg.test_protocol)
    channels = int(images.shape[1])
    if proto.uses_zca(channels):
        require_kornia(f"--test-protocol {proto.name}")
    arch = proto.arch or cfg.arch
    learner = make_learner(arch, channels, int(images.shape[-1]), problem.target.num_classes, head="linear")
    zca = target_zca(proto, problem.target, channels)
    test = problem.target.test
    ev = evaluate_protocol(proto, learner, images, labels.detach(), test.x, test.y, steps=steps, seed=cfg.seed,
                           batch_size=cfg.inner_batch, lr=cfg.model_lr, zca=zca, ledger=ledger, progress=progress)
    ev.extra["arch"] = arch
    return ev, zca


def _provenance(problem: Problem, distiller: Distiller, seed: int) -> dict:
    """Where the set comes from. Images learned from uniform noise come from no base image:
    their base indices and labels are None (the run still draws its base set, unused)."""
    prov = {**problem.provenance(), "target": problem.target.name, "base_classes": problem.base_class_names,
            "base_labels": [int(v) for v in problem.base_y.cpu()], "seed": seed, **distiller.synthetic.provenance()}
    if distiller.synthetic.image_init == "uniform":
        prov.update(base_indices=None, base_labels=None)
    return prov


def finished_run(out: str | Path | None, resume: bool) -> DistilledSet | None:
    """A run asked to resume that has finished (its set and ``result.json`` written): its set and result as they are, with
    ``already_finished`` in the returned evaluation (not saved); else None. Resuming it would test it again (from its
    ledger) and write the result anew, replacing the test's time and the finishing code's identity in a finished record."""
    if not resume or out is None:
        return None
    run_dir = Path(out)
    if not ((run_dir / "result.json").is_file() and (run_dir / FILE_NAME).is_file()):
        return None
    ds = load(run_dir)
    ds.evaluation = {**(ds.evaluation or {}), "already_finished": True}
    return ds


def _lock_run_dir(run_dir: Path | None, resume: bool) -> RunLock | None:
    """Check that ``run_dir`` holds a checkpoint exactly when resuming, then take its writer lock
    (None without a run directory). Shared by the label-distillation and DD / SLDD runs."""
    if run_dir is None:
        return None
    if not resume and (run_dir / CHECKPOINT).exists():
        raise UserError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --out.")
    if resume and not (run_dir / CHECKPOINT).exists():
        raise UserError(f"{run_dir} has no checkpoint to resume from.")
    return RunLock(run_dir).acquire()


def _record_resume(run_dir: Path, old: dict, record: dict, device: str, at: dict | None = None) -> None:
    """Continue the run whose config.json is ``old`` with this code (whose record is ``record``): the
    numerics must match, and each resume is recorded (a run finished on another machine or commit says so;
    ``at``, e.g. ``{"iteration": 7723}``, says from where)."""
    _check_same_numerics(old, record, run_dir)
    entry = {"device": device, "versions": record["versions"], "float_settings": record["float_settings"], **(at or {})}
    old["resumes"] = [*old.get("resumes", []), entry]
    atomic_write_json(run_dir / "config.json", old)


def _save_result(ds: DistilledSet, result: dict, resolved, run_dir: Path | None) -> DistilledSet:
    """``ds`` with its test result; with a run directory, the set and result.json (the result with the
    resolved config) saved there."""
    ds.evaluation = result
    if run_dir is not None:
        ds.save(run_dir / FILE_NAME)
        atomic_write_json(run_dir / "result.json", {**result, "config": resolved.to_dict()})
    return ds


# Settings a resumed run may change: where it runs and how often it checkpoints, never what it computes.
RESUME_MAY_CHANGE = ("device", "val_group", "checkpoint_minutes", "cuda_graph")


def _check_same_config(old: dict, resolved: DistillConfig, run_dir: Path) -> None:
    """A run resumes with the configuration it started with (``distill_many`` is handed configs, not read from disk)."""
    was = json.loads(json.dumps(DistillConfig.from_dict(old["config"]).to_dict()))
    now = json.loads(json.dumps(resolved.to_dict()))
    diff = [f"{k}: {was.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(was) | set(now))
            if was.get(k) != now.get(k) and k not in RESUME_MAY_CHANGE]
    if diff:
        raise UserError(f"{run_dir} was started with another configuration ({'; '.join(diff[:3])}); resume it with its own.")


def _check_same_numerics(old: dict, new: dict, run_dir: Path) -> None:
    """A run continues only with the arithmetic it started with (else its result is no one's)."""
    was, now = numerics_of(old), numerics_of(new)
    if was != now:
        commit = (old.get("versions") or {}).get("git_commit") or "an older commit"
        raise UserError(f"{run_dir} was started with numerics version {was} and this code has {now}: finish it with "
                        f"the code it started on ({commit}) or start it again.")


def _config_record(resolved: DistillConfig, given: DistillConfig, problem: Problem, device: str, data_root, model) -> dict:
    split = problem.target.split_record
    return {
        "config": resolved.to_dict(),
        "given": given.to_dict(),
        "device": device,
        "data_root": str(data_root) if data_root is not None else None,
        "custom_model": None if model is None else getattr(model, "__qualname__", repr(model)),
        "versions": versions(),
        "float_settings": float_settings(),
        "problem": {**problem.provenance(), "target": problem.target.name, "class_names": problem.target.class_names,
                    "sizes": {"train": len(problem.target.train), "val": len(problem.target.val), "test": len(problem.target.test)}},
        "preprocessing": problem.target.preprocessing.to_dict(),
        "split_sha256": split.get("sha256"),
        "split": split,
    }
