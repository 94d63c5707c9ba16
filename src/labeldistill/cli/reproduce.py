"""``labeldistill reproduce``: recompute a table of the paper, cell by cell, beside the paper's numbers.

Runs are stored under ``OUT/runs/``, finished cells under ``OUT/cells/``; run it again and it
reuses every finished cell and run and resumes an interrupted distillation. The table is
printed and written to ``OUT/table<N>.md`` and ``.json`` (``table<N>-quick.*`` with --quick).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..selectors import list_selectors
from .common import add_progress, emit, show_progress


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """--executor / --address (shared by reproduce and sweep)."""
    from ..experiments.executors import list_executors

    p.add_argument("--executor", default="local", choices=list_executors(),
                   help="where cells run: local (default: this process, one after another), ray (each run a Ray task on a "
                        "cluster, same run directories and results; needs pip install 'labeldistill[ray]') or stored "
                        "(nowhere: the table from the cells already stored in --out, beside running lanes)")
    p.add_argument("--stack", type=int, default=1, metavar="K",
                   help="step up to K distillation runs together in one loop (runs that share data, method, N and schedule, "
                        "e.g. seeds): on a GPU they run side by side on one card; on a CPU the same numbers as one by one")
    p.add_argument("--batched", action="store_true",
                   help="with --stack: take a stack's steps as one batched step (one kernel per layer for all its runs; LD RR "
                        "and LD with the JVP meta-gradient; equal to the runs alone up to rounding, not bit for bit)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="--executor ray: the Ray cluster to use (ray.init's address, e.g. ray://head:10001 or auto; default: "
                        "$RAY_ADDRESS, else a running local cluster, else a new local one). --out and --data-root must be "
                        "paths every node shares")


def make_executor(args: argparse.Namespace):
    from ..errors import UserError
    from ..experiments.executors import get_executor

    if args.executor == "local":
        if args.address is not None:
            raise UserError("--address applies to --executor ray only.")
        return get_executor("local", stack=args.stack)
    return get_executor(args.executor, address=args.address, stack=args.stack)


def add(sub: argparse._SubParsersAction) -> None:
    from ..experiments import tables as _register_tables  # noqa: F401  (so the help names each table there is)
    from ..experiments.spec import list_tables

    specs = list_tables()
    numbers = [t.number for t in specs if isinstance(t.number, int)]
    ours = [t for t in specs if not isinstance(t.number, int)]
    p = sub.add_parser(
        "reproduce", help=f"recompute a table of the paper ({min(numbers)} to {max(numbers)}) or of ours "
                          f"({', '.join(t.key for t in ours)}) beside the paper's numbers",
        description="Recompute a table of the paper cell by cell (one run per cell, reused and resumed across "
                    "invocations) and print it beside the paper's numbers. Exit status 1 when some selected cell "
                    "could not be computed (missing data, failure, conflicting run directory).")
    p.add_argument("table", metavar="TABLE", help=f"table number: 1, T1 or table1 ({min(numbers)} to {max(numbers)}; 4 is "
                                                  "training time), or a table of ours by name: "
                                                  + "; ".join(f"{t.key} ({t.title})" for t in ours))
    p.add_argument("--quick", action="store_true", help="REDUCED protocol: 40 epochs instead of 400 / 800 (labelled as such)")
    p.add_argument("--only", nargs="+", metavar="CELL", default=None,
                   help="only these cells: exact names (mnist/ld-rr/100), prefixes of whole parts (mnist/ld: mnist/ld/10 and "
                        "mnist/ld/100, not mnist/ld-rr/10) or globs ('mnist/*/100')")
    p.add_argument("--list", action="store_true", help="list the table's cells, the paper's numbers and whether their data are present")
    p.add_argument("--dry-run", action="store_true", help="show the runs it would make and an estimate of their time; run nothing")
    p.add_argument("--stand-in", action="store_true",
                   help="substitute available data, always a different dataset from the target: KMNIST (MNIST for KMNIST "
                        "targets) as the base set for EMNIST letters, <data root>/kmnist_test.npz split 80/10/10 when KMNIST's "
                        "training file is missing, cifar100-test-stand-in (CIFAR-100's test images split 80/10/10) for "
                        "CIFAR-100; such cells are labelled stand-in")
    p.add_argument("--reuse-any-version", action="store_true",
                   help="also reuse finished runs and cells made with another numerics version (marked in the table); "
                        "by default such runs are set aside and run again")
    p.add_argument("--base-select", default=None, metavar="NAME",
                   help=f"choose the base sets of cells that do not name a selector with NAME: {', '.join(list_selectors())} "
                        "(default random, the paper's draw); such runs, cells and tables are kept apart from the random "
                        "ones. Table 7's cells name paper-table7 themselves")
    p.add_argument("--seeds", default=None, metavar="K,K,...",
                   help="run every selected cell with each of these seeds (e.g. 0,1,2; seed 0 is the cell itself) and show "
                        "the mean over seeds ± their std beside the paper's number; such tables are written apart "
                        "(table17-seeds0-1-2.md)")
    p.add_argument("--data-root", default=None, help="folder with dataset files (else $LABELDISTILL_DATA, else the cache folder)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--out", default="reproduce", help="folder for runs, cells and the table (default: ./reproduce)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
    add_progress(p)
    add_executor_args(p)
    p.set_defaults(func=run)


def _select(spec, only: list[str] | None) -> list[str]:
    from ..experiments import match_cells

    names = spec.names()
    return match_cells(names, only) if only else names


def _base_select(spec, name: str | None) -> str | None:
    """The canonical ``--base-select`` (None for random); refused where the table's cells name their own."""
    from ..errors import UserError
    from ..experiments import parse_cell
    from ..selectors import canonical_selector

    if name is None:
        return None
    name = canonical_selector(name)
    own = sorted({parse_cell(n).select for n in spec.names()} - {None})
    if own and own != [name]:
        raise UserError(f"{spec.heading}'s cells choose their base sets with {', '.join(own)}; --base-select {name} "
                        f"applies to tables whose cells do not (e.g. reproduce 1 --base-select {name}).")
    return None if name == "random" or own else name


