"""Figures and a report (markdown + self-contained HTML) for distillation runs.

    labeldistill.report.make_report("runs/mnist-rr")                    -> runs/mnist-rr/report/report.md
    labeldistill.report.compare_runs(["runs/a", "runs/b"], "runs/a-vs-b") -> runs/a-vs-b/report.md

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display, nothing left open),
so the report works on headless machines and does not change an interactive session's backend.
"""
from .build import compare_runs, default_compare_out, make_report
from .load import Run, load_run

__all__ = ["compare_runs", "default_compare_out", "load_run", "make_report", "Run"]
