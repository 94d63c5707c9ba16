"""A tiny name -> object registry, one per extension kind (models, datasets, strategies, tables).

Registries are filled at import time by decorators in the modules that define the objects. A package
that holds one kind calls :func:`import_plugins` on itself, so adding a model, a strategy, a selector,
a protocol, an export format, an executor or a table is one new file with a decorator and nothing
else edited (modules whose names start with ``_`` are the package's helpers, not plugins).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names (and aliases) -> objects of one kind. ``others``: the valid names that live elsewhere, for the
    message about an unknown name (e.g. the methods with their own trainer beside the strategies)."""

    def __init__(self, kind: str, *, others: str = "") -> None:
        self.kind = kind
        self.others = others
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            for n in (name, *aliases):
                if n in self._items or n in self._aliases:
                    raise ValueError(f"duplicate {self.kind} name {n!r}")
            self._items[name] = obj
            for a in aliases:
                self._aliases[a] = name
            return obj

        return deco

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` (itself or the name it is an alias of); a one-line UserError naming
        the known names, then their aliases, when it is neither."""
        name = self._aliases.get(name, name)
        if name not in self._items:
            aliases = f" (aliases: {', '.join(sorted(self._aliases))})" if self._aliases else ""
            others = f"; {self.others}" if self.others else ""
            raise UserError(f"Unknown {self.kind} '{name}'. Known: {', '.join(self.names())}{aliases}{others}.")
        return name

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_plugins(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__name__`` and ``__path__``) whose name does not start
    with ``_``, in name order, so that their decorators fill the package's registry."""
    for mod in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{package}.{mod.name}")