def _seeds(spec, text: str | None) -> tuple[int, ...] | None:
    """``--seeds 0,1,2`` -> (0, 1, 2); refused for tables whose cells name their seeds and for Table 4."""
    from ..errors import UserError
    from ..experiments import parse_cell

    if text is None:
        return None
    try:
        seeds = tuple(dict.fromkeys(int(t) for t in text.replace(" ", "").split(",") if t))
    except ValueError:
        raise UserError(f"--seeds takes whole numbers separated by commas (0,1,2), got '{text}'.") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds takes one or more seeds >= 0, got '{text}'.")
    if spec.measure == "minutes":
        raise UserError(f"{spec.heading} is a table of training times of one run per cell; --seeds applies to accuracy tables.")
    if any(parse_cell(n).get("seed") is not None for n in spec.names()):
        raise UserError(f"{spec.heading}'s cells name their own seeds; --seeds applies to tables whose cells do not.")
    return seeds


def run(args: argparse.Namespace) -> int:
    from ..experiments import DataView, Options, get_table

    spec = get_table(args.table)
    names = _select(spec, args.only)
    opts = Options(out=Path(args.out), quick=args.quick, stand_in=args.stand_in, data_root=args.data_root,
                   device=args.device, progress=show_progress(args),
                   reuse_any_version=args.reuse_any_version, base_select=_base_select(spec, args.base_select),
                   seeds=_seeds(spec, args.seeds), batched=args.batched)
    data = DataView(args.data_root)
    if args.list:
        return _list(spec, names, opts, data, args.json)
    if args.dry_run:
        from ..experiments.report import run_names

        return _dry_run(spec, run_names(names, opts), opts, data, args.json)
    return _reproduce(spec, names, opts, data, args.json, make_executor(args))


