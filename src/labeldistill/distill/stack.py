"""Several distillation runs stepped together in one process: ``distill_many`` (issue: many runs at once).

Runs that share the data, the architecture, the method, N and the schedule (typically seeds)
form a *stack* (:func:`stack_key`). A stack's loops advance in lockstep, one step of each run
per round, each run with its own state exactly as alone (labels and their optimiser, persistent
model, reset monitor, generators, validations), its own run directory, checkpoints and result:

* **CPU: bit for bit the single run.** Every random draw comes from the run's own seeded
  generators and nothing is shared between runs but read-only code, so interleaving their
  steps changes no value (``tests/test_stack.py`` compares every label, metric and accuracy).
* **GPU: one CUDA stream per run.** A run's steps and checkpoints are queued on its own stream
  (its step replayed as its CUDA graph there), so the card can run the K small steps of a round
  side by side, while the host only launches. The kernels are a single run's: a stacked run
  differs from the run alone only as two runs alone do (about 2e-6 in the labels after an epoch
  on an H200), and not at all with ``deterministic=True`` (docs/design-notes.md).
* **Validations and tests together.** Selection never feeds back into the loop, so a validation
  that falls due waits for the end of the round and the pending snapshots of all runs are scored
  in one engine call (:func:`.validation.score_together`: each run's validation models on its own
  base images, seeds and labels), where one call per run ran one after another; the runs' final
  tests likewise (:func:`..engine.evaluate_together`). Same numbers.

``batched=True`` takes a stack's steps as one batched step instead (:mod:`.batched`: the ``vmap`` over the runs;
equal to the runs alone up to rounding, for the stacks it can take).

Why streams by default, not one ``vmap`` over the K runs: the same exact per-run code (and so the same
numbers and checkpoints as a single run, and a free choice of per-run settings such as
learning rates or validation models), and a round costs K graph launches, which the host
issues in microseconds. On an H200 the streams overlapped only partly (8 loops in 3.8 times one;
docs/benchmarks.md), hence the batched step; which to default to waits for its measurement.

A run that fails (non-finite labels, its own error) stops alone: the others finish, and
``distill_many`` raises the first error afterwards (``errors="raise"``) or returns it in place
of that run's set (``errors="return"``). Ctrl-C checkpoints every run of the stack before
stopping; calling ``distill_many`` again with ``resume=True`` continues each from its checkpoint.
"""
from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..artifact import DistilledSet
from ..engine import Evaluation, evaluate_together
from ..numerics import float32_precision
from ..runs import StopRequest
from .config import DistillConfig
from .batched import BatchedStep, batchable
from .loop import Distiller, Interrupted, LoopResult
from .run import RunSession
from .validation import score_together

# Settings every run of a stack must share: they fix the shapes and the schedule of the loop
# (the data, what is learned and how, the minibatch sizes, the epochs and validations) and the
# process-wide float settings. Everything else (seed, learning rates, validation models, ...)
# may differ between the runs of one stack.
STACK_FIELDS = ("target", "source", "base", "target_size", "split", "method", "learn", "arch", "epochs", "target_batch",
                "inner_batch", "val_every", "meta_gradient", "test_protocol", "device", "cuda_graph", "allow_tf32",
                "deterministic")


def stack_key(cfg: DistillConfig) -> tuple:
    """Runs with equal keys may share a stack."""
    return tuple((name, _hashable(getattr(cfg, name))) for name in STACK_FIELDS)


def _hashable(v: object) -> object:
    return tuple(v) if isinstance(v, list) else v


def stack_groups(configs: Sequence[DistillConfig], size: int) -> list[list[int]]:
    """Indices of ``configs`` in stacks of at most ``size`` runs with equal :func:`stack_key`, in
    the order of first appearance (each stack in the order given)."""
    if size < 1:
        raise ValueError(f"stack size must be at least 1 (got {size})")
    by_key: dict[tuple, list[list[int]]] = {}
    order: list[list[int]] = []
    for i, cfg in enumerate(configs):
        stacks = by_key.setdefault(stack_key(cfg), [])
        if not stacks or len(stacks[-1]) >= size:
            stacks.append([])
            order.append(stacks[-1])
        stacks[-1].append(i)
    return order


