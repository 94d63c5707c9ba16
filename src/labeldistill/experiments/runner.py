"""Compute cells: reuse finished runs, resume interrupted ones, store one JSON per finished cell.

State on disk (``OUT`` = ``--out``)::

    OUT/runs/<run slug>/     a ``distill`` (label / image / DD / SLDD), ``baseline`` or ``mean`` (of other runs' label
                             sets: experiments/means.py) run directory (config.json, result.json, ...; machine.json: the
                             machine(s) reproduce ran it on)
    OUT/cells/<cell slug>.json   one finished cell: its run directory, configuration and result

A cell whose JSON is present (and matches what the cell would run now) is never recomputed.
A run directory with ``result.json``, the same resolved configuration and the current numerics
version (:mod:`labeldistill.numerics`) is reused, whoever made it (``reproduce``, ``labeldistill
distill --out ...`` or ``labeldistill baseline --out ...``); one with a checkpoint but no result is
resumed. A run of another numerics version is moved aside (``<dir>.numerics-<v>``) and run again,
unless ``--reuse-any-version`` lets a finished one count (its cells are then marked). A run directory holding another configuration
is left alone and the cell is reported as a conflict.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..baselines import baseline
from ..distill import run_distillation
from ..distill.extend import check_extension, extend_run
from ..distill.loop import CHECKPOINT, Interrupted
from ..errors import ArtifactError, UserError
from ..numerics import NUMERICS_VERSION
from ..evaluation import evaluate, label_evaluation_file, parse_steps
from ..runs import atomic_write_json, read_json
from ..runs.ledger import RUN_LEDGER, evaluation_ledger, evaluations_dir, ledger_sources, run_ledger
from ..runs.provenance import numerics_of
from ..selectors import selection_cache
from ..unrolled import is_unrolled_record, run_unrolled
from . import estimate as _estimate
from . import means as _means
from . import plan as _plan
from .machine import record_machine
from .plan import (Options, Plan, config_diff, normalise_baseline, normalise_config, normalise_distill, normalise_mean,
                   normalise_unrolled)

RESULT_KEYS = ("accuracy_mean", "accuracy_std", "accuracies", "models", "steps", "T", "seconds", "arch", "head",
               "steps_delta", "distilled_steps", "target", "method", "base", "source", "seed", "epochs", "smoothing",
               "learned", "image_init", "variant", "optimizer", "lr", "order", "std", "moving_steps", "lrs", "distill_seconds", "test_seconds", "device")


class RunConflict(UserError):
    """A run directory holds a run with another configuration."""


@dataclass
class Outcome:
    cell: str
    status: str  # "done" | "missing" | "failed" | "conflict" | "not run"
    action: str = ""  # "stored cell" | "reused run" | "resumed run" | "ran" (+ ", evaluated")
    record: dict | None = None  # the cell JSON when done
    message: str = ""
    plan: Plan | None = None

    @property
    def done(self) -> bool:
        return self.status == "done"


# ---- reading what is on disk -------------------------------------------------------------------

def _read(path: Path) -> dict | None:
    try:
        obj = read_json(path)
    except ArtifactError:
        return None
    return obj if isinstance(obj, dict) else None


def stored_config(plan: Plan, run_dir: Path) -> dict | None:
    """The normalised resolved configuration stored in a run directory (None if none)."""
    if plan.kind == "unrolled":  # a DD / SLDD run's config.json is not a DistillConfig: recognise it first
        for name in ("config.json", "result.json"):
            rec = _read(run_dir / name)
            if rec is not None and is_unrolled_record(rec):
                return normalise_unrolled(rec["config"])
        return None
    if plan.kind == "mean":
        rec = _read(run_dir / "config.json") or {}
        cfg = rec.get("config") if rec.get("format") == _means.FORMAT else None
        return normalise_mean(cfg) if isinstance(cfg, dict) else None
    if plan.kind == "distill":
        rec = _read(run_dir / "config.json") or {}
        if is_unrolled_record(rec):
            return {"method": rec.get("method"), "unrolled": "a DD / SLDD run"}  # never equal to a DistillConfig
        rec = rec or _read(run_dir / "result.json") or {}
        cfg = rec.get("config")
        return normalise_distill(cfg) if isinstance(cfg, dict) else None
    res = _read(run_dir / "result.json") or {}
    settings = res.get("settings")
    if not isinstance(settings, dict):
        return None
    return normalise_baseline({**settings, "arch": res.get("arch") or settings.get("arch")})


def run_record(plan: Plan, run_dir: Path) -> dict:
    """The record that says which code made a run: config.json (distill, DD / SLDD, mean) or result.json (baseline)."""
    if plan.kind in ("distill", "unrolled", "mean"):
        return _read(run_dir / "config.json") or {}
    return _read(run_dir / "result.json") or {}


# What a run directory holds when its run stopped before writing config.json: the lock, reproduce's machine note and
# the finished models of its start (a teacher's temperature choice), which the run, started again, finds there. A mean's
# directory holds the first two while its parts are made.
_STARTED_ONLY = {".lock", "machine.json", RUN_LEDGER}


def run_state(plan: Plan, out: Path, reuse_any_version: bool = False) -> tuple[str, str]:
    """("finished" | "resume" | "extend" | "new" | "stale" | "conflict", detail) of the plan's run directory.

    "stale": the run (finished or not) was made with another numerics version; it is not reused
    (unless ``reuse_any_version`` and it is finished) but moved aside and the cell is run again.
    "extend": no run yet, but another cell's run in ``out`` is this one with fewer epochs (detail: its directory),
    which ``distill --extend`` continues exactly (:func:`shorter_run`)."""
    run_dir = plan.run_dir(out)
    if not run_dir.exists() or not any(p.name != ".lock" for p in run_dir.iterdir()):
        shorter = shorter_run(plan, out) if plan.kind == "distill" else None
        return ("extend", str(shorter)) if shorter is not None else ("new", "")
    stored = stored_config(plan, run_dir)
    has_result = (run_dir / "result.json").exists()
    if stored is None:
        if plan.kind == "baseline" and not has_result:
            return "new", ""  # a baseline interrupted before it wrote anything: start again
        if {p.name for p in run_dir.iterdir()} <= _STARTED_ONLY:
            # any kind stopped before its configuration was written (a teacher start's temperature choice; a mean's
            # parts, which it makes first): start again
            return "new", ""
        return "conflict", f"{run_dir} is not a run directory of this kind (no readable configuration)"
    diff = config_diff(plan.expected_config(), stored)
    if diff:
        return "conflict", f"{run_dir} holds a run with another configuration ({'; '.join(diff[:3])})"
    version = numerics_of(run_record(plan, run_dir))
    if version != NUMERICS_VERSION and not (reuse_any_version and has_result):
        return "stale", f"made with numerics version {version} (this code: {NUMERICS_VERSION})"
    if has_result and plan.kind == "mean" and _means.changed_parts(plan, out):
        return "new", ""  # a part's run was made again since: the mean of the sets as they are now (and its test)
    if has_result:
        return "finished", ""
    if plan.kind in ("distill", "unrolled") and (run_dir / CHECKPOINT).exists():
        return "resume", ""
    return "new", ""


def shorter_run(plan: Plan, out: Path) -> Path | None:
    """The run in ``out`` (another cell's: a row of one epoch for a row of two) of this distillation cell's configuration
    but fewer epochs (and any ``val_every``), of this numerics version, that continued to this cell's epochs equals
    this cell's run (:func:`~labeldistill.distill.extend.check_extension`); the longest such, or None."""
    want = plan.expected_config()
    found: tuple[int, Path] | None = None
    for config_file in sorted((Path(out) / "runs").glob("*/config.json")):
        run_dir = config_file.parent
        stored = stored_config(plan, run_dir)
        epochs = (stored or {}).get("epochs")
        if (stored is None or not isinstance(epochs, int) or epochs >= want["epochs"] or run_dir == plan.run_dir(out)
                or config_diff({**want, "epochs": epochs, "val_every": stored.get("val_every")}, stored)
                or numerics_of(run_record(plan, run_dir)) != NUMERICS_VERSION or (found is not None and epochs <= found[0])):
            continue
        try:
            check_extension(run_dir, epochs=want["epochs"], val_every=want["val_every"])
        except (UserError, ArtifactError):
            continue
        found = (epochs, run_dir)
    return None if found is None else found[1]


def unit_seconds(plans: list[Plan], opts: Options, data: _plan.DataView) -> float:
    """Estimated seconds still to spend on one unit of work (plans sharing a run directory, or a stack
    of runs), the dry run's estimate: each distinct run once, as far as it is still to go (a finished
    run reused, a resumed one what is left of its loop), plus every plan's evaluation."""
    runs: dict[str, float] = {}
    for plan in plans:
        if plan.run_slug not in runs:
            state, detail = run_state(plan, opts.out, opts.reuse_any_version)
            runs[plan.run_slug] = _estimate.remaining_run_seconds(plan, data, *progress_of(plan, opts, state, detail))[0]
    return sum(runs.values()) + sum(_estimate.evaluation_seconds(plan) for plan in plans)


def progress_of(plan: Plan, opts: Options, state: str, detail: str) -> tuple[str, Path]:
    """(state, run directory) to estimate a run's remaining time from: an extension goes on where its source stands."""
    return ("resume", Path(detail)) if state == "extend" else (state, plan.run_dir(opts.out))


def set_aside(run_dir: Path, version: int | None) -> Path:
    """Move a run of another numerics version out of the way (nothing is deleted)."""
    base = run_dir.with_name(f"{run_dir.name}.numerics-{version if version is not None else 'unversioned'}")
    dest, i = base, 1
    while dest.exists():
        i += 1
        dest = base.with_name(f"{base.name}-{i}")
    run_dir.rename(dest)
    return dest


def load_cell_record(plan: Plan, out: Path, reuse_any_version: bool = False) -> dict | None:
    """The stored cell JSON if it is finished, matches what this cell would run now and was made
    with the current numerics version (any version with ``reuse_any_version``)."""
    rec = _read(plan.cell_file(out))
    if not rec or rec.get("cell") != plan.cell.name or not isinstance(rec.get("result"), dict):
        return None
    run_config = rec.get("run_config")
    # A setting added since the cell was stored takes the value its run had, as for the run itself (run_state).
    same_run = isinstance(run_config, dict) and not config_diff(plan.expected_config(), normalise_config(plan.kind, run_config))
    same = (rec.get("reduced") == plan.reduced and same_run
            and rec.get("evaluation") == plan.evaluation and list(rec.get("stand_in") or []) == list(plan.stand_in))
    current = rec.get("numerics_version") == NUMERICS_VERSION
    return rec if same and (current or reuse_any_version) else None


# ---- computing ----------------------------------------------------------------------------------

def ensure_run(plan: Plan, opts: Options, stacked: dict[str, str] | None = None) -> tuple[dict, str]:
    """Make sure the plan's run is finished; returns (its result.json, what was done).
    ``stacked``: what :func:`ensure_stacked_runs` did to run directories (by absolute path)."""
    run_dir = plan.run_dir(opts.out)
    done_by_stack = (stacked or {}).get(str(run_dir.absolute()))
    if done_by_stack is not None and (run_dir / "result.json").exists():
        return _read(run_dir / "result.json") or {}, done_by_stack
    if plan.kind == "distill" and plan.select != "random" and not _plan.distill_takes_select():
        raise UserError(f"This version cannot distil with --base-select {plan.select} (DistillConfig has no base_select "
                        "setting yet); the baseline cells run.")
    state, detail = run_state(plan, opts.out, opts.reuse_any_version)
    if state == "conflict":
        raise RunConflict(f"{detail}; move it away or use another --out.")
    if state == "extend":  # the longer run made from the shorter one, then resumed as any run
        want = plan.expected_config()
        extend_run(detail, run_dir, epochs=want["epochs"], val_every=want["val_every"])
        state = "resume"
        done = f"extended the run {detail}"
    else:
        done = {"finished": "reused run", "resume": "resumed run", "new": "ran", "stale": "ran"}[state]
    if state in ("new", "resume", "stale"):
        state = ready_run_dir(plan, opts, state)
        if plan.kind == "distill":
            run_distillation(plan.config, out=run_dir, resume=state == "resume", data_root=opts.data_root, progress=opts.progress)
        elif plan.kind == "unrolled":
            run_unrolled(dataclasses.replace(plan.config), out=run_dir, resume=state == "resume", data_root=opts.data_root,
                         progress=opts.progress)
        elif plan.kind == "mean":  # its parts' runs first (each reused, resumed or made as its own cell would)
            _means.make_mean(plan, opts, lambda part: ensure_run(part, opts, stacked)[0])
        else:
            baseline(plan.config, data_root=opts.data_root, out=run_dir)
    result = _read(run_dir / "result.json")
    if result is None:
        raise UserError(f"{run_dir} finished without a readable result.json.")
    return result, done


def ready_run_dir(plan: Plan, opts: Options, state: str) -> str:
    """Before computing a run: set a run of another numerics version aside, note the machine (before
    the run, so that an interrupted session counts too). Returns "new" or "resume"."""
    run_dir = plan.run_dir(opts.out)
    if state == "stale":
        set_aside(run_dir, numerics_of(run_record(plan, run_dir)))
        state = "new"
    record_machine(run_dir, plan.config.device, resumed=state == "resume")
    return state


def _stored_evaluation(path: Path, opts: Options, seed: int) -> dict | None:
    """The evaluation file ``evaluate`` wrote at ``path``, when it holds a result of the current numerics
    version (or any, with ``--reuse-any-version``) under the cell's seed; else None."""
    stored = _read(path)
    if stored is None or "accuracy_mean" not in stored:
        return None
    if int(stored.get("seed", seed)) != int(seed):  # written by an older evaluate under another seed: not this cell's
        return None
    return stored if numerics_of(stored) == NUMERICS_VERSION or opts.reuse_any_version else None


def ensure_evaluation(plan: Plan, opts: Options, run_result: dict) -> tuple[dict, str]:
    """Evaluate the distilled run with the cell's arch / head / steps / optimizer / order, or a DD / SLDD
    run with the cell's arch / variant (reusing a stored evaluation of the current numerics)."""
    ev = plan.evaluation or {}
    run_dir = plan.run_dir(opts.out)
    if plan.kind == "unrolled":
        return _ensure_unrolled_evaluation(plan, opts, run_result)
    if ev.get("protocol"):
        return _ensure_protocol_evaluation(plan, opts)
    arch = ev.get("arch") or run_result.get("arch")
    head = ev.get("head") or run_result.get("head")
    if run_result.get("T") is not None and arch and head:
        t = parse_steps(ev.get("steps"), int(run_result["T"]))
        stored = _stored_evaluation(evaluations_dir(run_dir) / label_evaluation_file(arch, head, t, _plan.TEST_MODELS,
                                                                                    optimizer=ev.get("optimizer"), order=ev.get("order")), opts,
                                    plan.cell.seed)
        if stored is not None:
            return stored, "reused evaluation"
    result = evaluate(run_dir, arch=ev.get("arch"), head=ev.get("head"), steps=ev.get("steps"), models=_plan.TEST_MODELS,
                      data_root=opts.data_root, device=opts.device or "auto", optimizer=ev.get("optimizer"), order=ev.get("order"))
    return result, "evaluated"


def _ensure_protocol_evaluation(plan: Plan, opts: Options) -> tuple[dict, str]:
    """A label set re-tested under a fixed-epoch protocol (its number of models, its architecture unless the
    cell names one). The file ``evaluate`` writes is reused when current; an interrupted evaluation resumes
    from its model ledger (``RUN_DIR/evaluations/ledger/``)."""
    from ..protocols import get_protocol

    ev = plan.evaluation or {}
    proto = get_protocol(ev["protocol"])
    arch = ev.get("arch") or proto.arch
    run_dir = plan.run_dir(opts.out)
    if arch:
        stored = _stored_evaluation(evaluations_dir(run_dir) / f"{proto.name}-{arch}-K{proto.models}.json", opts, plan.cell.seed)
        if stored is not None:
            return stored, "reused evaluation"
    result = evaluate(run_dir, arch=ev.get("arch"), protocol=proto.name, models=proto.models, data_root=opts.data_root,
                      device=opts.device or "auto", progress=opts.progress)
    return result, "evaluated"


def _ensure_unrolled_evaluation(plan: Plan, opts: Options, run_result: dict) -> tuple[dict, str]:
    """A DD / SLDD run tested by a variant of its schedule and / or on another architecture: the
    run's own number of test networks (DD: 200), the file ``evaluate`` writes reused when current."""
    from ..unrolled.schedule import parse_variant, variant_name

    ev = plan.evaluation or {}
    run_dir = plan.run_dir(opts.out)
    variant = variant_name(*parse_variant(ev.get("variant")))
    arch = ev.get("arch") or run_result.get("arch")
    models = run_result.get("models")
    if arch and models:
        stored = _stored_evaluation(evaluations_dir(run_dir) / f"{arch}-{variant.replace(':', '')}-K{models}.json", opts, plan.cell.seed)
        if stored is not None and stored.get("variant") == variant:
            return stored, "reused evaluation"
    result = evaluate(run_dir, arch=ev.get("arch"), variant=variant, data_root=opts.data_root, device=opts.device or "auto")
    return result, "evaluated"


def made_by(plan: Plan, opts: Options, result: dict) -> dict:
    """Which code made a cell: the numerics version and commit of its run (and evaluation)."""
    run_versions = run_record(plan, plan.run_dir(opts.out)).get("versions") or {}
    versions = (result.get("versions") or {}) if plan.evaluation else run_versions
    run_v = numerics_of({"versions": run_versions})
    eval_v = numerics_of({"versions": versions})
    # A cell counts as current only when every part of it is.
    version = run_v if run_v == eval_v else None
    return {"numerics_version": version, "git_commit": versions.get("git_commit"), "git_dirty": versions.get("git_dirty"),
            "run_numerics_version": run_v}


def cell_cost(plan: Plan, opts: Options, run_result: dict, result: dict) -> dict:
    """What a cell's numbers cost, in seconds: ``distill`` (the loop with its label selection; DD: its outer
    iterations), ``teacher`` (training the teacher and choosing its temperature, paid once per seed where the
    teacher is cached), ``test`` (the models that give the cell's number: the run's own test, or the evaluation's)."""
    cost: dict[str, float] = {}

    def add(key: str, value: object) -> None:
        if isinstance(value, (int, float)):
            cost[key] = round(cost.get(key, 0.0) + float(value), 1)

    def add_teacher(rec: dict) -> None:
        add("teacher", (rec.get("teacher") or {}).get("seconds"))
        add("teacher", (rec.get("temperature_choice") or {}).get("seconds"))

    if plan.kind == "baseline":
        add_teacher(result)
        add("test", result.get("seconds"))
        return cost
    if plan.kind == "mean":  # what made its parts' sets (not their tests), then its own test
        for part in plan.parts:
            part_result = _read(part.run_dir(opts.out) / "result.json") or {}
            for key, value in cell_cost(part, opts, part_result, part_result).items():
                if key != "test":
                    add(key, value)
        add("test", result.get("seconds"))
        return cost
    add("distill", run_result.get("distill_seconds"))
    add_teacher((run_record(plan, plan.run_dir(opts.out)).get("label_init") or {}))
    add("test", result.get("seconds") if plan.evaluation else run_result.get("test_seconds"))
    return cost


def summary(result: dict) -> dict:
    return {k: result[k] for k in RESULT_KEYS if k in result}


def selections_dir(opts: Options) -> Path:
    """Where ``reproduce`` keeps chosen base sets: one per (target, N, seed, selector), shared by every method."""
    return Path(opts.out) / "selections"


def sibling_ledgers(run_dir: Path) -> list[Path]:
    """The model ledgers of the other runs beside ``run_dir`` (their own and their evaluations'): a ledger is keyed by
    everything that decides its models, so a cell may adopt what another cell's run finished (runs/ledger.py)."""
    if not run_dir.parent.is_dir():
        return []
    others = sorted(d for d in run_dir.parent.iterdir() if d.is_dir() and d.name != run_dir.name)
    return [f for d in others for f in (run_ledger(d), evaluation_ledger(d))]


def compute_cell(plan: Plan, opts: Options, stacked: dict[str, str] | None = None) -> tuple[dict, str]:
    t0 = time.perf_counter()
    with selection_cache(selections_dir(opts)), ledger_sources(sibling_ledgers(plan.run_dir(opts.out))):
        run_result, action = ensure_run(plan, opts, stacked)
        result = run_result
        if plan.evaluation:
            result, eaction = ensure_evaluation(plan, opts, run_result)
            action = f"{action}, {eaction}"
    record = {
        "cell": plan.cell.name,
        "kind": "evaluation" if plan.evaluation else plan.kind,
        "protocol": "quick" if plan.reduced else "full",
        "reduced": plan.reduced,
        "protocol_note": _plan.reduced_note() if plan.reduced else "full protocol (the paper's settings)",
        "stand_in": list(plan.stand_in),
        "run_dir": str(plan.run_dir(opts.out).absolute()),
        "run_slug": plan.run_slug,
        "run_config": plan.expected_config(),
        "evaluation": plan.evaluation,
        "base_select": plan.select,
        "result": summary(result),
        "run_result": summary(run_result) if plan.evaluation else None,
        "action": action,
        "cell_seconds": round(time.perf_counter() - t0, 2),
        "cost_seconds": cell_cost(plan, opts, run_result, result),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "labeldistill_version": __version__,
        **made_by(plan, opts, result),
    }
    first = first_made(plan, opts, record)
    if first is not None:
        record["first_made"] = first
    atomic_write_json(plan.cell_file(opts.out), record)
    return record, action


ORIGIN_KEYS = ("action", "cell_seconds", "finished_at", "git_commit", "git_dirty", "labeldistill_version")


def first_made(plan: Plan, opts: Options, record: dict) -> dict | None:
    """How a cell was first made, when it is recorded again only from what is stored (its run and evaluation reused,
    nothing computed: say a stored record no longer matched this code's form of its configuration) and the record it
    replaces holds the same run and the same numbers: that record's action, seconds, time and commit (its own
    ``first_made`` if it has one), so that recording a cell again never loses when and by what its numbers were made."""
    if not record["action"].startswith("reused run") or record["action"].endswith(", evaluated"):
        return None
    old = _read(plan.cell_file(opts.out))
    numbers = ("accuracies", "accuracy_mean", "accuracy_std")
    if (not old or old.get("run_slug") != record["run_slug"] or not isinstance(old.get("result"), dict)
            or any(old["result"].get(k) != record["result"].get(k) for k in numbers)):
        return None
    return old.get("first_made") or {k: old.get(k) for k in ORIGIN_KEYS}


def precheck(plan: Plan, opts: Options) -> Outcome | None:
    """The outcome of a cell that needs no computing (its data missing, or its cell JSON stored), else None."""
    if plan.missing:
        msg = "; ".join(f"{m['dataset']} missing: {m['how_to_get']}" for m in plan.missing)
        return Outcome(plan.cell.name, "missing", message=msg, plan=plan)
    rec = load_cell_record(plan, opts.out, opts.reuse_any_version)
    if rec is not None:
        return Outcome(plan.cell.name, "done", "stored cell", rec, plan=plan)
    return None


def compute_outcome(plan: Plan, opts: Options, stacked: dict[str, str | BaseException] | None = None) -> Outcome:
    """Compute one cell; a conflict or failure is returned as its outcome, never raised. A stop the
    user asked for (Ctrl-C: ``KeyboardInterrupt``, or the loop's :class:`Interrupted` once it has
    checkpointed) is raised: it stops the whole batch, not just this cell, and the same command
    resumes it. Executors call this wherever the cell runs. ``stacked``: what
    :func:`ensure_stacked_runs` did (its failures become this cell's)."""
    name = plan.cell.name
    failed = (stacked or {}).get(str(plan.run_dir(opts.out).absolute()))
    try:
        if isinstance(failed, BaseException):
            raise failed
        rec, action = compute_cell(plan, opts, stacked)  # type: ignore[arg-type]
    except Interrupted as e:
        raise Interrupted(f"{name}: {str(e).rstrip('.')}; running the same command again goes on with every cell.") from None
    except Exception as e:  # noqa: BLE001  (one failed cell must not stop a long batch)
        return _failure(name, e, plan)
    return Outcome(name, "done", action, rec, plan=plan)


def _failure(name: str, e: BaseException, plan: Plan) -> Outcome:
    if isinstance(e, RunConflict):
        return Outcome(name, "conflict", message=str(e), plan=plan)
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if not isinstance(e, UserError):
        msg = f"{type(e).__name__}: {msg}"
        traceback.print_exception(e, file=sys.stderr)
    return Outcome(name, "failed", message=msg, plan=plan)


# ---- stacks: distillation runs stepped together (--stack K) --------------------------------------

def work_units(plans: list[Plan], opts: Options, stack: int = 1) -> list[list[int]]:
    """The plans' indices in units of work, in order: the cells of one run directory (a run and its
    evaluations) always share a unit; with ``stack`` > 1, up to ``stack`` distillation runs that
    still need computing and share a :func:`~labeldistill.distill.stack_key` share one too (their
    loops then step together: :func:`ensure_stacked_runs`). Cells needing no computing stay alone."""
    from ..distill import stack_groups

    groups = _run_groups(plans, opts)
    if stack <= 1:
        return groups
    stackable = [gi for gi, g in enumerate(groups) if _stack_state(plans[g[0]], opts) is not None]  # group numbers
    stacks = stack_groups([plans[groups[gi][0]].config for gi in stackable], stack)  # type: ignore[misc]
    stack_of = {stackable[j]: k for k, st in enumerate(stacks) for j in st}
    units: list[list[int]] = []
    placed: set[int] = set()
    for gi, g in enumerate(groups):
        k = stack_of.get(gi)
        if k is None:
            units.append(g)
        elif k not in placed:
            placed.add(k)
            units.append([i for j in stacks[k] for i in groups[stackable[j]]])
    return units


def _run_groups(plans: list[Plan], opts: Options) -> list[list[int]]:
    """The plans' indices grouped by run directory, in order; a mean's group joins those of the runs it averages (one
    worker computes them one after another: never two workers on one run)."""
    def dirs(plan: Plan) -> list[str]:
        return [str(p.run_dir(opts.out).absolute()) for p in (plan, *plan.parts)]

    group_of: dict[str, int] = {}
    groups: list[list[int]] = []
    for i, plan in enumerate(plans):
        joined = sorted({group_of[d] for d in dirs(plan) if d in group_of})
        if not joined:
            groups.append([i])
            g = len(groups) - 1
        else:  # merge every group it touches into the first
            g = joined[0]
            for other in joined[1:]:
                groups[g].extend(groups[other])
                groups[other] = []
            groups[g].append(i)
        for j in groups[g]:
            for d in dirs(plans[j]):
                group_of[d] = g
    return [sorted(g) for g in groups if g]


def _stack_state(plan: Plan, opts: Options) -> str | None:
    """The run state ("new", "resume", "stale") of a distillation run that a stack may compute, else None."""
    if plan.kind != "distill" or plan.missing or load_cell_record(plan, opts.out, opts.reuse_any_version) is not None:
        return None
    state = run_state(plan, opts.out, opts.reuse_any_version)[0]
    return state if state in ("new", "resume", "stale") else None


def ensure_stacked_runs(plans: list[Plan], opts: Options) -> dict[str, str | BaseException]:
    """Run the distillation runs of these plans that need it (new, interrupted or stale), stepped
    together (:func:`labeldistill.distill.distill_many`); what was done to each run directory (by
    absolute path): "ran (stacked xK)" / "resumed run (stacked xK)", or the run's error. Fewer than
    two such runs: nothing is done here (the cells compute their runs alone, as without stacking)."""
    from ..distill import distill_many

    todo: dict[str, tuple[Plan, str]] = {}
    for plan in plans:
        key = str(plan.run_dir(opts.out).absolute())
        state = None if key in todo else _stack_state(plan, opts)
        if state is not None:
            todo[key] = (plan, state)
    if len(todo) < 2:
        return {}
    done: dict[str, str | BaseException] = {}
    resumes = []
    for key, (plan, state) in todo.items():
        state = ready_run_dir(plan, opts, state)
        resumes.append(state == "resume")
        done[key] = f"{'resumed run' if state == 'resume' else 'ran'} (stacked x{len(todo)}{', batched' if opts.batched else ''})"
    plans_todo = [plan for plan, _ in todo.values()]
    with selection_cache(selections_dir(opts)):
        results = distill_many([p.config for p in plans_todo], outs=[p.run_dir(opts.out) for p in plans_todo], resume=resumes,
                               data_root=opts.data_root, progress=opts.progress, errors="return", batched=opts.batched)
    for key, r in zip(todo, results):
        if isinstance(r, BaseException):
            done[key] = r
    return done


def compute_unit(plans: list[Plan], opts: Options) -> list[Outcome]:
    """The outcomes of one unit of :func:`work_units` (its stack run together first), in order."""
    stacked = ensure_stacked_runs(plans, opts)
    return [compute_outcome(plan, opts, stacked) for plan in plans]


def log_outcome(tag: str, o: Outcome, log: Callable[[str], None]) -> None:
    """The line a finished (or skipped) cell logs."""
    if o.status == "missing":
        log(f"{tag}: MISSING DATA ({o.message})")
    elif o.status == "conflict":
        log(f"{tag}: CONFLICT: {o.message}")
    elif o.status != "done":
        log(f"{tag}: FAILED: {o.message}")
    elif o.action == "stored cell":
        log(f"{tag}: stored ({fmt_result(o.record['result'])})")
    else:
        log(f"{tag}: {o.action}: {fmt_result(o.record['result'])}")


def describe_action(plan: Plan, opts: Options) -> str:
    state, detail = run_state(plan, opts.out, opts.reuse_any_version)
    where = plan.run_dir(opts.out)
    verb = {"baseline": "baseline", "mean": f"the mean of {len(plan.parts)} runs' label sets"}.get(plan.kind, "distil")
    fresh = f"{verb} into {where}"
    what = {"finished": f"reuse finished run {where}", "resume": f"resume {plan.kind} run {where}", "new": fresh,
            "extend": f"extend the run {detail} into {where}",
            "stale": f"set aside the run {detail}, {fresh}", "conflict": f"conflict: {detail}"}[state]
    if plan.evaluation:
        ev = ", ".join(f"{k}={v}" for k, v in plan.evaluation.items() if v is not None)
        what += f", then evaluate ({ev})"
    return what


def fmt_result(result: dict) -> str:
    return f"{result['accuracy_mean']:.2f} +- {result['accuracy_std']:.2f} %"
