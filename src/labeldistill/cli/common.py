"""Options shared by several commands, TOML configs, and JSON output."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from ..errors import UserError
from ..models import list_models

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def add_common(p: argparse.ArgumentParser, *, seed: bool = True, arch: bool = True, progress: str = "auto") -> None:
    p.add_argument("--data-root", default=None, help="folder with dataset files (else $LABELDISTILL_DATA, else the cache folder)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    if seed:
        p.add_argument("--seed", type=int, default=None, help="run seed; every random choice derives from it")
    if arch:
        p.add_argument("--arch", default=None, help=f"architecture: {', '.join(list_models())} (default by dataset, as in the paper)")
    p.add_argument("--config", default=None, metavar="FILE", help="TOML file with any setting; flags override it")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
    add_progress(p, default=progress)


def add_teacher_recipe(p: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """``--teacher-recipe`` and ``--teacher-lr`` (how a teacher trains: ``labeldistill.teacher.TEACHER_RECIPES``)."""
    from ..teacher import TEACHER_RECIPES

    p.add_argument("--teacher-recipe", default=None, choices=list(TEACHER_RECIPES),
                   help=prefix + "how the teacher trains: adam (the default: Adam lr 1e-3, no augmentation, a cheap teacher) or "
                        "expert (Qin et al.'s expert as MTT's buffer.py trains it: SGD lr 1e-3 without momentum, DSA views; "
                        "with --teacher-arch convnet3 and more --teacher-epochs)")
    p.add_argument("--teacher-lr", type=float, default=None, help=prefix + "the teacher's learning rate (default: its recipe's, 1e-3)")


def add_progress(p: argparse.ArgumentParser, *, default: str = "auto") -> None:
    """``--progress {auto,on,off}``: one meaning in every command (:func:`show_progress`)."""
    p.add_argument("--progress", choices=("auto", "on", "off"), default=default,
                   help=f"progress bars on stderr: on, off, or auto (where stderr is a terminal and --json is not given); "
                        f"on writes them into a background run's log too (default {default})")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether the command shows progress bars (``--progress``; distill's ``--no-progress`` is ``--progress off``)."""
    mode = "off" if getattr(args, "no_progress", False) else getattr(args, "progress", "auto")
    if mode == "auto":
        return not getattr(args, "json", False) and sys.stderr.isatty()
    return mode == "on"


def parse_split(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise UserError(f"--split takes three fractions TRAIN,VAL,TEST such as 0.8,0.1,0.1, got '{text}'.")
    return parts  # type: ignore[return-value]


def read_toml(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"Config file {path} not found.") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"Config file {path} is not valid TOML: {e}.") from None
    return {k.replace("-", "_"): v for k, v in data.items()}


def merge(cls: type, toml: dict[str, Any], flags: dict[str, Any]) -> Any:
    """dataclass defaults < TOML file < command-line flags (flags left at None do not count)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(toml) - known)
    if unknown:
        raise UserError(f"Unknown setting(s) in the config file: {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    values = {**toml, **{k: v for k, v in flags.items() if k in known and v is not None}}
    if isinstance(values.get("split"), list):
        values["split"] = tuple(values["split"])
    return cls(**values)


def emit(obj: dict[str, Any], as_json: bool, text: str) -> None:
    """Print the human summary, and with --json one JSON object as the very last line."""
    print(text)
    if as_json:
        sys.stdout.flush()
        print(json.dumps(obj, sort_keys=True, default=str))


def fmt_acc(result: dict[str, Any]) -> str:
    text = f"{result['accuracy_mean']:.2f} +- {result['accuracy_std']:.2f} %"
    best = result.get("best_check")  # a protocol with test checks (qin2024): its authors' reporting, shown apart
    if best:
        n = len(result["test_checks"]["epochs"])
        text += f" [best of {n} test checks, as their authors report (chosen on the test set): {best['accuracy_mean']:.2f} +- {best['accuracy_std']:.2f} %]"
    return text

