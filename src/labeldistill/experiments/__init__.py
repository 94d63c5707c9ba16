"""``labeldistill reproduce``: the paper's tables as declarative specs, and the machinery to
compute them (one run per cell, reused and resumed across invocations).

Public API::

    get_table("1") / list_tables()          -> TableSpec (cells + the paper's numbers)
    parse_cell("emnist-letters:mnist/ld/100@target-size=5000") -> Cell
    plan_cell(cell, Options(...), DataView(data_root))         -> Plan (config, run dir, stand-ins)
    run_cells(names, Options(...))                             -> [Outcome]
"""
from .cells import KEYS, METHODS, Cell, match_cells, parse_cell
from .plan import QUICK_EPOCHS, TEST_MODELS, DataView, Options, Plan, plan_cell
from .executors import run_cells, run_plans
from .runner import Outcome, RunConflict
from .spec import TABLES, PaperCell, Reference, TableSpec, get_table, list_tables, register_table
from . import tables  # noqa: E402,F401  (the paper's tables register themselves in TABLES)

__all__ = ["KEYS", "METHODS", "Cell", "match_cells", "parse_cell", "QUICK_EPOCHS", "TEST_MODELS", "DataView", "Options",
           "Plan", "plan_cell", "Outcome", "RunConflict", "run_cells", "run_plans", "TABLES", "PaperCell", "Reference", "TableSpec",
           "get_table", "list_tables", "register_table"]
