"""Datasets: named catalog entries and custom files, split, normalised once, resident on the device.

Public API::

    load_target("mnist", data_root=..., seed=0)          -> TargetData (train / val / test)
    load_source("emnist-letters", preprocessing=target.preprocessing) -> SourceData
    select_base(target.train.y, 100, num_classes=10, generator=rng)   -> indices
    list_datasets(), dataset_status(), resolve_data_root()
"""

from .catalog import list_datasets
from .preprocess import Preprocessing
from .resolve import dataset_status, load_for_arch, load_source, load_target, resolve_data_root
from .selection import select_base
from .tensors import LabelledTensors, SourceData, TargetData

__all__ = [
    "LabelledTensors",
    "Preprocessing",
    "SourceData",
    "TargetData",
    "dataset_status",
    "list_datasets",
    "load_for_arch",
    "load_source",
    "load_target",
    "resolve_data_root",
    "select_base",
]
