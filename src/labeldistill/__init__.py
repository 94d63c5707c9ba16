"""labeldistill: learn soft labels for a few fixed images (Bohdal et al., 2020).

Public API::

    labeldistill.distill("mnist", base=100, method="ridge")  -> DistilledSet
    labeldistill.distill("mnist", method="dd")                -> DistilledSet (DD / SLDD: images and a learned step schedule)
    labeldistill.distill_many([cfg0, cfg1, ...], outs=[...])  -> [DistilledSet, ...] (runs stepped together: seeds stacked)
    labeldistill.load("runs/x")                               -> DistilledSet
    labeldistill.average_labels([load("runs/a"), load("runs/b")]) -> DistilledSet (the mean of label sets on the same images)
    labeldistill.evaluate("runs/x", arch="lenet")             -> Evaluation
    labeldistill.evaluate("runs/dd", variant="first-steps:20")  (DD / SLDD sets: the paper's sensitivity variants)
    labeldistill.baseline("mnist", base=100, labels="teacher", protocol="dc-dsa", save_set="t.safetensors")  -> dict
"""
from ._version import __version__

from .artifact import DistilledSet, load  # noqa: E402
from .ensemble import average_labels  # noqa: E402
from .data import list_datasets  # noqa: E402
from .distill import DistillConfig, list_methods  # noqa: E402
from .distill import distill as _distill_labels  # noqa: E402
from .distill.stack import distill_many  # noqa: E402
from .engine import train_on  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .models import list_models  # noqa: E402
from .unrolled import METHODS as UNROLLED_METHODS  # noqa: E402
from .unrolled import UnrolledRunConfig, distill_unrolled  # noqa: E402


def distill(target: str = "mnist", *, method: str = "second-order", **kwargs) -> DistilledSet:
    """Distil ``target`` into a small set; see :func:`labeldistill.distill.distill` (label
    distillation: ``"second-order"``, ``"ridge"``) and :func:`labeldistill.unrolled.distill_unrolled`
    (``"dd"``: images and per-step lrs; ``"sldd"``: also one label vector per image).

    Example:
        >>> ds = labeldistill.distill("mnist", method="dd", out="runs/mnist-dd", epochs=10)
        >>> ds.schedule.lrs, ds.evaluation["accuracy_mean"]
    """
    config = kwargs.get("config")
    if isinstance(config, UnrolledRunConfig):
        method = config.method
    elif kwargs.get("resume") and kwargs.get("out") is not None:  # a resumed run keeps its own method
        from pathlib import Path

        from .runs import read_json
        from .unrolled import is_unrolled_record

        record_path = Path(kwargs["out"]) / "config.json"
        if record_path.exists() and is_unrolled_record(read_json(record_path)):
            method = read_json(record_path)["method"]
    if method in UNROLLED_METHODS:
        return distill_unrolled(target, method=method, **kwargs)
    return _distill_labels(target, method=method, **kwargs)

def baseline(target: str = "mnist", *, data_root=None, out=None, progress: bool = False, save_set=None, **settings) -> dict:
    """A baseline on ``target``'s base images: true, smoothed or teacher labels (``settings``: the fields of
    :class:`labeldistill.baselines.BaselineSettings`, e.g. ``base=100, labels="teacher", temperature="auto",
    protocol="dc-dsa"``); its result (test accuracies, the chosen T or protocol, the teacher's record).
    ``save_set``: also write the labelled base set as a distilled-set file (:func:`load` reads it).

    Example:
        >>> labeldistill.baseline("mnist", base=100, smoothing=0.1, data_root="data")["accuracy_mean"]
    """
    import dataclasses

    from .baselines import BaselineSettings, baseline as run
    from .errors import UserError

    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(BaselineSettings)})
    if unknown:
        raise UserError(f"Unknown baseline setting(s): {', '.join(unknown)}; see labeldistill.baselines.BaselineSettings.")
    return run(BaselineSettings(target=target, **settings), data_root=data_root, out=out, progress=progress, save_set=save_set)


__all__ = ["DistilledSet", "average_labels", "DistillConfig", "UnrolledRunConfig", "baseline", "distill", "distill_many", "evaluate", "list_datasets", "list_methods", "list_models",
           "load", "train_on", "__version__"]
