"""Units of work for the executors: the cells of one run directory (a run and its evaluations, a mean and its parts)
always together, and with ``--stack K`` distillation runs of one schedule stepped together in one process
(:func:`labeldistill.distill.distill_many`); a unit's estimated time, for ordering them longest first."""
from __future__ import annotations

from ..selectors import selection_cache
from . import estimate as _estimate
from . import plan as _plan
from .plan import Options, Plan
from .rundirs import load_cell_record, progress_of, run_state, selections_dir
from .runner import Outcome, compute_outcome, ready_run_dir


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
