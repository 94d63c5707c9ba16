"""``--executor local`` (the default): every cell in this process, one after another, in order.

A cell is planned, checked (missing data, stored cell) and computed before the next is
planned, so a later cell sees what an earlier one wrote (a run it shares, a base set).
Threads: whatever this process uses (``torch.get_num_threads()``, i.e. ``OMP_NUM_THREADS``).
"""
from __future__ import annotations

from collections.abc import Callable

from .. import runner
from ..cells import parse_cell
from ..plan import DataView, Options, Plan, plan_cell
from . import register_executor


@register_executor("local")
class LocalExecutor:
    def __init__(self, **_options: object) -> None:
        pass

    def run_cells(self, names: list[str], opts: Options, data: DataView, log: Callable[[str], None]) -> list:
        return self._run([(name, lambda name=name: plan_cell(parse_cell(name), opts, data)) for name in names], opts, log)

    def run_plans(self, plans: list[Plan], opts: Options, log: Callable[[str], None]) -> list:
        return self._run([(p.cell.name, lambda p=p: p) for p in plans], opts, log)

    def _run(self, items: list, opts: Options, log: Callable[[str], None]) -> list:
        outcomes = []
        for i, (name, make_plan) in enumerate(items, 1):
            plan = make_plan()
            tag = f"[{i}/{len(items)}] {name}"
            outcome = runner.precheck(plan, opts)
            if outcome is None:
                log(f"{tag}: {runner.describe_action(plan, opts)} ...")
                outcome = runner.compute_outcome(plan, opts)
            runner.log_outcome(tag, outcome, log)
            outcomes.append(outcome)
        return outcomes
