"""Declarative table specs: which cells a paper table has, and the paper's number for each.

A :class:`TableSpec` is plain data; the modules under :mod:`labeldistill.experiments.tables`
build one per table and register it in :data:`TABLES`. Adding a table is one more module
(or one more ``register_table`` call); nothing else changes.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..registry import Registry
from .cells import Cell, parse_cell


@dataclass(frozen=True)
class PaperCell:
    """One reproducible entry: our cell name, the paper's row / column labels and its numbers.

    ``mean`` / ``std`` are None for an entry the paper's table does not have (ours only, shown
    beside it, e.g. a DD set trained like an LD set); for a timing table (``measure="minutes"``)
    ``mean`` is the paper's minutes and ``std`` is 0."""

    cell: str
    mean: float | None
    std: float | None
    row: str  # e.g. "MNIST LD RR"
    column: str  # e.g. "N=100", "Trial 2", "+50"

    @property
    def parsed(self) -> Cell:
        return parse_cell(self.cell)

    @property
    def label(self) -> str:
        return f"{self.row}, {self.column}"


@dataclass(frozen=True)
class Reference:
    """A paper entry we do not reproduce (another method, e.g. DD / SLDD), shown for context."""

    row: str
    column: str
    mean: float
    std: float
    why: str


@dataclass(frozen=True)
class TableSpec:
    """``number``: the paper's table number, or a lower-case name for a table of ours that the paper
    does not have (``"flexibility"``); ``reproduce`` takes either."""

    number: int | str
    title: str
    cells: tuple[PaperCell, ...]
    notes: tuple[str, ...] = ()  # how the paper's setting maps to cells (seeds, heads, ...)
    references: tuple[Reference, ...] = field(default=())
    measure: str = "accuracy"  # "accuracy" (%, mean ± std) or "minutes" (training time: Table 4)
    cost: bool = False  # show what each cell cost (distillation, teacher, test minutes) in a column
    # (method, what its labels are): every row beside the row of that method with the same target, base and settings,
    # test model for test model (or seed for seed), in a column "vs <what>" (report.add_versus)
    versus: tuple[str, str] | None = None
    # figure(rows, png_path) -> the PNG written, or None: a picture of the table's rows (report.write_report's rows)
    figure: Callable[[list[dict], Path], Path | None] | None = field(default=None, compare=False)

    @property
    def ours_only(self) -> bool:
        """No cell has a paper number (a table of ours): no paper, difference or flag columns, no "ours only" notes."""
        return all(c.mean is None for c in self.cells)

    @property
    def key(self) -> str:
        return f"T{self.number}" if isinstance(self.number, int) else self.number

    @property
    def heading(self) -> str:
        """``Table 10`` / ``Flexibility table (ours)``."""
        return f"Table {self.number}" if isinstance(self.number, int) else f"{self.number.capitalize()} table (ours)"

    @property
    def stem(self) -> str:
        """File stem of the written table: ``table10`` / ``table-flexibility``."""
        return f"table{self.number}" if isinstance(self.number, int) else f"table-{self.number}"

    def names(self) -> list[str]:
        return [c.cell for c in self.cells]

    def paper(self, name: str) -> PaperCell:
        for c in self.cells:
            if c.cell == name:
                return c
        raise KeyError(name)

    def __post_init__(self) -> None:
        if isinstance(self.number, str) and not re.fullmatch(r"[a-z][a-z0-9-]*", self.number):
            raise ValueError(f"a named table's name is lower-case letters, digits and '-', got {self.number!r}")
        if self.measure not in ("accuracy", "minutes"):
            raise ValueError(f"table {self.number}: unknown measure {self.measure!r}")
        seen: set[str] = set()
        for c in self.cells:
            canonical = parse_cell(c.cell).name
            if canonical != c.cell:
                raise ValueError(f"table {self.number}: cell {c.cell!r} is not canonical ({canonical!r})")
            if c.cell in seen:
                raise ValueError(f"table {self.number}: duplicate cell {c.cell!r}")
            seen.add(c.cell)


TABLES: Registry[TableSpec] = Registry("table")


def register_table(spec: TableSpec) -> TableSpec:
    TABLES.register(spec.key)(spec)
    return spec


def list_tables() -> list[TableSpec]:
    """The paper's tables by number, then ours by name."""
    specs = (TABLES.get(n) for n in TABLES.names())
    return sorted(specs, key=lambda t: (0, t.number, "") if isinstance(t.number, int) else (1, 0, t.number))


def get_table(name: str | int) -> TableSpec:
    """``1``, ``T1``, ``t1``, ``table1``, ``Table 1`` -> the spec of Table 1; ``flexibility`` -> that table of ours."""
    text = str(name).strip()
    m = re.fullmatch(r"(?:t|table)?\s*(\d+)", text, flags=re.IGNORECASE)
    key = f"T{int(m[1])}" if m else text.lower()
    if key not in TABLES:
        known = ", ".join(str(t.number) for t in list_tables())
        raise UserError(f"Unknown table '{text}'. Reproducible tables: {known} (write 1, T1 or table1, or a table's name).")
    return TABLES.get(key)
