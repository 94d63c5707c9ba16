"""Timing tables (``measure="minutes"``, Table 4): the paper's minutes beside ours, from each run's
own ``result.json`` wall time, and both as ratios to LD on the same dataset.

A ratio of ours is computed only between runs of the same machine (:mod:`.machine`); otherwise
the cell says why not. Nothing here runs anything: the cells are computed by :mod:`.runner`.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ArtifactError
from ..runs import atomic_write_json, read_json
from .cells import Cell, parse_cell
from .machine import comparable, run_machine
from .plan import Options, reduced_note, reduced_row
from .runner import Outcome
from .spec import TableSpec
from .tables.timing import REFERENCE_METHOD


def _run_dir(o: Outcome, opts: Options) -> Path | None:
    if o.record and o.record.get("run_dir"):
        return Path(o.record["run_dir"])
    return o.plan.run_dir(opts.out) if o.plan else None


def _result(run_dir: Path | None) -> dict:
    if run_dir is None or not (run_dir / "result.json").exists():
        return {}
    try:
        obj = read_json(run_dir / "result.json")
    except ArtifactError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _reference_name(name: str) -> str:
    """The LD cell a timing cell is divided by: same dataset, N and settings."""
    c = parse_cell(name)
    return Cell(c.target, REFERENCE_METHOD, c.base, c.source, c.settings).name


def timing_rows(spec: TableSpec, opts: Options, outcomes: list[Outcome]) -> list[dict]:
    """One row per cell: paper minutes and ratio, ours (``distill_seconds`` / 60), its machine and its
    ratio to our LD of the same dataset when both ran on the same machine."""
    by_name = {o.cell: o for o in outcomes}
    measured: dict[str, dict] = {}
    for o in outcomes:
        run_dir = _run_dir(o, opts) if o.done else None
        res = _result(run_dir)
        seconds = res.get("distill_seconds")
        measured[o.cell] = {"seconds": float(seconds) if isinstance(seconds, (int, float)) else None,
                            "machine": run_machine(run_dir) if run_dir is not None and res else None,
                            "run_dir": str(run_dir) if run_dir else None, "test_seconds": res.get("test_seconds")}
    rows = []
    for p in spec.cells:
        o = by_name.get(p.cell)
        m = measured.get(p.cell, {})
        ref_name = _reference_name(p.cell)
        ref_paper = next((c.mean for c in spec.cells if c.cell == ref_name), None)
        ref = measured.get(ref_name, {})
        row: dict = {"cell": p.cell, "setting": p.row, "paper_minutes": p.mean, "reference_cell": ref_name,
                     "paper_ratio": round(p.mean / ref_paper, 3) if p.mean and ref_paper else None,
                     "status": o.status if o else "not run", "ours_minutes": None, "ours_ratio": None, "machine": None,
                     "run_dir": m.get("run_dir"), "reduced": opts.quick, "note": ""}
        notes = [reduced_row()] if opts.quick else []
        if o is None or not o.done:
            notes.append(f"{row['status'].upper()}: {o.message}" if o and o.message else row["status"].upper())
        elif m.get("seconds") is None:
            notes.append("its result.json records no distill_seconds")
        else:
            row["ours_minutes"] = round(m["seconds"] / 60.0, 2)
            machine = m["machine"]
            row["machine"] = machine.label if machine else None
            if ref.get("seconds") is None or ref.get("machine") is None:
                notes.append(f"no ratio: {ref_name} not computed")
            else:
                ok, why = comparable(machine, ref["machine"])
                if ok:
                    row["ours_ratio"] = round(m["seconds"] / ref["seconds"], 3)
                    if why:
                        notes.append(why)
                else:
                    notes.append(f"no ratio to {ref_name}: {why}")
        if o and o.plan and o.plan.stand_in:
            notes += list(o.plan.stand_in)
        row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def timing_markdown(spec: TableSpec, opts: Options, rows: list[dict]) -> str:
    lines = [f"# {spec.heading}: {spec.title}", ""]
    if opts.quick:
        lines += [f"**{reduced_note()}. Our minutes are NOT comparable to the paper's; the ratios compare like with like "
                  "only when every run is reduced alike.**", ""]
    lines += ["Minutes of training. Ratio: minutes ÷ LD's minutes on the same dataset (ours only between runs of the same "
              "machine). Machine: the device each run used.", ""]
    lines += ["| Cell | Paper setting | Paper (min) | Paper ÷ LD | Ours (min) | Ours ÷ our LD | Machine | Note |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['cell']}` | {r['setting']} | {_num(r['paper_minutes'], '.0f')} | {_num(r['paper_ratio'], '.2f')} | "
                     f"{_num(r['ours_minutes'], '.2f')} | {_num(r['ours_ratio'], '.2f')} | {r['machine'] or '—'} | {r['note']} |")
    done = sum(r["ours_minutes"] is not None for r in rows)
    lines += ["", f"{done} of {len(rows)} cells timed; {sum(r['ours_ratio'] is not None for r in rows)} with a ratio."]
    if spec.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in spec.notes]
    return "\n".join(lines) + "\n"


def write_timing_report(spec: TableSpec, opts: Options, rows: list[dict], extra: dict | None = None) -> tuple[str, dict]:
    from .report import report_paths

    text = timing_markdown(spec, opts, rows)
    md_path, json_path = report_paths(spec, opts)
    obj = {"table": spec.number, "title": spec.title, "measure": "minutes", "protocol": opts.protocol, "reduced": opts.quick,
           "rows": rows, "markdown": str(md_path), **(extra or {})}
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    atomic_write_json(json_path, obj)
    return text, obj
