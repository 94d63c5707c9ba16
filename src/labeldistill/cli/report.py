"""``labeldistill report``: figures, report.md and a self-contained report.html for a run, or several side by side."""
from __future__ import annotations

import argparse

from ..errors import UserError
from .common import emit


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="figures and a report (markdown + HTML) for a run, or --compare several runs",
                       description="Write PNG figures, report.md and a self-contained report.html for a run directory; "
                                   "with --compare, put several runs side by side.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a run directory made by 'labeldistill distill' (several with --compare)")
    p.add_argument("--compare", action="store_true", help="compare the given runs: curves overlaid, a results table, gradient variance")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (default: RUN_DIR/report; with --compare: compare-A-vs-B next to the first run)")
    p.add_argument("--max-images", type=int, default=100, metavar="N", help="most base images in the label grid (100)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import compare_runs, make_report  # matplotlib only when a report is asked for

    if args.compare:
        if len(args.runs) < 2:
            raise UserError("--compare needs at least two run directories.")
        md = compare_runs(args.runs, args.out)
    else:
        if len(args.runs) != 1:
            raise UserError(f"Give one run directory (got {len(args.runs)}); to put several side by side add --compare.")
        md = make_report(args.runs[0], args.out, max_images=args.max_images)
    out = md.parent
    figures = sorted(p.name for p in out.glob("*.png"))
    result = {"report": str(md), "html": str(out / "report.html"), "out": str(out), "figures": figures, "runs": list(args.runs)}
    emit(result, args.json, f"wrote {md} and {out / 'report.html'} ({len(figures)} figures: {', '.join(figures)})")
    return 0
