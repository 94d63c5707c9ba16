"""Where cells run: a registry of executors, one module each.

An executor takes the cells (or plans) of ``reproduce`` / ``sweep`` and returns their
:class:`~labeldistill.experiments.runner.Outcome` in the order given. Every executor computes a
cell with the same function (:func:`labeldistill.experiments.runner.compute_outcome`) into the
same run directory ``OUT/runs/<slug>``, so a cell's files and numbers do not depend on where it
ran, and runs are reused and resumed across executors.

* ``local`` (default): in this process, one cell after another (:mod:`.local`).
* ``ray``: each run (the cells sharing a run directory) as a Ray task on a cluster (:mod:`.ray`;
  needs the ``ray`` extra: ``pip install "labeldistill[ray]"``).
* ``stored``: nowhere: the cells already stored in ``OUT/cells``, the rest reported as not run (:mod:`.stored`; a
  look at a table while lanes still compute it).

Add one with :func:`register_executor`::

    @register_executor("mine")
    class Mine:
        def __init__(self, **options): ...
        def run_cells(self, names, opts, data, log) -> list[Outcome]: ...
        def run_plans(self, plans, opts, log) -> list[Outcome]: ...
"""
from __future__ import annotations

from collections.abc import Callable

from ...errors import UserError
from ...registry import Registry, import_plugins

EXECUTORS: Registry[type] = Registry("executor")


def register_executor(name: str) -> Callable[[type], type]:
    """Class decorator: make an executor available under ``name`` (``--executor NAME``)."""
    def wrap(cls: type) -> type:
        cls.name = name
        return EXECUTORS.register(name)(cls)
    return wrap


def list_executors() -> list[str]:
    """The registered executors' names, the default (``local``) first."""
    return sorted(EXECUTORS.names(), key=lambda n: (n != "local", n))


def get_executor(executor: object = None, **options: object) -> object:
    """An executor object: ``executor`` itself when it is one, else the registered class of that
    name (None: ``local``) made with ``options``."""
    if executor is None:
        executor = "local"
    if not isinstance(executor, str):
        return executor
    return EXECUTORS.get(executor)(**options)  # an unknown name: the registry's one-line UserError


def stack_size(stack: object) -> int:
    """An executor's ``stack`` option (``--stack K``) checked: at least 1."""
    if int(stack) < 1:  # type: ignore[call-overload]
        raise UserError(f"--stack must be at least 1 (got {stack}).")
    return int(stack)  # type: ignore[call-overload]


def run_cells(names: list[str], opts, data=None, log: Callable[[str], None] | None = None, executor: object = None) -> list:
    """Compute the named cells; a cell that fails is reported and the others go on.

    ``executor``: None or ``"local"`` (in this process, one cell after another, in order), another
    registered name (``"ray"``) or an executor object. ``KeyboardInterrupt`` stops at once; run it
    again and it resumes where it stopped.
    """
    from ..plan import DataView

    data = data or DataView(opts.data_root)
    return get_executor(executor).run_cells(names, opts, data, log or (lambda _msg: None))


def run_plans(plans: list, opts, log: Callable[[str], None] | None = None, executor: object = None) -> list:
    """Like :func:`run_cells` for plans made by the caller (``labeldistill sweep``)."""
    return get_executor(executor).run_plans(plans, opts, log or (lambda _msg: None))


import_plugins(__name__, __path__)  # register the executors (one module each)

__all__ = ["EXECUTORS", "register_executor", "list_executors", "get_executor", "run_cells", "run_plans"]
