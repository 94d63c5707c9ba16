"""labeldistill: learn soft labels for a few fixed images (Bohdal et al., 2020).

Public API::

    labeldistill.distill("mnist", base=100, method="ridge")  -> DistilledSet
    labeldistill.load("runs/x")                               -> DistilledSet
    labeldistill.evaluate("runs/x", arch="lenet")             -> Evaluation
"""
__version__ = "0.1.0"

from .artifact import DistilledSet, load  # noqa: E402
from .data import list_datasets  # noqa: E402
from .distill import DistillConfig, distill, list_methods  # noqa: E402
from .engine import train_on  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .models import list_models  # noqa: E402

__all__ = ["DistilledSet", "DistillConfig", "distill", "evaluate", "list_datasets", "list_methods", "list_models", "load", "train_on", "__version__"]
