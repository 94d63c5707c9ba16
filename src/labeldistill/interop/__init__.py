"""Writing a distilled set for other tools (``labeldistill export --format NAME``): a registry of
formats, one module each. ``labeldistill`` (the default) is the library's own safetensors file
(:mod:`labeldistill.artifact`); ``ddranking`` writes what DD-Ranking's soft-label evaluator reads
(:mod:`.ddranking`). Add one with ``@register_format("name")`` on ``write(ds, out) -> (path, lines)``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..registry import Registry, import_plugins

Writer = Callable[..., tuple[Path, list[str]]]
FORMATS: Registry[Writer] = Registry("export format")


def register_format(name: str) -> Callable[[Writer], Writer]:
    return FORMATS.register(name)


def list_formats() -> list[str]:
    return sorted(FORMATS.names(), key=lambda n: (n != "labeldistill", n))


import_plugins(__name__, __path__)  # register the formats (one module each)

__all__ = ["FORMATS", "register_format", "list_formats"]