def _list(spec, names: list[str], opts, data, as_json: bool) -> int:
    from dataclasses import replace

    from ..experiments import parse_cell, plan_cell
    from ..experiments.rundirs import load_cell_record

    rows, missing_sets = [], {}
    width = max(len(n) for n in names) + 2
    lines = [f"{spec.heading}: {spec.title} ({len(names)} of {len(spec.cells)} cells); data root: {data.root}",
             f"{'cell':<{width}}{'paper':<16}data"]
    for name in names:
        plan = plan_cell(parse_cell(name), opts, data)
        p = spec.paper(name)
        if plan.missing:
            for m in plan.missing:
                missing_sets[m["dataset"]] = m["how_to_get"]
            status = "MISSING " + ", ".join(m["dataset"] for m in plan.missing)
            if not opts.stand_in and not plan_cell(plan.cell, replace(opts, stand_in=True), data).missing:
                status += " (stand-in available: --stand-in)"
        else:
            status = "present" + (" (stand-in)" if plan.stand_in else "")
        rec = load_cell_record(plan, opts.out, opts.reuse_any_version)
        if rec is not None:
            status += f"; stored {rec['result']['accuracy_mean']:.2f} ± {rec['result']['accuracy_std']:.2f}"
        rows.append({"cell": name, "setting": p.label, "paper_mean": p.mean, "paper_std": p.std, "present": not plan.missing,
                     "missing": list(plan.missing), "stand_in": list(plan.stand_in), "stored": rec is not None})
        if p.mean is None:
            paper = f"{'(ours only)':<14}"
        elif spec.measure == "minutes":
            paper = f"{p.mean:6.0f} min     "
        else:
            paper = f"{p.mean:6.2f} ± {p.std:<5.2f}"
        lines.append(f"{name:<{width}}{paper}  {status}")
    if missing_sets:
        lines.append("Missing datasets (cells marked MISSING are reported as such, not dropped):")
        lines += [f"  {k}: {v}" for k, v in missing_sets.items()]
    for n in spec.notes:
        lines.append(f"Note: {n}")
    emit({"table": spec.number, "cells": rows}, as_json, "\n".join(lines))
    return 0