def distill_many(configs: Sequence[DistillConfig], *, outs: Sequence[str | Path | None] | None = None,
                 resume: bool | Sequence[bool] = False, stack: int | None = None, data_root: str | Path | None = None,
                 download: bool = False, progress: bool = True, errors: str = "raise", batched: bool = False) -> list[DistilledSet | BaseException]:
    """Distil every config, stepping the runs of a stack together; one :class:`DistilledSet` per config, in order.

    Args:
        configs: the runs (e.g. ``[dataclasses.replace(cfg, seed=s) for s in range(8)]``).
        outs: a run directory per config (None: keep nothing on disk for that run).
        resume: continue each run from its checkpoint (one flag, or one per config).
        stack: at most this many runs per stack (None: all runs with equal :func:`stack_key`).
        errors: ``"raise"`` (after every other run has finished, the first error) or ``"return"``
            (the exception in place of that run's set).
        batched: take a stack's steps as one batched step where its runs allow it (:mod:`.batched`: a GPU runs one
            kernel per layer for all K runs; equal to the runs alone up to rounding, not bit for bit).
    Returns:
        The distilled sets (each with its ``evaluation``), equal to ``distill`` of each config alone.
    Example:
        >>> cfg = DistillConfig(target="mnist", base=100, method="ridge")
        >>> sets = distill_many([dataclasses.replace(cfg, seed=s) for s in range(4)], outs=[f"runs/s{s}" for s in range(4)])
    """
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return' (got {errors!r})")
    n = len(configs)
    outs = list(outs) if outs is not None else [None] * n
    resumes = [bool(resume)] * n if isinstance(resume, bool) else [bool(r) for r in resume]
    if len(outs) != n or len(resumes) != n:
        raise ValueError("outs and resume must have one entry per config")
    for cfg in configs:
        cfg.validate()
    results: list[DistilledSet | BaseException | None] = [None] * n
    for group in stack_groups(configs, stack or max(1, n)):
        got = run_stack([configs[i] for i in group], outs=[outs[i] for i in group], resume=[resumes[i] for i in group],
                        data_root=data_root, download=download, progress=progress, batched=batched)
        for i, r in zip(group, got):
            results[i] = r
    if errors == "raise":
        for r in results:
            if isinstance(r, BaseException):
                raise r
    return results  # type: ignore[return-value]


def run_stack(configs: Sequence[DistillConfig], *, outs: Sequence[str | Path | None], resume: Sequence[bool],
              data_root: str | Path | None = None, download: bool = False, progress: bool = True,
              batched: bool = False) -> list[DistilledSet | BaseException]:
    """One stack (equal :func:`stack_key`): open every run, step the loops in lockstep, test and save
    each. A run's own failure is returned in its place; Ctrl-C is raised after checkpointing all."""
    keys = {stack_key(c) for c in configs}
    if len(keys) != 1:
        raise ValueError("the runs of one stack must share their stack_key (see stack_groups)")
    out: list[DistilledSet | BaseException] = []
    sessions: list[RunSession | None] = []
    with float32_precision(configs[0].allow_tf32, configs[0].deterministic):
        try:
            for cfg, o, r in zip(configs, outs, resume):
                try:
                    sessions.append(RunSession(cfg, out=o, resume=r, data_root=data_root, download=download, progress=False))
                except Interrupted:
                    raise
                except Exception as e:  # noqa: BLE001  (this run cannot start; the others go on)
                    sessions.append(None)
                    out.append(e)
                    continue
                out.append(None)  # type: ignore[arg-type]
            live = [i for i, s in enumerate(sessions) if s is not None]
            loops = lockstep([sessions[i].distiller for i in live], progress=progress, desc=f"stack of {len(live)}",  # type: ignore[union-attr]
                             batched=batched)
            done = [(i, loop) for i, loop in zip(live, loops) if not isinstance(loop, BaseException)]
            for i, loop in zip(live, loops):
                if isinstance(loop, BaseException):
                    out[i] = loop
            tests = _test_together([(sessions[i], loop) for i, loop in done])  # type: ignore[misc]
            for (i, loop), ev in zip(done, tests):
                s = sessions[i]
                assert s is not None
                try:
                    out[i] = s.conclude(loop, evaluation=ev)
                except Interrupted:
                    raise
                except Exception as e:  # noqa: BLE001
                    out[i] = e
        finally:
            for s in sessions:
                if s is not None:
                    s.distiller.close()
                    s.release()
    return out


