"""The comparison table: ours (mean +- std over the test models) beside the paper's, the difference,
and a flag where they differ by more than two combined standard deviations."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ..numerics import NUMERICS_VERSION
from ..runs import atomic_write_json
from .cells import parse_cell
from .plan import DataView, Options, plan_cell, reduced_note, reduced_row
from .rundirs import load_cell_record
from .runner import Outcome
from .spec import TableSpec

FLAG_RULE = ("flag '>2σ' where |ours − paper| > 2·sqrt(σ_paper² + σ_ours²): σ_paper and σ_ours are the standard "
             "deviations over the fresh test models, combined in quadrature")
SEEDS_FLAG_RULE = ("flag '>2σ' where |ours − paper| > 2·sqrt(σ_paper² + σ_ours²): σ_paper is the paper's std over its "
                   "test models, σ_ours ours over seeds")


def flag(ours_mean: float, ours_std: float, paper_mean: float, paper_std: float) -> bool:
    return abs(ours_mean - paper_mean) > 2.0 * math.sqrt(paper_std**2 + ours_std**2)


def seed_cell(name: str, seed: int) -> str:
    """The cell ``name`` run with ``seed`` (seed 0: the cell itself, whose canonical name has no @seed)."""
    return parse_cell(name).with_settings(seed=str(seed) if seed else None).name


def run_names(names: list[str], opts: Options) -> list[str]:
    """The cells to compute: ``names``, or each of them once per seed of ``--seeds``."""
    if not opts.seeds:
        return names
    return [seed_cell(n, k) for n in names for k in opts.seeds]


def _outcome(name: str, by_name: dict[str, Outcome], opts: Options, data: DataView) -> Outcome:
    """This invocation's outcome for ``name``, else its stored cell, else 'missing' / 'not run'."""
    if name in by_name:
        return by_name[name]
    plan = plan_cell(parse_cell(name), opts, data)
    rec = load_cell_record(plan, opts.out, opts.reuse_any_version)
    if rec is not None:
        return Outcome(name, "done", "stored cell", rec, plan=plan)
    if plan.missing:
        msg = "; ".join(f"{m['dataset']} missing: {m['how_to_get']}" for m in plan.missing)
        return Outcome(name, "missing", message=msg, plan=plan)
    return Outcome(name, "not run", message="not computed yet", plan=plan)


def collect(spec: TableSpec, opts: Options, outcomes: list[Outcome], data: DataView) -> list[Outcome]:
    """An outcome for every cell of the table: this invocation's, else a stored cell, else 'not run'."""
    by_name = {o.cell: o for o in outcomes}
    return [_outcome(name, by_name, opts, data) for name in spec.names()]


def collect_seeds(spec: TableSpec, opts: Options, outcomes: list[Outcome], data: DataView) -> list[list[Outcome]]:
    """For every cell of the table, its outcome under each seed of ``opts.seeds`` (in that order)."""
    by_name = {o.cell: o for o in outcomes}
    return [[_outcome(seed_cell(name, k), by_name, opts, data) for k in opts.seeds or (0,)] for name in spec.names()]


