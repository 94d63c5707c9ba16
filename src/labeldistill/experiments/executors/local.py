"""``--executor local`` (the default): every cell in this process, one after another, in order.

A cell is planned, checked (missing data, stored cell) and computed before the next is
planned, so a later cell sees what an earlier one wrote (a run it shares, a base set).
Threads: whatever this process uses (``torch.get_num_threads()``, i.e. ``OMP_NUM_THREADS``).

``stack=K`` (``--stack K``): every cell is planned first; distillation runs that need computing
and share a :func:`~labeldistill.distill.stack_key` are then run K at a time with their loops
stepped together (:func:`labeldistill.distill.distill_many`: on a CPU bit for bit the runs
alone, on a GPU side by side on one card), each in its own run directory as without stacking.
"""
from __future__ import annotations

from collections.abc import Callable

from .. import runner
from ..cells import parse_cell
from ..plan import DataView, Options, Plan, plan_cell
from ..units import compute_unit, work_units
from . import register_executor, stack_size


@register_executor("local")
class LocalExecutor:
    def __init__(self, stack: int = 1, **_options: object) -> None:
        self.stack = stack_size(stack)

    def run_cells(self, names: list[str], opts: Options, data: DataView, log: Callable[[str], None]) -> list:
        return self._run([(name, lambda name=name: plan_cell(parse_cell(name), opts, data)) for name in names], opts, log)

    def run_plans(self, plans: list[Plan], opts: Options, log: Callable[[str], None]) -> list:
        return self._run([(p.cell.name, lambda p=p: p) for p in plans], opts, log)

    def _run(self, items: list, opts: Options, log: Callable[[str], None]) -> list:
        if self.stack > 1:
            return self._run_stacked([make_plan() for _, make_plan in items], opts, log)
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

    def _run_stacked(self, plans: list[Plan], opts: Options, log: Callable[[str], None]) -> list:
        n = len(plans)
        outcomes: list = [None] * n
        todo = []
        for i, plan in enumerate(plans):
            outcome = runner.precheck(plan, opts)
            if outcome is None:
                todo.append(i)
            else:
                outcomes[i] = outcome
                runner.log_outcome(f"[{i + 1}/{n}] {plan.cell.name}", outcome, log)
        for unit in work_units([plans[i] for i in todo], opts, self.stack):
            idx = [todo[j] for j in unit]
            for i in idx:
                log(f"[{i + 1}/{n}] {plans[i].cell.name}: {runner.describe_action(plans[i], opts)} ...")
            for i, outcome in zip(idx, compute_unit([plans[i] for i in idx], opts)):
                outcomes[i] = outcome
                runner.log_outcome(f"[{i + 1}/{n}] {plans[i].cell.name}", outcome, log)
        return outcomes
