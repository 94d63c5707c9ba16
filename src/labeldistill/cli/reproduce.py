"""``labeldistill reproduce``: not implemented yet (see the project's issues)."""
from __future__ import annotations

import argparse

from ..errors import UserError


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="(not implemented yet)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'labeldistill reproduce' is not implemented yet.")