def seed_rows(spec: TableSpec, opts: Options, groups: list[list[Outcome]]) -> list[dict]:
    """One row per cell over seeds: ours = the mean of the seeds' test accuracies, ± their (population)
    std; shown only when every seed is done (the seeds done so far are listed in the note). With one seed
    (``--seeds 2``) the row is that seed's test, ± the std over its test models (a std over one seed is no spread)."""
    seeds = list(opts.seeds or (0,))
    out = []
    for name, group in zip(spec.names(), groups):
        p = spec.paper(name)
        made = [_row(p, o, opts, spec.ours_only) for o in group]
        per_seed = [r for r, _ in made]
        # The notes that hold across seeds (protocol, paper, other code, stand-in), not each seed's status.
        notes = [n for (_, ns), o in zip(made, group) for n in ns if o.done or n != _status_note(o)]
        row = {**per_seed[0], "cell": name, "seeds": seeds, "per_seed": [r.get("ours_mean") for r in per_seed],
               # done only when every seed is; else the first seed's status that is not (a row half made is not done)
               "status": next((r["status"] for r in per_seed if r["status"] != "done"), "done")}
        done = [(k, r) for k, r in zip(seeds, per_seed) if r["status"] == "done"]
        if len(done) == len(seeds) == 1:
            notes.append(f"seed {seeds[0]}")
        elif len(done) == len(seeds):
            means = [r["ours_mean"] for _, r in done]
            mean = sum(means) / len(means)
            std = math.sqrt(sum((m - mean) ** 2 for m in means) / len(means))
            paper = row["paper_mean"] is not None
            row.update(ours_mean=mean, ours_std=std, ours_accuracies=means,  # over seeds, a point is a seed's mean
                       diff=mean - row["paper_mean"] if paper else None,
                       flag=paper and flag(mean, std, row["paper_mean"], row["paper_std"] or 0.0),
                       cost_seconds=_mean_cost([r.get("cost_seconds") for _, r in done]))
            notes.append("seeds " + ", ".join(f"{k}: {r['ours_mean']:.2f}" for k, r in done))
        else:
            row.update(ours_mean=None, ours_std=None, ours_accuracies=[], diff=None, flag=False, cost_seconds=None)
            have = ", ".join(f"{k}: {r['ours_mean']:.2f}" for k, r in done) or "none"
            missing = [f"{k} ({r['status']})" for k, r in zip(seeds, per_seed) if r["status"] != "done"]
            notes.append(f"seeds done: {have}; not yet: {', '.join(missing)}")
        row["note"] = "; ".join(dict.fromkeys(notes))
        out.append(row)
    return add_versus(spec, out)


def _mean_cost(costs: list[dict | None]) -> dict | None:
    """The cost of one seed, on average over the seeds' cells (None when a cell did not record its cost)."""
    if not costs or any(c is None for c in costs):
        return None
    keys = dict.fromkeys(k for c in costs for k in c)  # type: ignore[union-attr]
    return {k: round(sum(c.get(k, 0.0) for c in costs) / len(costs), 1) for k in keys}  # type: ignore[union-attr]


def add_versus(spec: TableSpec, rows: list[dict]) -> list[dict]:
    """With ``spec.versus`` = (method, what): each done row beside the done row of that method with the same target, base
    and settings (the same base images, test-model seeds and augmentation streams), pair by pair: its test models'
    accuracies minus the same models' there, or with several seeds each seed's mean minus that seed's there
    (``ours_accuracies`` holds those, in the same order in both rows). ``row["versus"]``: the differences' mean, their
    (population) std, how many are above, of how many, and whether they are models or seeds; None where there is no
    such row, or it is the row itself."""
    if spec.versus is None:
        return rows
    method = spec.versus[0]
    by_cell = {r["cell"]: r for r in rows}
    for r in rows:
        r["versus"] = None
        ref = by_cell.get(dataclasses.replace(parse_cell(r["cell"]), method=method).name)
        if ref is None or ref is r:
            continue
        # a row not done (or not done at every seed) has no accuracies: nothing to pair
        ours, theirs = r.get("ours_accuracies") or [], ref.get("ours_accuracies") or []
        if not ours or len(ours) != len(theirs):
            continue
        diffs = [a - b for a, b in zip(ours, theirs)]
        mean = sum(diffs) / len(diffs)
        r["versus"] = {"cell": ref["cell"], "mean": mean, "std": math.sqrt(sum((d - mean) ** 2 for d in diffs) / len(diffs)),
                       "above": sum(d > 0 for d in diffs), "of": len(diffs),
                       "unit": "seeds" if len(r.get("seeds") or ()) > 1 else "models"}
    return rows


def fmt_versus(v: dict | None) -> str:
    """``+1.23 ± 0.20 (5/5)``: the mean difference ± its std, and how many models (or seeds) are above; "—" for none."""
    return "—" if v is None else f"{v['mean']:+.2f} ± {v['std']:.2f} ({v['above']}/{v['of']})"


def table_rows(spec: TableSpec, opts: Options, rows: list[Outcome]) -> list[dict]:
    """One row per outcome, beside the paper's number of its cell."""
    out = []
    for o in rows:
        row, notes = _row(spec.paper(o.cell), o, opts, spec.ours_only)
        row["note"] = "; ".join(notes)
        out.append(row)
    return add_versus(spec, out)


