"""A tiny name -> object registry, one per extension kind (models, datasets, strategies, tables).

Registries are filled at import time by decorators in the modules that define the objects,
so adding a model or a strategy is one new file with a decorator and nothing else edited.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import check_choice

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
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
        name = self._aliases.get(name, name)
        return check_choice(self.kind, name, [*self._items, *self._aliases])

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
