"""Label (and image) distillation: one online loop, pluggable meta-gradient strategies and learned quantities."""
from .config import DistillConfig
from .labels import FixedLabels, Labels, normalise_
from .learned import LEARN, SyntheticSet, build_synthetic, list_learn
from .loop import Distiller, Interrupted, LoopResult, NonFiniteError
from .reset import ResetMonitor
from .run import distill, prepare, run_distillation
from .stack import distill_many, stack_groups, stack_key
from .strategies import STRATEGIES, Strategy, list_methods, register_strategy

__all__ = ["DistillConfig", "FixedLabels", "Labels", "normalise_", "LEARN", "SyntheticSet", "build_synthetic", "list_learn", "Distiller", "Interrupted", "LoopResult", "NonFiniteError", "ResetMonitor",
           "distill", "distill_many", "stack_groups", "stack_key", "prepare", "run_distillation", "STRATEGIES", "Strategy", "list_methods", "register_strategy"]
