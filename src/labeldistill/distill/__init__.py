"""Label distillation: one online loop, pluggable meta-gradient strategies."""
from .config import DistillConfig
from .labels import Labels, normalise_
from .loop import Distiller, Interrupted, LoopResult, NonFiniteError
from .reset import ResetMonitor
from .run import distill, prepare, run_distillation
from .strategies import STRATEGIES, Strategy, list_methods, register_strategy

__all__ = ["DistillConfig", "Labels", "normalise_", "Distiller", "Interrupted", "LoopResult", "NonFiniteError", "ResetMonitor",
           "distill", "prepare", "run_distillation", "STRATEGIES", "Strategy", "list_methods", "register_strategy"]