def _test_together(done: Sequence[tuple[RunSession, LoopResult]]) -> list[Evaluation | None]:
    """The paper-protocol tests of a stack's finished runs trained together (:func:`..engine.evaluate_together`: one
    engine call where K ran one after another), for the runs whose test is exactly that and shares the first's test
    split; None for the others (``conclude`` tests them itself). A failure leaves every run to test itself."""
    wanted = [(j, s.paper_test(loop)) for j, (s, loop) in enumerate(done)]
    wanted = [(j, t) for j, t in wanted if t is not None]
    out: list[Evaluation | None] = [None] * len(done)
    if len(wanted) < 2:
        return out
    test = done[wanted[0][0]][0].problem.target.test
    same = [(j, t) for j, t in wanted if done[j][0].problem.target.test.same_as(test)]
    try:
        for (j, _), ev in zip(same, evaluate_together([t for _, t in same], test.x, test.y)):
            out[j] = ev
    except Interrupted:
        raise
    except Exception:  # noqa: BLE001  (each run then tests itself, and fails alone if it must)
        return [None] * len(done)
    return out


def lockstep(distillers: Sequence[Distiller], *, progress: bool = True, desc: str = "stack",
             batched: bool = False) -> list[LoopResult | BaseException]:
    """Run the loops of ``distillers`` together, one step of each per round; their results in order.

    A loop that raises stops alone (its exception is its result). Ctrl-C (SIGINT) or SIGTERM asks every loop to
    checkpoint where it is and then raises :class:`Interrupted`. ``batched``: the runs' steps of a round are one
    batched step (:mod:`.batched`; equal to the runs alone up to rounding), where the runs allow it.
    """
    if batched and len(distillers) > 1 and (why := batchable(distillers)) is not None:
        warnings.warn(f"batched stack: {why}; its runs step in lockstep instead.", stacklevel=2)
        batched = False
    streams = [None if batched else _stream_for(d) for d in distillers]
    batch: BatchedStep | None = None
    results: list[LoopResult | BaseException | None] = [None] * len(distillers)
    for d in distillers:
        d.defer_validation = len(distillers) > 1  # due validations wait for the round's end, then go together
    with StopRequest() as stop:
        total = sum(d.total_steps for d in distillers)
        bar = tqdm(total=total, initial=sum(d.step for d in distillers), disable=not progress, desc=desc, unit="step",
                   dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30.0)
        active: list[int] = []
        try:
            for i, d in enumerate(distillers):
                try:
                    with _on(streams[i]):
                        d.start(bar=False)
                except Exception as e:  # noqa: BLE001  (this run cannot start; the others go on)
                    results[i] = e
                    continue
                active.append(i)
            while active:
                finishing = []
                if batched and batch is None and len(active) > 1 and batchable([distillers[i] for i in active]) is None:
                    batch = BatchedStep([distillers[i] for i in active], cuda_graph=distillers[active[0]].cfg.cuda_graph)
                if batch is not None:  # one batched step of every run
                    failed = _batched_round(batch, distillers, active, results, finishing)
                    bar.update(len(active) - len(finishing) - len(failed))
                    for i in failed + finishing:
                        active.remove(i)
                    if failed or finishing:  # the stack's membership changed: its runs become plain runs again
                        batch.release()
                        batch = None
                else:  # one step of each run, on its own stream
                    for i in list(active):
                        d = distillers[i]
                        try:
                            with _on(streams[i]):
                                more = d.advance()
                        except Interrupted:
                            raise
                        except Exception as e:  # noqa: BLE001  (one failed run must not stop the others)
                            results[i], more = e, False
                        if more:
                            bar.update(1)
                        else:
                            active.remove(i)
                            if results[i] is None:
                                finishing.append(i)
                # The validations due this round (and the last ones of runs that finished), of all runs at once.
                due = [i for i in active if distillers[i].validation_due] + [i for i in finishing if distillers[i].selector.pending]
                _validate_together([distillers[i] for i in due], [streams[i] for i in due], results, due)
                for i in finishing:
                    if results[i] is None:
                        try:
                            with _on(streams[i]):
                                results[i] = distillers[i].finish()
                        except Interrupted:
                            raise
                        except Exception as e:  # noqa: BLE001
                            results[i] = e
                active = [i for i in active if results[i] is None]
                if stop.requested:
                    if batch is not None:
                        batch.release()
                        batch = None
                    for i in active:
                        with _on(streams[i]):
                            distillers[i].save_now()
                    dirs = " ".join(str(distillers[i].run_dir) for i in active)
                    raise Interrupted(f"Stopped; every run of the stack checkpointed. Resume them with resume=True ({dirs}).")
            _join(streams)
        finally:
            bar.close()
            for d in distillers:
                d.close_bar()
    return results  # type: ignore[return-value]


