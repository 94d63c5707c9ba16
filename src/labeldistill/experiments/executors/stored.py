"""``--executor stored``: compute nothing; the table from the cells already stored in ``--out``.

For a look at long work under way: lanes that are still running hold their run directories (a second computing
process would be refused there), while this reads only the finished cells (``OUT/cells``), so it runs beside them at
once and changes nothing. A stored cell is shown as done; any other as not run (its data checked, so a missing dataset
still says so). ``--dry-run`` says what computing the rest would take.
"""
from __future__ import annotations

from collections.abc import Callable

from ...errors import UserError
from .. import runner
from ..cells import parse_cell
from ..plan import DataView, Options, Plan, plan_cell
from . import register_executor

NOT_STORED = "not stored in --out's cells (--executor stored computes nothing)"


@register_executor("stored")
class StoredExecutor:
    """Outcomes of stored cells; every other cell "not run" (never attempted: ``reproduce`` / ``sweep`` exit 0 for it)."""

    def __init__(self, stack: int = 1, address: str | None = None, **_options: object) -> None:
        if int(stack) != 1 or address is not None:
            raise UserError("--executor stored computes nothing: --stack and --address apply to executors that compute.")

    def run_cells(self, names: list[str], opts: Options, data: DataView, log: Callable[[str], None]) -> list:
        return self.run_plans([plan_cell(parse_cell(name), opts, data) for name in names], opts, log)

    def run_plans(self, plans: list[Plan], opts: Options, log: Callable[[str], None]) -> list:
        outcomes = []
        for i, plan in enumerate(plans, 1):
            outcome = runner.precheck(plan, opts) or runner.Outcome(plan.cell.name, "not run", message=NOT_STORED, plan=plan)
            runner.log_outcome(f"[{i}/{len(plans)}] {plan.cell.name}", outcome, log)
            outcomes.append(outcome)
        return outcomes
