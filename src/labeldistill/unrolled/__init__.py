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

    # or as a run (run directory, resume, the saved set with its schedule):
    ds = labeldistill.distill("mnist", method="dd", out="runs/mnist-dd")
"""
from .config import METHODS, UnrolledConfig, unrolled_config
from .evaluate import ScheduleEvaluation, evaluate_schedule, evaluate_set, evaluation_seeds, schedule_labels, train_on_schedule
from .network import FunctionalNet, inner_loss
from .schedule import (VARIANTS, Schedule, apply_variant, average_lr, extended, first_steps, from_file_schedule, learned_schedule,
                       parse_variant, shuffled_across_epochs, shuffled_steps, shuffled_within_epochs,
                       to_file_schedule)
from .trainer import UnrolledDistiller, crop_flip, unrolled_loss
from .run import UnrolledRunConfig, checkpoint_set, distill_unrolled, is_unrolled_record, run_unrolled

__all__ = [
    "METHODS", "UnrolledConfig", "unrolled_config",
    "ScheduleEvaluation", "evaluate_schedule", "evaluate_set", "evaluation_seeds", "schedule_labels", "train_on_schedule",
    "FunctionalNet", "inner_loss",
    "VARIANTS", "Schedule", "apply_variant", "average_lr", "extended", "first_steps", "from_file_schedule", "learned_schedule",
    "parse_variant", "shuffled_across_epochs", "shuffled_steps", "shuffled_within_epochs", "to_file_schedule",
    "UnrolledDistiller", "crop_flip", "unrolled_loss",
    "UnrolledRunConfig", "checkpoint_set", "distill_unrolled", "is_unrolled_record", "run_unrolled",
]
