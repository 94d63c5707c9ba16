"""Meta-gradient strategies plugged into the one online loop (registered by name)."""
from . import implicit, lookahead, ridge, second_order  # noqa: F401  (fill the registry)
from .base import STRATEGIES, StepOutput, Strategy, register_strategy


def list_methods() -> list[str]:
    return STRATEGIES.names()


__all__ = ["STRATEGIES", "StepOutput", "Strategy", "list_methods", "register_strategy"]