def _status_note(o: Outcome) -> str:
    """What a cell that is not done says of itself ("NOT RUN: not computed yet", "MISSING: ...")."""
    return f"{o.status.upper()}: {o.message}" if o.message else o.status.upper()


def _row(p, o: Outcome, opts: Options, ours_only: bool = False) -> tuple[dict, list[str]]:
    """The row of outcome ``o`` beside the paper's entry ``p``, and its notes in display order (``ours_only``: the
    table has no paper numbers at all, so a row does not say it is not in the paper's)."""
    row: dict = {"cell": o.cell, "setting": p.label, "paper_mean": p.mean, "paper_std": p.std, "status": o.status,
                 "reduced": opts.quick, "stand_in": list(o.plan.stand_in) if o.plan else [], "note": ""}
    notes = []
    if opts.quick:
        notes.append(reduced_row())
    if p.mean is None and not ours_only:
        notes.append("not in the paper's table (ours only)")
    if o.done and o.record:
        r = o.record["result"]
        paper = p.mean is not None
        row.update(ours_mean=r["accuracy_mean"], ours_std=r["accuracy_std"], ours_accuracies=list(r.get("accuracies") or []),
                   diff=r["accuracy_mean"] - p.mean if paper else None,
                   flag=paper and flag(r["accuracy_mean"], r["accuracy_std"], p.mean, p.std or 0.0), run_dir=o.record.get("run_dir"),
                   numerics_version=o.record.get("numerics_version"), git_commit=o.record.get("git_commit"),
                   cost_seconds=o.record.get("cost_seconds"))
        if r.get("variant"):
            row["variant"] = r["variant"]
        if o.record.get("numerics_version") != NUMERICS_VERSION:
            commit = (o.record.get("git_commit") or "unknown commit")[:10]
            notes.append(f"OTHER CODE: numerics version {o.record.get('numerics_version')} ({commit}), "
                         f"not the current {NUMERICS_VERSION}")
    else:
        row.update(ours_mean=None, ours_std=None, ours_accuracies=[], diff=None, flag=False)
        notes.append(_status_note(o))
    notes += row["stand_in"]
    return row, notes


def _pm(mean: float | None, std: float | None) -> str:
    return "—" if mean is None else f"{mean:.2f} ± {std:.2f}"


def fmt_cost(cost: dict | None) -> str:
    """``{"distill": 2520, "teacher": 150, "test": 5100}`` -> ``distil 42 + teacher 2.5 + test 85 min``."""
    if not cost:
        return "—"
    names = {"distill": "distil", "teacher": "teacher", "test": "test"}
    parts = [f"{names.get(k, k)} {v / 60:.3g}" for k, v in cost.items() if v]
    return (" + ".join(parts) + " min") if parts else "—"


