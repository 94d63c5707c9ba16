"""More epochs for a run that has stopped or finished: ``distill --extend SRC --epochs N --out NEW``.

A run's checkpoint holds every piece of its loop's state (:meth:`.loop.Distiller.state_dict`), and nothing the loop
computes depends on how many epochs it will run, with two exceptions checked here. So a run of E epochs continued
to N > E equals a run started with N epochs, step for step, bit for bit, and costs only the new epochs. The
continuation is a new run directory: the source's record (its result, its set, its tests) is left as it is, and
the new ``config.json`` names the run, epochs and step it continued from (``extended_from``).

The two exceptions, refused with the flag that makes the continuation exact:

* snapshots: a longer run validates the labels after every ``val_every`` epochs; a shorter one validated what its
  own ``val_every`` chose, and its last epoch when that chose nothing. The snapshots taken so far must be those the
  longer run takes (``--val-every`` says which it takes).
* student refreshes (``--method implicit``): a run skips the refresh due at its last step (that student would never
  give a gradient), which a longer run makes. Since session 46 the checkpoint keeps that refresh's images and labels
  and the continued run makes it on resuming (``distill/students.py``); only a checkpoint of older code is refused.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UserError
from ..runs import atomic_write_json, load_state, read_json
from .config import DistillConfig
from .loop import CHECKPOINT
from .strategies import STRATEGIES

# What a continuation leaves behind: the source's test and set (the new run tests its own selection), its lock. (Its
# machine.json stays: the machines that took the steps so far.)
_NOT_COPIED = {"result.json", "distilled.safetensors", "evaluations", ".lock"}


def _snapshot_epochs(state: dict) -> list[int]:
    sel = state["selector"]
    return sorted({int(r["epoch"]) for r in sel["history"]} | {int(s["epoch"]) for s in sel["pending"]})


def _due_epochs(done: int, val_every: int) -> list[int]:
    return [e for e in range(1, done + 1) if e % val_every == 0]


def check_extension(source: str | Path, *, epochs: int, val_every: int | None = None) -> tuple[dict, int, int, int]:
    """The source run's ``config.json`` record, its steps and its epochs so far and the longer run's ``val_every``, where continuing it to ``epochs`` epochs
    (``val_every``: the longer run's, default the source's) equals a run started so; else a one-line UserError."""
    source = Path(source)
    if not (source / "config.json").is_file() or not (source / CHECKPOINT).is_file():
        raise UserError(f"{source} is not a label-distillation run with a checkpoint; nothing to extend.")
    record = read_json(source / "config.json")
    # A run of the loop names one of its strategies; DD / SLDD (unrolled/, their own trainer) name theirs, so the loop's
    # package need not know the other trainer's records.
    if not isinstance(record.get("config"), dict) or record["config"].get("method") not in STRATEGIES:
        raise UserError(f"{source} is not a label-distillation run; --extend continues those (DD / SLDD: --resume).")
    cfg = DistillConfig.from_dict(record["config"])
    if epochs is None or epochs <= cfg.epochs:
        raise UserError(f"--extend needs --epochs above the run's own {cfg.epochs} (got {epochs}).")
    val_every = cfg.val_every if val_every is None else int(val_every)
    if val_every < 1:
        raise UserError(f"--val-every must be at least 1 (got {val_every}).")
    state = load_state(source / CHECKPOINT)
    done, step = int(state["epoch"]), int(state["step"])
    taken, due = _snapshot_epochs(state), _due_epochs(done, val_every)
    if taken != due:
        raise UserError(f"{source} validated its labels after epoch(s) {taken or 'none'}; a run of {epochs} epochs with "
                        f"--val-every {val_every} would have after {due or 'none'}: extend with --val-every "
                        f"{_matching_val_every(taken, done)}.")
    students = state.get("students") or {}
    followed, every = students.get("followed"), cfg.refresh_every or 0
    if (followed is not None and every and done == cfg.epochs and int(followed) == step and step % every == 0
            and students.get("owed") is None):  # a checkpoint from before skipped refreshes were kept
        raise UserError(f"{source} skipped the student refresh due at its last step ({step}, a multiple of "
                        f"--refresh-every {every}), which a longer run makes, and its checkpoint (older code) does not "
                        "keep what it would train on: start the longer run afresh.")
    return record, step, done, val_every


def extend_run(source: str | Path, out: str | Path, *, epochs: int, val_every: int | None = None) -> Path:
    """Copy the run in ``source`` to ``out`` as a run of ``epochs`` epochs (``val_every``: the longer run's, default
    the source's), ready for ``run_distillation(..., resume=True)``; refuse, in one line, what would not equal a
    run started so (:func:`check_extension`)."""
    source, out = Path(source), Path(out)
    record, step, done, val_every = check_extension(source, epochs=epochs, val_every=val_every)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; extend into a new run directory.")
    cfg = DistillConfig.from_dict(record["config"])
    out.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in _NOT_COPIED:
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, out / item.name)
    new = DistillConfig.from_dict({**record["config"], "epochs": epochs, "val_every": val_every})
    given = {**record.get("given", {}), "epochs": epochs, "val_every": val_every}
    atomic_write_json(out / "config.json", {
        **record, "config": new.to_dict(), "given": given,
        "extended_from": [*record.get("extended_from", []),
                          {"run": str(source), "epochs": cfg.epochs, "val_every": cfg.val_every, "step": step,
                           "epochs_done": done, "versions": record.get("versions")}],
    })
    return out


def _matching_val_every(taken: list[int], done: int) -> str:
    """The --val-every under which a longer run validates after exactly ``taken`` (of ``done`` epochs), or advice."""
    for v in range(1, done + 1):
        if _due_epochs(done, v) == taken:
            return str(v)
    return "that takes the same snapshots (none exists: start the longer run afresh)"