def _dry_run(spec, names: list[str], opts, data, as_json: bool) -> int:
    from ..experiments import parse_cell, plan_cell
    from ..experiments.estimate import (TeacherCosts, distill_steps, evaluation_seconds, fmt_seconds, remaining_run_seconds,
                                        selection_seconds)
    from ..experiments.plan import reduced_note
    from ..experiments.rundirs import load_cell_record, progress_of, run_state, selections_dir
    from ..teacher import teacher_cache_dir

    counted: set[str] = set()
    selections: set[tuple] = set()
    teachers = TeacherCosts(teacher_cache_dir())  # each teacher paid once, and only what its cache lacks
    total = 0.0
    rows = []
    counts = {"stored": 0, "missing": 0, "distill": 0, "resume": 0, "baseline": 0, "reuse": 0, "evaluate": 0, "conflict": 0}
    width = max(len(n) for n in names) + 2
    head = f"{spec.heading}, dry run ({reduced_note() if opts.quick else 'full protocol'}); nothing is run."
    lines = [head, f"{'cell':<{width}}{'est.':>9}  action"]
    for name in names:
        plan = plan_cell(parse_cell(name), opts, data)
        seconds = 0.0
        if plan.missing:
            action = "MISSING DATA: " + "; ".join(f"{m['dataset']} ({m['how_to_get']})" for m in plan.missing)
            counts["missing"] += 1
        elif load_cell_record(plan, opts.out, opts.reuse_any_version) is not None:
            action = f"stored in {plan.cell_file(opts.out)}"
            counts["stored"] += 1
            teachers.paid(plan)
        else:
            state, detail = run_state(plan, opts.out, opts.reuse_any_version)
            run_dir = plan.run_dir(opts.out)
            if state == "conflict":
                action = f"CONFLICT: {detail}"
                counts["conflict"] += 1
            elif plan.run_slug in counted:
                action = f"uses the run above ({run_dir})"
            elif state == "finished":
                action = f"reuse finished run {run_dir}"
                counts["reuse"] += 1
                teachers.paid(plan)
            else:
                seconds, done_epochs = remaining_run_seconds(plan, data, *progress_of(plan, opts, state, detail), teachers)
                key = (plan.cell.target, plan.cell.base, plan.cell.seed, plan.select)
                if plan.select != "random" and key not in selections:
                    selections.add(key)
                    seconds += selection_seconds(plan)
                    action = f"choose the base set with {plan.select} (kept in {selections_dir(opts)}), then "
                else:
                    action = ""
                if plan.kind in ("unrolled", "distill"):
                    epochs, steps = distill_steps(plan, data)  # DD / SLDD: outer epochs and iterations
                    verb = {"resume": "resume" if done_epochs else "resume (at most)", "extend": f"extend {detail} to"}.get(state, "distil")
                    at = f" (done: {done_epochs} epochs)" if done_epochs else ""
                    if plan.kind == "unrolled":
                        resolved, _ = plan.config.resolve(plan.config.target, plan.num_classes, plan.channels)
                        action += (f"{verb} {resolved.method}/{resolved.arch} (unrolled), {epochs} outer epochs = {steps} "
                                   f"iterations{at}, then {resolved.test_models} test networks, into {run_dir}")
                    else:
                        cfg = plan.config.resolve(plan.config.target, plan.channels)
                        what = f"{cfg.method}/{cfg.arch}" + (f", learning {cfg.learn} from {cfg.image_init}" if cfg.learn != "labels" else "")
                        action += f"{verb} {what}, {epochs} epoch{'s' * (epochs != 1)} = {steps} steps{at}, into {run_dir}"
                    counts["resume" if state in ("resume", "extend") else "distill"] += 1
                elif plan.kind == "mean":
                    todo = []  # parts not run above: the mean makes them first
                    for part in (p for p in plan.parts if p.run_slug not in counted):
                        part_state = run_state(part, opts.out, opts.reuse_any_version)
                        if part_state[0] != "finished":
                            todo.append(part)
                            seconds += remaining_run_seconds(part, data, *progress_of(part, opts, *part_state), teachers)[0]
                            counted.add(part.run_slug)
                    first = f"make {', '.join(p.cell.name for p in todo)}, then " if todo else ""
                    action += f"{first}the mean of {len(plan.parts)} label sets, tested under {plan.config.protocol}, into {run_dir}"
                    counts["evaluate"] += 1
                else:
                    action += f"baseline ({plan.config.head} head, smoothing {plan.config.smoothing}) into {run_dir}"
                    counts["baseline"] += 1
            counted.add(plan.run_slug)
            if plan.evaluation and state != "conflict":
                e = evaluation_seconds(plan)
                seconds += e
                action += ", then evaluate " + ", ".join(f"{k}={v}" for k, v in plan.evaluation.items() if v is not None)
                counts["evaluate"] += 1
        if plan.stand_in:
            action += " [stand-in]"
        total += seconds
        rows.append({"cell": name, "action": action, "estimate_seconds": round(seconds, 1), "run_dir": str(plan.run_dir(opts.out))})
        lines.append(f"{name:<{width}}{fmt_seconds(seconds) if seconds else '-':>9}  {action}")
    lines.append(f"Would make: {counts['distill']} distillations, {counts['resume']} resumed, {counts['baseline']} baselines, "
                 f"{counts['evaluate']} evaluations; reuse {counts['reuse']} finished runs and {counts['stored']} stored cells; "
                 f"{counts['missing']} cells lack data; {counts['conflict']} conflicts.")
    lines.append(f"Estimated time on this machine: about {fmt_seconds(total)}. This is an ESTIMATE {cost_model()}, not a measurement.")
    emit({"table": spec.number, "dry_run": True, "protocol": opts.protocol, "cells": rows, "counts": counts,
          "estimate_seconds": round(total, 1)}, as_json, "\n".join(lines))
    return 0


