"""Base-set selection: which N real training images get learned labels (``--base-select NAME``).

Each selector is one module here with ``@register_selector("name")``; every public module of
this package is imported on first use, so adding one is one new file and nothing else edited.

    list_selectors()                                  -> ["atypical", "class-quota", "herding", "kcenter", "kmeans", "label-span", "paper-table7", "random", "table7-halving"]
    choose_base(target, 100, seed, "paper-table7")   -> (positions in target.train, provenance record)
    with selection_cache("out/selections"): ...      -> where trained selectors keep their choice

Selectors see a :class:`SelectionContext`: the training and validation splits, never the test split.
"""
from __future__ import annotations

from ..registry import import_plugins
from ._base import SELECTORS, Selection, SelectionContext, Selector, by_class, check_selection, register_selector
from ._cache import default_cache_dir, selection_cache
from ._choose import choose_base, content_sha256, get_selector

_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    import_plugins(__name__, __path__)
    _loaded = True


def list_selectors() -> list[str]:
    """Registered selector names, sorted (the CLI's choices for ``--base-select``)."""
    _load()
    return SELECTORS.names()


def canonical_selector(name: str) -> str:
    """The registered name of ``name`` (aliases resolved); a one-line UserError listing the known ones."""
    _load()
    return SELECTORS.canonical(name)


__all__ = ["SELECTORS", "Selection", "SelectionContext", "Selector", "by_class", "canonical_selector", "check_selection",
           "choose_base", "content_sha256", "default_cache_dir", "get_selector", "list_selectors", "register_selector",
           "selection_cache"]
