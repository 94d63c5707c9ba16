"""DD (Wang et al. 2018) and SLDD (Sucholutsky & Schonlau 2019): the unrolled trainer the paper
compares against, its step schedule, the paper's sensitivity edits of it, and DD's test protocol.

Example::

    from labeldistill.data import load_for_arch
    from labeldistill.unrolled import FunctionalNet, UnrolledDistiller, evaluate_schedule, unrolled_config

    data = load_for_arch("mnist", "lenet")
    net = FunctionalNet.from_arch("lenet", 1, 28, 10)
    dist = UnrolledDistiller(unrolled_config("mnist", "dd"), data.train.x, data.train.y, net, 10)
    dist.run()
    result = evaluate_schedule(net, *dist.distilled(), dist.schedule(), data.test.x, data.test.y)
"""
from .config import METHODS, UnrolledConfig, unrolled_config
from .evaluate import ScheduleEvaluation, evaluate_schedule, evaluation_seeds, train_on_schedule
from .network import FunctionalNet, inner_loss
from .schedule import Schedule, average_lr, extended, first_steps, learned_schedule, shuffled_across_epochs, shuffled_within_epochs
from .trainer import UnrolledDistiller, crop_flip, unrolled_loss

__all__ = [
    "METHODS", "UnrolledConfig", "unrolled_config",
    "ScheduleEvaluation", "evaluate_schedule", "evaluation_seeds", "train_on_schedule",
    "FunctionalNet", "inner_loss",
    "Schedule", "average_lr", "extended", "first_steps", "learned_schedule", "shuffled_across_epochs", "shuffled_within_epochs",
    "UnrolledDistiller", "crop_flip", "unrolled_loss",
]
