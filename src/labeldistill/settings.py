"""Dataclass settings read back from JSON (config.json, checkpoints): one rule for every config."""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")


def from_dict(cls: type[T], d: dict[str, Any], *, what: str = "setting", tuples: tuple[str, ...] = ()) -> T:
    """``cls(**d)`` after refusing unknown keys (one line naming the known ones) and turning the
    JSON lists of ``tuples`` fields back into tuples."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"Unknown {what}(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    values = dict(d)
    for name in tuples:
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    return cls(**values)
