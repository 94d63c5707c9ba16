"""Selectors compared seed by seed: one cell of `reproduce --base-select ...` runs, paired by seed (for docs/results.md).

Usage:
    python studies/selector_pairs.py --cell mnist_ld-rr_10 random=OUT_A paper-table7=OUT_B table7-halving=OUT_C

Each NAME=OUT is a `reproduce` output folder; its finished runs of the cell (``OUT/runs/CELL``, ``CELL__seed=K``,
``CELL__select=...``, ``-quick`` suffixes included) are read from ``result.json`` / ``config.json``. Prints a
markdown table: test accuracy per seed and selector, the mean over the seeds every selector has, each selector's
mean paired difference from the first one (with its per-seed differences), the selection's wall time (recorded by
``choose_base``) and the distillation's loop minutes (a baseline's: its whole run), then one JSON object as the last line.

A seed is paired only when its runs were made on one kind of machine, by the rule that lets Table 4 divide two runs'
times (``experiments.machine.comparable``, nothing assumed): two CPUs of one name computed the same run to different
last bits (docs/design-notes.md, "CPUs of one name are not one machine"), a difference as large as the effects compared
here. Runs that predate the record, or pairs across machines, are left out and named; ``--mixed-machines`` pairs them
anyway, marked.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from labeldistill.experiments.machine import comparable, run_machine


def runs_of(out: Path, cell: str) -> dict[int, dict]:
    """Seed -> {accuracy, std, selection seconds, loop minutes, commit} for the finished runs of ``cell`` in ``out``."""
    found: dict[int, dict] = {}
    for run in sorted((out / "runs").glob(f"{cell}*")):
        rest = run.name[len(cell):]
        if rest and not rest.startswith(("__", "-quick")):
            continue  # another cell that starts with the same name (e.g. N=100 for N=10)
        if not (run / "result.json").exists():
            continue
        res = json.loads((run / "result.json").read_text())
        # a distillation keeps its provenance in config.json; a baseline in its result.json
        cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else res
        sel = cfg.get("problem", {}).get("base_select") or res.get("base_select") or {}
        seed = res["seed"] if "seed" in res else res["config"]["seed"]
        minutes = res.get("distill_seconds", res.get("seconds", 0.0)) / 60
        found[int(seed)] = {
            "accuracy": res["accuracy_mean"], "std": res["accuracy_std"], "selection_seconds": sel.get("seconds"),
            "loop_minutes": round(minutes, 1),
            "commit": (cfg.get("versions", {}).get("git_commit") or "")[:7], "run": str(run),
            "machine": run_machine(run),
        }
    return found


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", required=True, help="run-directory name of the cell, e.g. mnist_ld-rr_10")
    ap.add_argument("pairs", nargs="+", metavar="NAME=OUT")
    ap.add_argument("--mixed-machines", action="store_true",
                    help="pair seeds whose runs come from different (or unrecorded) machines, marked, instead of leaving them out")
    args = ap.parse_args(argv)
    table = {}
    for pair in args.pairs:
        name, _, out = pair.partition("=")
        table[name] = runs_of(Path(out), args.cell)
    unfinished = [n for n, v in table.items() if not v]
    table = {n: v for n, v in table.items() if v}
    if unfinished:
        print(f"No finished run of {args.cell} yet: {', '.join(unfinished)}\n")
    names = list(table)
    seeds = sorted(set.intersection(*(set(v) for v in table.values()))) if table else []
    shared = list(seeds)
    machines = {s: sorted({v[s]["machine"].label for v in table.values()}) for s in seeds}
    mixed = {}
    for s in seeds:
        first, *others = (v[s]["machine"] for v in table.values())
        verdicts = [comparable(first, m) for m in others]
        why = next((why for _, why in verdicts if why), None)  # a reason not to compare, or an assumption: neither will do
        if why:
            mixed[s] = why
    if mixed and not args.mixed_machines:
        print(f"Seeds left out, their runs not from one recorded kind of machine: {mixed}\n")
        seeds = [s for s in seeds if s not in mixed]
    if not seeds:
        print(f"No seed of {args.cell} finished under every selector yet.")
        out = {"cell": args.cell, "rows": [], "unfinished": unfinished}
        print(json.dumps(out))
        return out
    ref = names[0]
    print(f"| {args.cell} | " + " | ".join(f"seed {s}" + (" (mixed machines)" if s in mixed else "") for s in seeds) + f" | mean | vs {ref} (paired) | selection | loop (baseline: run) minutes |")
    print("|---|" + "---|" * (len(seeds) + 4))
    rows = []
    for name in names:
        accs = [table[name][s]["accuracy"] for s in seeds]
        diffs = [table[name][s]["accuracy"] - table[ref][s]["accuracy"] for s in seeds]
        secs = [table[name][s]["selection_seconds"] for s in seeds if table[name][s]["selection_seconds"] is not None]
        mins = [table[name][s]["loop_minutes"] for s in seeds]
        mean = statistics.fmean(accs) if accs else float("nan")
        diff = statistics.fmean(diffs) if diffs else float("nan")
        sel = f"{statistics.fmean(secs) / 60:.1f} min" if secs else "-"
        print(f"| `{name}` | " + " | ".join(f"{a:.2f}" for a in accs) + f" | **{mean:.2f}** | "
              + ("—" if name == ref else f"{diff:+.2f} ({', '.join(f'{d:+.2f}' for d in diffs)})")
              + f" | {sel} | {statistics.fmean(mins) if mins else float('nan'):.1f} |")
        rows.append({"selector": name, "seeds": seeds, "accuracies": accs, "mean": mean, "paired_difference": diff,
                     "selection_seconds": secs, "loop_minutes": mins, "runs": [table[name][s]["run"] for s in seeds],
                     "commits": sorted({table[name][s]["commit"] for s in seeds})})
    missing = {n: sorted(set(v) - set(shared)) for n, v in table.items() if set(v) - set(shared)}
    if missing:
        print(f"\nSeeds not shared by every selector (left out): {missing}")
    out = {"cell": args.cell, "rows": rows, "unfinished": unfinished,
           "machines": {str(s): machines[s] for s in seeds}, "mixed_machines": {str(s): w for s, w in mixed.items()}}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
