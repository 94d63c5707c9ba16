"""Architectures (registered by name) and the ridge-regression head."""
from . import alexnet, convnet, lenet, resnet  # noqa: F401  (fill the registry)
from .base import MODELS, Classifier, ModelInfo, build_model, check_surface, get_model_info, input_size_for, list_models, register_model
from .ridge import RidgeClassifier, pseudo_gradient_step, ridge_logits, ridge_solve, ridge_solve_primal, with_bias

__all__ = [
    "MODELS", "Classifier", "ModelInfo", "build_model", "check_surface", "get_model_info", "input_size_for", "list_models",
    "register_model", "RidgeClassifier", "pseudo_gradient_step", "ridge_logits", "ridge_solve", "ridge_solve_primal", "with_bias",
]
