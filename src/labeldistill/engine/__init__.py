"""Train and evaluate fresh models on a small labelled set, many models at once."""
from .learner import HEADS, HeadConfig, Learner, ModelState, soft_cross_entropy
from .api import module_factory, to_modules, train_on
from .evaluate import Evaluation, PaperTest, evaluate_labels, evaluate_together, group_key, make_learner, model_seeds, train_groups
from .train import RecipeCheckpoint, accuracy, draw_batches, predict, train_models
from .recipe import TrainRecipe
from .augment import DSAParams, DSAugmenter

__all__ = ["module_factory", "to_modules", "train_on", "Evaluation", "PaperTest", "evaluate_labels", "evaluate_together", "group_key", "train_groups", "make_learner", "model_seeds", "HEADS", "HeadConfig", "Learner", "ModelState", "soft_cross_entropy", "accuracy", "draw_batches", "predict", "RecipeCheckpoint", "train_models", "TrainRecipe", "DSAParams", "DSAugmenter"]