def _batched_round(batch: BatchedStep, distillers: Sequence[Distiller], active: list[int], results: list,
                   finishing: list[int]) -> list[int]:
    """One round of a batched stack: each run begins its step (its minibatch from its own generators), one batched step
    takes them all, each run ends its step (records, checkpoints, epoch end). Returns the runs that failed; runs whose
    loops are done go into ``finishing``."""
    members = batch.runs
    t0 = time.perf_counter()
    going = [d.begin_step() for d in members]
    if not all(going):  # the runs share the schedule, so all end together (a run that has begun a step begins it again)
        finishing.extend(i for i, g in zip(active, going) if not g)
        return []
    inputs = [d.step_inputs() for d in members]
    records = batch(torch.stack([r for r, _ in inputs]), torch.stack([n for _, n in inputs]))
    failed = []
    for i, d, rec in zip(active, members, records):
        try:
            d.take_record(rec)
            d.end_step(t0)
        except Interrupted:
            raise
        except Exception as e:  # noqa: BLE001  (one failed run must not stop the others)
            results[i] = e
            failed.append(i)
    return failed


def _validate_together(distillers: Sequence[Distiller], streams: Sequence[torch.cuda.Stream | None],
                       results: list, index: Sequence[int]) -> None:
    """Score the pending snapshots of ``distillers`` in as few engine calls as their settings allow
    (:func:`.validation.score_together`: on a GPU one call trains the validation models of all K runs, where K calls
    ran one after another) and hand each run its accuracies. A run whose validation fails stops alone
    (``results[index[j]]``)."""
    if not distillers:
        return
    for s in streams:  # the snapshots were taken on the runs' streams; the joint call runs on the current one
        if s is not None:
            torch.cuda.current_stream(s.device).wait_stream(s)
    try:
        accs = score_together([d.score for d in distillers], [list(d.selector.pending) for d in distillers],
                              [d.selector.models for d in distillers])
    except Interrupted:
        raise
    except Exception:  # noqa: BLE001  (one run's failure must not fail the others: each alone, as without a stack)
        accs = [None] * len(distillers)
    for d, s, acc, i in zip(distillers, streams, accs, index):
        if s is not None:
            s.wait_stream(torch.cuda.current_stream(s.device))
        try:
            with _on(s):
                if acc is None:
                    d.complete_validation(d.score(list(d.selector.pending), d.selector.models))
                else:
                    d.complete_validation(acc)
        except Interrupted:
            raise
        except Exception as e:  # noqa: BLE001
            results[i] = e


def _stream_for(d: Distiller) -> torch.cuda.Stream | None:
    """A CUDA stream of its own for a run on a GPU, after everything queued so far (its data)."""
    if d.device.type != "cuda":
        return None
    s = torch.cuda.Stream(device=d.device)
    s.wait_stream(torch.cuda.current_stream(d.device))
    return s


@contextlib.contextmanager
def _on(stream: torch.cuda.Stream | None) -> Iterator[None]:
    if stream is None:
        yield
    else:
        with torch.cuda.stream(stream):
            yield


def _join(streams: Sequence[torch.cuda.Stream | None]) -> None:
    """Make the default stream wait for every run's stream (what follows reads their results)."""
    for s in streams:
        if s is not None:
            torch.cuda.current_stream(s.device).wait_stream(s)
