"""Meta-gradient strategies plugged into the one online loop (registered by name, one module each:
adding one is one new file with ``@register_strategy``)."""
from ...registry import import_plugins
from .base import STRATEGIES, StepOutput, Strategy, register_strategy

import_plugins(__name__, __path__)  # fill the registry


def list_methods() -> list[str]:
    return STRATEGIES.names()


def trains_students(method: str | None) -> bool:
    """Whether ``method`` is a strategy whose persistent models are students trained the test protocol's way
    (``persistent == "protocol"``: never reset, and its sets have no paper T); False for any other name (DD, SLDD)."""
    return method in STRATEGIES and STRATEGIES.get(STRATEGIES.canonical(method)).persistent == "protocol"


__all__ = ["STRATEGIES", "StepOutput", "Strategy", "list_methods", "register_strategy", "trains_students"]