def _reproduce(spec, names: list[str], opts, data, as_json: bool, executor=None) -> int:
    from ..experiments import run_cells
    from ..experiments.plan import reduced_note
    from ..experiments.report import collect, collect_seeds, markdown, run_names, seed_cell, seed_rows, table_rows, write_report

    t0 = time.perf_counter()
    runs = run_names(names, opts)
    seeds = f", seeds {', '.join(map(str, opts.seeds))} ({len(runs)} cells)" if opts.seeds else ""
    banner = f"{spec.heading}: {spec.title} — {len(names)} cells{seeds}, {reduced_note() if opts.quick else 'full protocol'}"
    print(banner, flush=True)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if as_json else (lambda msg: print(msg, flush=True))
    outcomes = run_cells(runs, opts, data, log=log, executor=executor)
    wall = time.perf_counter() - t0
    if opts.seeds:  # one row per table cell: its outcomes under every seed
        status = {o.cell: o.status for o in outcomes}
        selected = {n: "done" if all(status.get(seed_cell(n, k)) == "done" for k in opts.seeds) else "incomplete" for n in names}
    else:
        selected = {o.cell: o.status for o in outcomes}
    extra = {"selected": selected, "wall_seconds": round(wall, 1)}
    if spec.measure == "minutes":  # Table 4: the runs' own wall times, ratios only within one machine
        from ..experiments.timing import timing_markdown, timing_rows, write_timing_report

        rows = timing_rows(spec, opts, collect(spec, opts, outcomes, data))
        text, obj = write_timing_report(spec, opts, rows, extra)
        render = timing_markdown
    else:
        if opts.seeds:
            rows = seed_rows(spec, opts, collect_seeds(spec, opts, outcomes, data))
        else:
            rows = table_rows(spec, opts, collect(spec, opts, outcomes, data))
        text, obj = write_report(spec, opts, rows, extra)
        render = markdown
    md_path = obj["markdown"]
    problems = [o for o in outcomes if not o.done and o.status != "not run"]  # "not run": never attempted (stored)
    tail = [f"Wrote {md_path} and {Path(md_path).with_suffix('.json')}.",
            f"Wall time: {wall:.0f} s" + (f" ({reduced_note()})" if opts.quick else "") + "."]
    not_run = sum(o.status == "not run" for o in outcomes)
    if not_run:
        tail.append(f"{not_run} of {len(outcomes)} selected cells are not stored yet (--dry-run: what making them takes).")
    if problems:
        kinds = sorted({o.status for o in problems})
        tail.append(f"{len(problems)} of {len(outcomes)} selected cells not computed ({', '.join(kinds)}); see the notes.")
    if len(selected) < len(rows):  # --only: print the cells asked for; the file keeps the whole table
        text = render(spec, opts, [r for r in rows if r["cell"] in selected])
        tail.insert(1, f"(The printed table shows the {len(selected)} selected cells; {md_path} has all {len(rows)}.)")
    emit(obj, as_json, "\n" + text + "\n" + "\n".join(tail))
    return 1 if problems else 0


def cost_model() -> str:
    """What the dry run's estimate rests on, in words, from the measured constants it uses (experiments/estimate.py)."""
    from ..experiments import estimate as p

    step, it = p.STEP_SECONDS, p.UNROLLED_ITERATION_SECONDS
    return ("from a per-step cost model (steps = epochs x ceil(train size / target batch); per step on one thread of a 2-core "
            f"CPU beside another job, measured: ridge {step['ridge']['lenet']:.2f} s, second-order {step['second-order']['lenet']:.2f} s, "
            f"DD {it['lenet']:g} s with LeNet on MNIST, {step['ridge']['alexnet']:.1f} / {step['second-order']['alexnet']:.1f} / "
            f"{it['alexnet']:.1f} s with AlexCifarNet on CIFAR-10, implicit {p.IMPLICIT_STEP_SECONDS:.0f} s a student with ConvNet-3 "
            f"on 100 images; fixed-epoch protocols {p.PROTOCOL_STEP_SECONDS:g} s a ConvNet-3 step; a ConvNet-3 teacher "
            f"{p.TEACHER_EPOCH_SECONDS['convnet3']:.0f} s an epoch, each teacher counted once and for the epochs its cache lacks; +{round((p.VALIDATION_OVERHEAD - 1) * 100)}% validation; other "
            f"networks scaled from LeNet, ResNet x{p.ARCH_FACTOR['resnet14']:.0f}; ~{p.TEST_SECONDS:.0f} s per 20-model test; "
            f"learned images x{p.IMAGE_STEP_FACTOR:g} is a guess)")
