"""The paper's tables as data: one module per family, each registers its specs on import."""
from . import cross, dd, optimised, stability, timing, transfer, within  # noqa: F401
