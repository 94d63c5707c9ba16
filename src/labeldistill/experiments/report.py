"""The comparison table: ours (mean +- std over the test models) beside the paper's, the difference,
and a flag where they differ by more than two combined standard deviations."""
from __future__ import annotations

import math
from pathlib import Path

from ..numerics import NUMERICS_VERSION
from ..runs import atomic_write_json
from .cells import parse_cell
from .plan import DataView, Options, plan_cell, reduced_note, reduced_row
from .runner import Outcome, load_cell_record
from .spec import TableSpec

FLAG_RULE = ("flag '>2σ' where |ours − paper| > 2·sqrt(σ_paper² + σ_ours²): σ_paper and σ_ours are the standard "
             "deviations over the fresh test models, combined in quadrature")


def flag(ours_mean: float, ours_std: float, paper_mean: float, paper_std: float) -> bool:
    return abs(ours_mean - paper_mean) > 2.0 * math.sqrt(paper_std**2 + ours_std**2)


def collect(spec: TableSpec, opts: Options, outcomes: list[Outcome], data: DataView) -> list[Outcome]:
    """An outcome for every cell of the table: this invocation's, else a stored cell, else 'not run'."""
    by_name = {o.cell: o for o in outcomes}
    rows = []
    for name in spec.names():
        if name in by_name:
            rows.append(by_name[name])
            continue
        plan = plan_cell(parse_cell(name), opts, data)
        rec = load_cell_record(plan, opts.out, opts.reuse_any_version)
        if rec is not None:
            rows.append(Outcome(name, "done", "stored cell", rec, plan=plan))
        elif plan.missing:
            msg = "; ".join(f"{m['dataset']} missing: {m['how_to_get']}" for m in plan.missing)
            rows.append(Outcome(name, "missing", message=msg, plan=plan))
        else:
            rows.append(Outcome(name, "not run", message="not computed yet", plan=plan))
    return rows


def table_rows(spec: TableSpec, opts: Options, rows: list[Outcome]) -> list[dict]:
    out = []
    for o in rows:
        p = spec.paper(o.cell)
        row: dict = {"cell": o.cell, "setting": p.label, "paper_mean": p.mean, "paper_std": p.std, "status": o.status,
                     "reduced": opts.quick, "stand_in": list(o.plan.stand_in) if o.plan else [], "note": ""}
        notes = []
        if opts.quick:
            notes.append(reduced_row())
        if p.mean is None:
            notes.append("not in the paper's table (ours only)")
        if o.done and o.record:
            r = o.record["result"]
            paper = p.mean is not None
            row.update(ours_mean=r["accuracy_mean"], ours_std=r["accuracy_std"], diff=r["accuracy_mean"] - p.mean if paper else None,
                       flag=paper and flag(r["accuracy_mean"], r["accuracy_std"], p.mean, p.std or 0.0), run_dir=o.record.get("run_dir"),
                       numerics_version=o.record.get("numerics_version"), git_commit=o.record.get("git_commit"))
            if r.get("variant"):
                row["variant"] = r["variant"]
            if o.record.get("numerics_version") != NUMERICS_VERSION:
                commit = (o.record.get("git_commit") or "unknown commit")[:10]
                notes.append(f"OTHER CODE: numerics version {o.record.get('numerics_version')} ({commit}), "
                             f"not the current {NUMERICS_VERSION}")
        else:
            row.update(ours_mean=None, ours_std=None, diff=None, flag=False)
            notes.append(f"{o.status.upper()}: {o.message}" if o.message else o.status.upper())
        notes += row["stand_in"]
        row["note"] = "; ".join(notes)
        out.append(row)
    return out


def _pm(mean: float | None, std: float | None) -> str:
    return "—" if mean is None else f"{mean:.2f} ± {std:.2f}"


def markdown(spec: TableSpec, opts: Options, rows: list[dict]) -> str:
    lines = [f"# {spec.heading}: {spec.title}", ""]
    if opts.quick:
        lines += [f"**{reduced_note()}. Ours are NOT comparable to the paper's numbers.**", ""]
    else:
        lines += ["Protocol: full (the paper's settings).", ""]
    if opts.base_select:
        lines += [f"**Base sets chosen by `{opts.base_select}` (--base-select), not the paper's random draw for this table.**", ""]
    lines += [f"Ours and paper: test accuracy (%), mean ± std over the fresh test models. Δ = ours − paper; {FLAG_RULE}.", ""]
    lines += ["| Cell | Paper setting | Ours | Paper | Δ | Flag | Note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "—" if r["diff"] is None else f"{r['diff']:+.2f}"
        lines.append(f"| `{r['cell']}` | {r['setting']} | {_pm(r['ours_mean'], r['ours_std'])} | "
                     f"{_pm(r['paper_mean'], r['paper_std'])} | {diff} | {'>2σ' if r['flag'] else ''} | {r['note']} |")
    done = sum(r["status"] == "done" for r in rows)
    flagged = sum(bool(r["flag"]) for r in rows)
    lines += ["", f"{done} of {len(rows)} cells computed; {flagged} flagged."]
    missing = sum(r["status"] == "missing" for r in rows)
    if missing:
        lines.append(f"{missing} cells lack data (see their notes; "
                     "`labeldistill datasets` shows what is present, `--stand-in` substitutes available data where possible).")
    if spec.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in spec.notes]
    if spec.references:
        lines += ["", "Paper entries not reproduced here (other methods):"]
        lines += [f"- {ref.row}, {ref.column}: {ref.mean:.2f} ± {ref.std:.2f} ({ref.why})" for ref in spec.references]
    return "\n".join(lines) + "\n"


def report_paths(spec: TableSpec, opts: Options) -> tuple[Path, Path]:
    stem = spec.stem + (f"-select-{opts.base_select}" if opts.base_select else "") + ("-quick" if opts.quick else "")
    return Path(opts.out) / f"{stem}.md", Path(opts.out) / f"{stem}.json"


def write_report(spec: TableSpec, opts: Options, rows: list[dict], extra: dict | None = None) -> tuple[str, dict]:
    md_path, json_path = report_paths(spec, opts)
    figure = spec.figure(rows, md_path.with_suffix(".png")) if spec.figure is not None else None
    text = markdown(spec, opts, rows)
    if figure is not None:  # under the heading: the picture first, the numbers below
        head, _, rest = text.partition("\n\n")
        text = f"{head}\n\n![{spec.heading}]({figure.name})\n\n{rest}"
    obj = {"table": spec.number, "title": spec.title, "protocol": opts.protocol, "reduced": opts.quick,
           "protocol_note": reduced_note() if opts.quick else "full protocol (the paper's settings)", "flag_rule": FLAG_RULE,
           "rows": rows, "markdown": str(md_path), "base_select": opts.base_select or "random",
           "figure": None if figure is None else str(figure), **(extra or {})}
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    atomic_write_json(json_path, obj)
    return text, obj
