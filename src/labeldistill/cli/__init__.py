"""The ``labeldistill`` command: one module per sub-command, each with ``add(subparsers)``."""
from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import UserError
from . import baseline, datasets, demo, distill, evaluate, export, report, reproduce, sweep

COMMANDS = (demo, datasets, distill, evaluate, baseline, export, reproduce, sweep, report)


class Parser(argparse.ArgumentParser):
    """Argument errors in one line (not the full usage text), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = Parser(
        prog="labeldistill",
        description="Learn soft labels for a few fixed images so that models trained on them do well on a target task.",
    )
    parser.add_argument("--version", action="version", version=f"labeldistill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..allocator import keep_freed_memory

    keep_freed_memory()  # a labeldistill process is one job: keep freed memory rather than page-fault it in again
    from ..runs.provenance import pin_code_identity

    pin_code_identity()  # the records name the code the process started with (a long run outlives edits to the tree)
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("default", category=UserWarning, module="labeldistill")
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        lines = str(e).strip().splitlines() or [type(e).__name__]
        print(f"labeldistill: {e.prefix}" + "\n".join(lines[:3]), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("labeldistill: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
