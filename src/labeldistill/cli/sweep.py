"""``labeldistill sweep``: distil every combination of some settings, reusing finished points.

    labeldistill sweep --target mnist --base 10,100 --seed 0,1,2 --method ridge,second-order --out DIR

Each point is one ``distill`` run directory ``DIR/runs/<slug>`` (and its record
``DIR/cells/<slug>.json``), computed, reused and resumed exactly like ``reproduce``'s runs
(current numerics version only, unless ``--reuse-any-version``; a run of another version is set
aside and run again), by the same executors (``--executor local|ray``; ``stored`` computes nothing and shows
the points stored). Prints one row per point; ``--json`` prints one JSON object as the last line. Also writes
``DIR/sweep.json``.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from .common import add_progress, emit, show_progress
from .reproduce import add_executor_args, make_executor

METHOD_CELLS = {"ridge": "ld-rr", "second-order": "ld"}
METHOD_ALIASES = {"rr": "ridge", "ld-rr": "ridge", "ld": "second-order", "second_order": "second-order"}


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="distil every combination of comma-separated settings; a table of the results",
        description="Distil labels for every combination of the comma-separated settings (one run directory per point under "
                    "--out, reused and resumed across invocations like reproduce's runs) and print one row per point. "
                    "Exit status 1 when some point could not be computed.")
    p.add_argument("--target", required=True, help="target dataset(s), comma-separated (e.g. mnist or mnist,kmnist)")
    p.add_argument("--base", required=True, help="base-set sizes N, comma-separated (e.g. 10,100)")
    p.add_argument("--seed", default="0", help="run seeds, comma-separated (default 0)")
    p.add_argument("--method", default="ridge", help="ridge and / or second-order, comma-separated (default ridge)")
    p.add_argument("--epochs", default=None, help="distillation epochs, comma-separated (default: the paper's per setting)")
    p.add_argument("--test-models", default="20", help="fresh test models per point, comma-separated (default 20, the paper's)")
    p.add_argument("--data-root", default=None, help="folder with dataset files (else $LABELDISTILL_DATA, else the cache folder)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--out", default="sweep", help="folder for the points' runs and records (default: ./sweep)")
    p.add_argument("--reuse-any-version", action="store_true",
                   help="also reuse finished runs made with another numerics version (marked in the table)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
    add_progress(p)
    add_executor_args(p)
    p.set_defaults(func=run)


def _list(text: str | None, what: str, conv=str) -> list:
    from ..errors import UserError

    if text is None:
        return [None]
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UserError(f"--{what} is empty.")
    try:
        values = [conv(t) for t in items]
    except ValueError:
        raise UserError(f"--{what} takes comma-separated {conv.__name__} values, got {text!r}.") from None
    return list(dict.fromkeys(values))


def _method(name: str) -> str:
    from ..errors import UserError

    m = METHOD_ALIASES.get(name.lower(), name.lower())
    if m not in METHOD_CELLS:
        raise UserError(f"Unknown --method {name!r}; sweep distils with: {', '.join(METHOD_CELLS)}.")
    return m


def point_plan(target: str, base: int, seed: int, method: str, epochs: int | None, test_models: int, opts, data):
    """The plan of one sweep point: a distillation with these settings, its own run directory."""
    from ..data.catalog import CATALOG
    from ..distill import DistillConfig
    from ..errors import UserError
    from ..experiments import parse_cell
    from ..experiments.plan import Plan

    cell = parse_cell(f"{target}/{METHOD_CELLS[method]}/{base}" + (f"@seed={seed}" if seed else ""))
    if cell.target not in CATALOG:
        raise UserError(f"sweep takes catalog datasets as --target; {target!r} is not one (see labeldistill datasets).")
    config = DistillConfig(target=cell.target, base=base, method=method, seed=seed, epochs=epochs, test_models=test_models,
                           device=opts.device or "auto")
    config.validate()
    slug = f"{cell.target}-{method}-n{base}-seed{seed}-e{epochs if epochs is not None else 'paper'}-k{test_models}"
    missing = tuple({"dataset": n, "how_to_get": data.how_to_get(n)} for n in (cell.target,) if not data.present(n))
    return Plan(cell=cell, kind="distill", config=config, run_cell=cell, run_slug=slug, cell_slug=slug, evaluation=None,
                channels=CATALOG.get(cell.target).channels, reduced=False, missing=missing, needs=(cell.target,))


def run(args: argparse.Namespace) -> int:
    from ..experiments import DataView, Options
    from ..experiments import run_plans

    targets = _list(args.target, "target")
    bases = _list(args.base, "base", int)
    seeds = _list(args.seed, "seed", int)
    methods = list(dict.fromkeys(_method(m) for m in _list(args.method, "method")))
    epochs = _list(args.epochs, "epochs", int)
    test_models = _list(args.test_models, "test-models", int)
    out = Path(args.out)
    opts = Options(out=out, data_root=args.data_root, device=args.device, progress=show_progress(args),
                   reuse_any_version=args.reuse_any_version, batched=args.batched)
    data = DataView(args.data_root)
    points = list(itertools.product(targets, bases, seeds, methods, epochs, test_models))
    plans = [point_plan(*p, opts, data) for p in points]
    executor = make_executor(args)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.json else (lambda msg: print(msg, flush=True))
    print(f"Sweep: {len(plans)} points into {out}", file=sys.stderr if args.json else sys.stdout, flush=True)
    outcomes = run_plans(plans, opts, log=log, executor=executor)
    rows = [_row(p, plan, o, opts) for p, plan, o in zip(points, plans, outcomes)]
    obj = {"out": str(out), "points": rows}
    from ..runs import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", obj)
    emit(obj, args.json, _table(rows))
    return 0 if all(r["status"] in ("done", "not run") for r in rows) else 1  # not run: --executor stored


def _row(point: tuple, plan, outcome, opts) -> dict:
    from ..numerics import NUMERICS_VERSION

    target, base, seed, method, epochs, test_models = point
    rec = outcome.record or {}
    res = rec.get("result") or {}
    return {"target": plan.cell.target, "base": base, "seed": seed, "method": method, "epochs": res.get("epochs", epochs),
            "test_models": test_models, "status": outcome.status, "action": outcome.action, "message": outcome.message,
            "accuracy_mean": res.get("accuracy_mean"), "accuracy_std": res.get("accuracy_std"), "T": res.get("T"),
            "numerics_version": rec.get("numerics_version"), "current": rec.get("numerics_version") == NUMERICS_VERSION,
            "git_commit": rec.get("git_commit"), "git_dirty": rec.get("git_dirty"), "run_dir": str(plan.run_dir(opts.out))}


def _table(rows: list[dict]) -> str:
    lines = ["| Target | N | Seed | Method | Epochs | Models | Accuracy | T | Numerics | Commit | Status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f}" if r["accuracy_mean"] is not None else "-"
        commit = (r["git_commit"] or "-")[:7] + ("+dirty" if r["git_dirty"] else "")
        version = "-" if r["numerics_version"] is None else str(r["numerics_version"]) + ("" if r["current"] else " (OTHER)")
        status = r["action"] if r["status"] == "done" else f"{r['status'].upper()}: {r['message']}"
        lines.append(f"| {r['target']} | {r['base']} | {r['seed']} | {r['method']} | {r['epochs'] if r['epochs'] is not None else '-'} "
                     f"| {r['test_models']} | {acc} | {r['T'] if r['T'] is not None else '-'} | {version} | {commit} | {status} |")
    done = sum(r["status"] == "done" for r in rows)
    lines.append(f"\n{done} of {len(rows)} points computed.")
    return "\n".join(lines)
