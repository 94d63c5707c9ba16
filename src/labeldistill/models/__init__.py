"""Architectures (registered by name, one module each: adding one is one new file with
``@register_model``) and the ridge-regression head."""
from ..registry import import_plugins
from .base import MODELS, Classifier, ModelInfo, build_model, check_surface, get_model_info, input_size_for, list_models, register_model
from .ridge import RidgeClassifier, pseudo_gradient_step, ridge_logits, ridge_solve, ridge_solve_primal, with_bias

import_plugins(__name__, __path__)  # fill the registry

__all__ = [
    "MODELS", "Classifier", "ModelInfo", "build_model", "check_surface", "get_model_info", "input_size_for", "list_models",
    "register_model", "RidgeClassifier", "pseudo_gradient_step", "ridge_logits", "ridge_solve", "ridge_solve_primal", "with_bias",
]
