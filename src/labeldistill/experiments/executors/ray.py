"""``--executor ray``: each run as a Ray task on a cluster (``--address``), or on a local one.

* **Unit of work.** The cells that share a run directory (a run and its evaluations) form one
  task, computed in order inside it; different runs are different tasks and run side by side.
  With ``stack=K`` (``--stack K``) up to K distillation runs that share a stack key form one task
  instead, their loops stepped together (:func:`labeldistill.distill.distill_many`).
  Missing data and stored cells are settled in the driver and never submitted.
* **Run directories: shared storage.** A task computes its cells with the local executor's
  function (:func:`~labeldistill.experiments.runner.compute_outcome`) into the same
  ``OUT/runs/<slug>/`` and ``OUT/cells/<slug>.json`` the local executor writes, ``OUT`` (and
  the data root) being paths every node sees (one machine; NFS or another shared file system
  for several). Only the small cell record travels back. This is what lets a lost worker's cell
  resume from its checkpoint; the driver checks that each finished cell's JSON is visible to it
  and reports a cell as failed if it is not (``--out`` not shared).
* **Threads (results identical to ``--executor local``).** Rule: a task computes with exactly
  the intra-op thread count the local executor would use in the driver's process,
  ``torch.get_num_threads()`` there (``OMP_NUM_THREADS`` sets it), unless ``threads`` is given:
  the task reserves that many CPUs (``num_cpus``), its runtime_env sets ``OMP_NUM_THREADS`` and
  ``MKL_NUM_THREADS`` to it and the task calls ``torch.set_num_threads`` with it before anything
  runs. Same thread count, same code, same kind of CPU -> the same bits. ``--device cuda`` adds
  a fractional ``num_gpus`` (``gpus_per_cell``, default 0.5); the GPU Ray assigns is ``cuda``.
* **Lost workers.** A task whose worker dies (killed, node lost) is re-run by Ray
  (``max_retries``, default 3; a cell's own error is not retried: it is its outcome). The rerun
  finds the cells finished before the death stored, and the run directory of the interrupted
  cell holding its last checkpoint, so the cell resumes from there, exactly as ``labeldistill
  distill --resume`` does. The run's :class:`~labeldistill.runs.RunLock` is an ``flock``, which the
  kernel drops when the holder dies (even on SIGKILL), so a dead worker's lock never blocks the
  rerun; on a network file system that releases it only after the dead client's lease runs out,
  the task waits for the lock (``lock_wait`` seconds, default 300) instead of failing at once.
* **Progress.** A tqdm bar over finished cells across the cluster (``ray.wait``), and one log
  line per finished cell.
* **Same code.** Each task returns its code identity (numerics version, commit, source hash);
  a task running other code than the driver's is logged as a warning (its records say which).
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

from ...errors import UserError
from .. import runner
from ..cells import parse_cell
from ..estimate import longest_first
from ..plan import DataView, Options, Plan, plan_cell
from ..units import compute_unit, unit_seconds, work_units
from . import register_executor, stack_size

DEFAULT_GPUS_PER_CELL = 0.5
PASSED_ENV = ("LABELDISTILL_DATA", "LABELDISTILL_CACHE")  # so that every worker resolves the same data root / cache


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray, which is not installed: pip install 'labeldistill[ray]' (or pip install ray).") from None
    return ray


def wait_for_lock(run_dir: Path, seconds: float, poll: float = 1.0) -> None:
    """Return once nobody holds the run directory's lock (at most ``seconds``; then the cell's
    own lock attempt reports it)."""
    from ...runs import RunLock

    if not run_dir.exists():
        return
    deadline = time.monotonic() + seconds
    while True:
        try:
            RunLock(run_dir).acquire().release()
            return
        except UserError:
            if time.monotonic() >= deadline:
                return
            time.sleep(poll)


def run_group(plans: list[Plan], opts: Options, threads: int, lock_wait: float, setup: Callable[[], None] | None = None):
    """The Ray task: the cells of one run directory, in order, or of one stack (their runs stepped
    together first). Returns (code identity, outcomes)."""
    import torch

    from ...allocator import keep_freed_memory
    from ...runs.provenance import code_identity

    torch.set_num_threads(threads)
    keep_freed_memory()  # as the labeldistill command does: no page faults for every step's tensors
    if setup is not None:
        setup()
    outcomes: list = [runner.precheck(plan, opts) for plan in plans]  # a rerun after a lost worker: what it finished is stored
    todo = [p for p, o in zip(plans, outcomes) if o is None]
    for run_dir in dict.fromkeys(p.run_dir(opts.out) for p in todo):
        wait_for_lock(run_dir, lock_wait)
    computed = iter(compute_unit(todo, opts))
    outcomes = [next(computed) if o is None else o for o in outcomes]
    return code_identity(), [dataclasses.replace(o, plan=None) for o in outcomes]


@register_executor("ray")
class RayExecutor:
    """Options: ``address`` (``ray.init``'s; None: $RAY_ADDRESS, a running local cluster or a
    new local one; a Ray already initialised in this process is used as it is), ``threads``,
    ``gpus_per_cell``, ``max_retries``, ``lock_wait`` (see the module), ``worker_setup`` (a
    function each task calls first, e.g. to configure logging)."""

    def __init__(self, address: str | None = None, threads: int | None = None, gpus_per_cell: float | None = None,
                 max_retries: int = 3, lock_wait: float = 300.0, worker_setup: Callable[[], None] | None = None,
                 stack: int = 1, **_options: object) -> None:
        if threads is not None and threads < 1:
            raise UserError(f"threads must be at least 1, got {threads}.")
        self.stack = stack_size(stack)
        self.address, self.threads, self.gpus_per_cell = address, threads, gpus_per_cell
        self.max_retries, self.lock_wait, self.worker_setup = max_retries, lock_wait, worker_setup
        import_ray()  # fail in one line before anything is planned

    def run_cells(self, names: list[str], opts: Options, data: DataView, log: Callable[[str], None]) -> list:
        return self.run_plans([plan_cell(parse_cell(name), opts, data) for name in names], opts, log)

    def resources(self, opts: Options) -> dict:
        """The task options: CPUs = threads, fractional GPUs with --device cuda, the pinned environment."""
        import torch

        threads = self.threads or torch.get_num_threads()
        cuda = bool(opts.device and opts.device.startswith("cuda"))
        gpus = (self.gpus_per_cell if self.gpus_per_cell is not None else DEFAULT_GPUS_PER_CELL) if cuda else 0
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
        return {"num_cpus": threads, "num_gpus": gpus, "max_retries": self.max_retries, "retry_exceptions": False,
                "runtime_env": {"env_vars": env}}

    def run_plans(self, plans: list[Plan], opts: Options, log: Callable[[str], None]) -> list:
        from tqdm import tqdm

        from ...runs.provenance import code_identity

        ray = import_ray()
        n = len(plans)
        outcomes: list = [None] * n
        todo: list[int] = []
        for i, plan in enumerate(plans):
            outcome = runner.precheck(plan, opts)
            if outcome is not None:
                outcomes[i] = outcome
                runner.log_outcome(f"[{i + 1}/{n}] {plan.cell.name}", outcome, log)
            else:
                todo.append(i)
        if not todo:
            return outcomes
        # One task per run directory, or per stack of runs (--stack K): units.work_units.
        # Submitted longest first: Ray starts queued tasks of one shape largely in submission order.
        units = [[todo[j] for j in unit] for unit in work_units([plans[i] for i in todo], opts, self.stack)]
        data = DataView(opts.data_root)
        groups = dict(enumerate(longest_first(units, [unit_seconds([plans[i] for i in unit], opts, data) for unit in units])))
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=True)
        # The tasks see absolute paths (a worker's working directory is not the driver's).
        task_opts = dataclasses.replace(opts, out=Path(opts.out).absolute(), progress=False,
                                        data_root=str(Path(opts.data_root).expanduser().absolute()) if opts.data_root else None)
        resources = self.resources(opts)
        remote = ray.remote(run_group)
        refs: dict = {}
        try:
            for idx in groups.values():
                first = plans[idx[0]]
                for i in idx:
                    log(f"[{i + 1}/{n}] {plans[i].cell.name}: submitted ({runner.describe_action(plans[i], opts)})")
                ref = remote.options(**resources, name=f"labeldistill {first.run_slug}").remote(
                    [plans[i] for i in idx], task_opts, resources["num_cpus"], self.lock_wait, self.worker_setup)
                refs[ref] = idx
            mine = code_identity()
            warned = False
            total = sum(len(v) for v in groups.values())
            with tqdm(total=total, desc=f"cells on ray ({resources['num_cpus']} thread(s) each)", unit="cell",
                      disable=not opts.progress, dynamic_ncols=True) as bar:
                pending = list(refs)
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for ref in done:
                        idx = refs.pop(ref)
                        try:
                            identity, results = ray.get(ref)
                        except Exception as e:  # noqa: BLE001  (the task was lost beyond its retries)
                            first_line = (str(e).strip().splitlines() or [""])[0]
                            msg = f"Ray task failed ({type(e).__name__}{': ' + first_line if first_line else ''})"
                            identity, results = mine, [runner.Outcome(plans[i].cell.name, "failed", message=msg) for i in idx]
                        if identity != mine and not warned:
                            warned = True
                            log(f"WARNING: a Ray worker runs other code than this driver ({identity} here {mine}); "
                                "its records say which code made them.")
                        for i, outcome in zip(idx, results):
                            outcome = dataclasses.replace(outcome, plan=plans[i])
                            if outcome.done and not plans[i].cell_file(opts.out).exists():
                                outcome = dataclasses.replace(outcome, status="failed", message=(
                                    f"{plans[i].cell.name} finished on a Ray worker, but {plans[i].cell_file(opts.out)} is not "
                                    "visible here: --out must be a folder every node shares at the same path."))
                            outcomes[i] = outcome
                            runner.log_outcome(f"[{i + 1}/{n}] {plans[i].cell.name}", outcome, log)
                        bar.update(len(idx))
        except KeyboardInterrupt:
            for ref in refs:  # the runs keep their checkpoints: run it again and they resume
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()
        return outcomes
