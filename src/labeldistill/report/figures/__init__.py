"""The report's figures, one function per figure, a module per kind: learned labels on their images (:mod:`.labels`),
curves over a run (:mod:`.curves`), tables drawn (:mod:`.tables`), images (:mod:`.images`); what they share
(:mod:`._canvas`).

Every function takes plain numpy arrays / lists (no run directory), draws with matplotlib's
Agg canvas (no display, no pyplot state: nothing is left open), writes a PNG and returns
its path. Images are ``N x H x W x C`` in [0, 1]; labels are ``N x K`` probabilities.
"""
from ._canvas import COLOURS, DPI, MAX_GRID_IMAGES, accuracy_limits
from .curves import compare_curves, grad_variance, lr_schedule, moving_average, outer_loss, segment_starts, training_curves
from .images import base_sets, learned_vs_initial, step_order_images
from .labels import (ANNOTATE_MIN, argmax_agreement, class_label_matrix, label_bar_limits, label_grid, label_heatmap,
                     prototype_figure, prototypes)
from .tables import flexibility, model_accuracies, steps_accuracy

__all__ = [
    "COLOURS", "DPI", "MAX_GRID_IMAGES", "accuracy_limits",
    "compare_curves", "grad_variance", "lr_schedule", "moving_average", "outer_loss", "segment_starts", "training_curves",
    "base_sets", "learned_vs_initial", "step_order_images",
    "ANNOTATE_MIN", "argmax_agreement", "class_label_matrix", "label_bar_limits", "label_grid", "label_heatmap",
    "prototype_figure", "prototypes",
    "flexibility", "model_accuracies", "steps_accuracy",
]