def markdown(spec: TableSpec, opts: Options, rows: list[dict]) -> str:
    lines = [f"# {spec.heading}: {spec.title}", ""]
    if opts.quick:
        lines += [f"**{reduced_note()}. Ours are NOT comparable to the paper's numbers.**", ""]
    else:
        lines += ["Protocol: full (the paper's settings).", ""]
    if opts.base_select:
        lines += [f"**Base sets chosen by `{opts.base_select}` (--base-select), not the paper's random draw for this table.**", ""]
    paper = not spec.ours_only
    if opts.seeds and len(opts.seeds) == 1:
        lines += [f"Ours: seed {opts.seeds[0]}'s test accuracy (%), mean ± std over its fresh test models"
                  + (f"; paper: mean ± std over its fresh test models. Δ = ours − paper; {FLAG_RULE}." if paper else "."), ""]
    elif opts.seeds:
        lines += [f"Ours: the mean over seeds {', '.join(map(str, opts.seeds))} of each seed's test accuracy (%), ± the std "
                  "over those seeds" + (f"; paper: mean ± std over its fresh test models. Δ = ours − paper; {SEEDS_FLAG_RULE}."
                                        if paper else "."), ""]
    else:
        lines += [(f"Ours and paper: test accuracy (%), mean ± std over the fresh test models. Δ = ours − paper; {FLAG_RULE}."
                   if paper else "Ours: test accuracy (%), mean ± std over the fresh test models."), ""]
    cost = ["Cost"] if spec.cost else []
    versus = [f"vs {spec.versus[1]}"] if spec.versus else []
    against_paper = ["Paper", "Δ", "Flag"] if paper else []
    head = ["Cell", "Setting" if not paper else "Paper setting", "Ours", *versus, *against_paper, *cost, "Note"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        diff = "—" if r["diff"] is None else f"{r['diff']:+.2f}"
        spent = [fmt_cost(r.get("cost_seconds"))] if spec.cost else []
        against = [fmt_versus(r.get("versus"))] if spec.versus else []
        beside = [_pm(r["paper_mean"], r["paper_std"]), diff, ">2σ" if r["flag"] else ""] if paper else []
        lines.append("| " + " | ".join([f"`{r['cell']}`", r["setting"], _pm(r["ours_mean"], r["ours_std"]), *against,
                                        *beside, *spent, r["note"]]) + " |")
    done = sum(r["status"] == "done" for r in rows)
    flagged = sum(bool(r["flag"]) for r in rows)
    lines += ["", f"{done} of {len(rows)} cells computed" + (f"; {flagged} flagged." if paper else ".")]
    missing = sum(r["status"] == "missing" for r in rows)
    if missing:
        lines.append(f"{missing} cells lack data (see their notes; "
                     "`labeldistill datasets` shows what is present, `--stand-in` substitutes available data where possible).")
    if spec.versus:
        pairs = ("each seed's mean minus the same seed's there, mean ± std over the seeds, and how many seeds are above"
                 if opts.seeds and len(opts.seeds) > 1 else
                 "each test model minus the same test model there (the same seed and augmentation streams), mean ± std "
                 "over the models, and how many models are above")
        lines += ["", f"vs {spec.versus[1]}: beside the `{spec.versus[0]}` row of the same target and settings (the same "
                      f"base images), pair by pair: {pairs}."]
    if spec.cost:
        lines += ["", "Cost: minutes of this machine's computing behind each number (the run's distillation with its label "
                      "selection, the teacher's training and temperature choice, the test models), from the run records"
                      + (" (per seed, on average over the seeds)." if opts.seeds else ".")]
    if spec.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in spec.notes]
    if spec.references:
        lines += ["", "Paper entries not reproduced here (other methods):"]
        lines += [f"- {ref.row}, {ref.column}: {ref.mean:.2f} ± {ref.std:.2f} ({ref.why})" for ref in spec.references]
    return "\n".join(lines) + "\n"


def report_paths(spec: TableSpec, opts: Options) -> tuple[Path, Path]:
    stem = (spec.stem + (f"-select-{opts.base_select}" if opts.base_select else "") + ("-quick" if opts.quick else "")
            + (f"-seeds{'-'.join(map(str, opts.seeds))}" if opts.seeds else ""))
    return Path(opts.out) / f"{stem}.md", Path(opts.out) / f"{stem}.json"


def write_report(spec: TableSpec, opts: Options, rows: list[dict], extra: dict | None = None) -> tuple[str, dict]:
    md_path, json_path = report_paths(spec, opts)
    figure = spec.figure(rows, md_path.with_suffix(".png")) if spec.figure is not None else None
    text = markdown(spec, opts, rows)
    if figure is not None:  # under the heading: the picture first, the numbers below
        head, _, rest = text.partition("\n\n")
        text = f"{head}\n\n![{spec.heading}]({figure.name})\n\n{rest}"
    obj = {"table": spec.number, "title": spec.title, "protocol": opts.protocol, "reduced": opts.quick,
           "protocol_note": reduced_note() if opts.quick else "full protocol (the paper's settings)",
           "flag_rule": SEEDS_FLAG_RULE if opts.seeds else FLAG_RULE,
           "rows": rows, "markdown": str(md_path), "base_select": opts.base_select or "random", "seeds": list(opts.seeds or []),
           "figure": None if figure is None else str(figure), **(extra or {})}
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    atomic_write_json(json_path, obj)
    return text, obj
