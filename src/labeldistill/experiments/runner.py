"""Compute cells: reuse finished runs, resume interrupted ones, store one JSON per finished cell.

What a run directory's state means, and where things live in ``--out``: :mod:`.rundirs`; units of work and stacks
of runs stepped together: :mod:`.units`. A cell whose JSON is present (and matches what the cell would run now) is
never recomputed; a finished run is reused, an interrupted one resumed, a stale one set aside and run again.
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
from ..distill.extend import extend_run
from ..distill.loop import Interrupted
from ..errors import UserError
from ..evaluation import evaluate, label_evaluation_file, parse_steps
from ..numerics import NUMERICS_VERSION
from ..runs import atomic_write_json
from ..runs.ledger import evaluations_dir, ledger_sources
from ..runs.provenance import numerics_of
from ..selectors import selection_cache
from ..unrolled import run_unrolled
from . import means as _means
from . import plan as _plan
from .machine import record_machine
from .plan import Options, Plan
from .rundirs import (
    _read,
    load_cell_record,
    run_record,
    run_state,
    selections_dir,
    set_aside,
    sibling_ledgers,
)

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


# ---- what a cell's line in the log says -----------------------------------------------------------

def log_outcome(tag: str, o: Outcome, log: Callable[[str], None]) -> None:
    """The line a finished (or skipped) cell logs."""
    if o.status == "missing":
        log(f"{tag}: MISSING DATA ({o.message})")
    elif o.status == "conflict":
        log(f"{tag}: CONFLICT: {o.message}")
    elif o.status == "not run":
        log(f"{tag}: not run ({o.message})")
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
