"""What ``reproduce``'s output folder holds, read: a run directory's configuration and state (finished, to resume, to
extend from a shorter run, new, stale or conflicting), a stored cell record, and where the shared pieces live.

State on disk (``OUT`` = ``--out``)::

    OUT/runs/<run slug>/     a ``distill`` (label / image / DD / SLDD), ``baseline`` or ``mean`` (of other runs' label
                             sets: experiments/means.py) run directory (config.json, result.json, ...; machine.json: the
                             machine(s) reproduce ran it on)
    OUT/cells/<cell slug>.json   one finished cell: its run directory, configuration and result
    OUT/selections/          chosen base sets, shared by every method

A run directory with ``result.json``, the same resolved configuration and the current numerics
version (:mod:`labeldistill.numerics`) is reused, whoever made it (``reproduce``, ``labeldistill
distill --out ...`` or ``labeldistill baseline --out ...``); one with a checkpoint but no result is
resumed. A run of another numerics version is moved aside (``<dir>.numerics-<v>``) and run again,
unless ``--reuse-any-version`` lets a finished one count (its cells are then marked). A run directory holding another
configuration is left alone and the cell is reported as a conflict. Nothing here computes (:mod:`.runner` does).
"""
from __future__ import annotations

from pathlib import Path

from ..distill.extend import check_extension
from ..distill.loop import CHECKPOINT
from ..errors import ArtifactError, UserError
from ..numerics import NUMERICS_VERSION
from ..runs import read_json
from ..runs.ledger import RUN_LEDGER, evaluation_ledger, run_ledger
from ..runs.provenance import numerics_of
from ..unrolled import is_unrolled_record
from . import means as _means
from .plan import (
    Options,
    Plan,
    config_diff,
    normalise_baseline,
    normalise_config,
    normalise_distill,
    normalise_mean,
    normalise_unrolled,
)


def _read(path: Path) -> dict | None:
    try:
        obj = read_json(path)
    except ArtifactError:
        return None
    return obj if isinstance(obj, dict) else None


def stored_config(plan: Plan, run_dir: Path) -> dict | None:
    """The normalised resolved configuration stored in a run directory (None if none)."""
    if plan.kind == "unrolled":  # a DD / SLDD run's config.json is not a DistillConfig: recognise it first
        for name in ("config.json", "result.json"):
            rec = _read(run_dir / name)
            if rec is not None and is_unrolled_record(rec):
                return normalise_unrolled(rec["config"])
        return None
    if plan.kind == "mean":
        rec = _read(run_dir / "config.json") or {}
        cfg = rec.get("config") if rec.get("format") == _means.FORMAT else None
        return normalise_mean(cfg) if isinstance(cfg, dict) else None
    if plan.kind == "distill":
        rec = _read(run_dir / "config.json") or {}
        if is_unrolled_record(rec):
            return {"method": rec.get("method"), "unrolled": "a DD / SLDD run"}  # never equal to a DistillConfig
        rec = rec or _read(run_dir / "result.json") or {}
        cfg = rec.get("config")
        return normalise_distill(cfg) if isinstance(cfg, dict) else None
    res = _read(run_dir / "result.json") or {}
    settings = res.get("settings")
    if not isinstance(settings, dict):
        return None
    return normalise_baseline({**settings, "arch": res.get("arch") or settings.get("arch")})


def run_record(plan: Plan, run_dir: Path) -> dict:
    """The record that says which code made a run: config.json (distill, DD / SLDD, mean) or result.json (baseline)."""
    if plan.kind in ("distill", "unrolled", "mean"):
        return _read(run_dir / "config.json") or {}
    return _read(run_dir / "result.json") or {}


# What a run directory holds when its run stopped before writing config.json: the lock, reproduce's machine note and
# the finished models of its start (a teacher's temperature choice), which the run, started again, finds there. A mean's
# directory holds the first two while its parts are made.
_STARTED_ONLY = {".lock", "machine.json", RUN_LEDGER}


def run_state(plan: Plan, out: Path, reuse_any_version: bool = False) -> tuple[str, str]:
    """("finished" | "resume" | "extend" | "new" | "stale" | "conflict", detail) of the plan's run directory.

    "stale": the run (finished or not) was made with another numerics version; it is not reused
    (unless ``reuse_any_version`` and it is finished) but moved aside and the cell is run again.
    "extend": no run yet, but another cell's run in ``out`` is this one with fewer epochs (detail: its directory),
    which ``distill --extend`` continues exactly (:func:`shorter_run`)."""
    run_dir = plan.run_dir(out)
    if not run_dir.exists() or not any(p.name != ".lock" for p in run_dir.iterdir()):
        shorter = shorter_run(plan, out) if plan.kind == "distill" else None
        return ("extend", str(shorter)) if shorter is not None else ("new", "")
    stored = stored_config(plan, run_dir)
    has_result = (run_dir / "result.json").exists()
    if stored is None:
        if plan.kind == "baseline" and not has_result:
            return "new", ""  # a baseline interrupted before it wrote anything: start again
        if {p.name for p in run_dir.iterdir()} <= _STARTED_ONLY:
            # any kind stopped before its configuration was written (a teacher start's temperature choice; a mean's
            # parts, which it makes first): start again
            return "new", ""
        return "conflict", f"{run_dir} is not a run directory of this kind (no readable configuration)"
    diff = config_diff(plan.expected_config(), stored)
    if diff:
        return "conflict", f"{run_dir} holds a run with another configuration ({'; '.join(diff[:3])})"
    version = numerics_of(run_record(plan, run_dir))
    if version != NUMERICS_VERSION and not (reuse_any_version and has_result):
        return "stale", f"made with numerics version {version} (this code: {NUMERICS_VERSION})"
    if has_result and plan.kind == "mean" and _means.changed_parts(plan, out):
        return "new", ""  # a part's run was made again since: the mean of the sets as they are now (and its test)
    if has_result:
        return "finished", ""
    if plan.kind in ("distill", "unrolled") and (run_dir / CHECKPOINT).exists():
        return "resume", ""
    return "new", ""


def shorter_run(plan: Plan, out: Path) -> Path | None:
    """The run in ``out`` (another cell's: a row of one epoch for a row of two) of this distillation cell's configuration
    but fewer epochs (and any ``val_every``), of this numerics version, that continued to this cell's epochs equals
    this cell's run (:func:`~labeldistill.distill.extend.check_extension`); the longest such, or None."""
    want = plan.expected_config()
    found: tuple[int, Path] | None = None
    for config_file in sorted((Path(out) / "runs").glob("*/config.json")):
        run_dir = config_file.parent
        stored = stored_config(plan, run_dir)
        epochs = (stored or {}).get("epochs")
        if (stored is None or not isinstance(epochs, int) or epochs >= want["epochs"] or run_dir == plan.run_dir(out)
                or config_diff({**want, "epochs": epochs, "val_every": stored.get("val_every")}, stored)
                or numerics_of(run_record(plan, run_dir)) != NUMERICS_VERSION or (found is not None and epochs <= found[0])):
            continue
        try:
            check_extension(run_dir, epochs=want["epochs"], val_every=want["val_every"])
        except (UserError, ArtifactError):
            continue
        found = (epochs, run_dir)
    return None if found is None else found[1]


def progress_of(plan: Plan, opts: Options, state: str, detail: str) -> tuple[str, Path]:
    """(state, run directory) to estimate a run's remaining time from: an extension goes on where its source stands."""
    return ("resume", Path(detail)) if state == "extend" else (state, plan.run_dir(opts.out))


def set_aside(run_dir: Path, version: int | None) -> Path:
    """Move a run of another numerics version out of the way (nothing is deleted)."""
    base = run_dir.with_name(f"{run_dir.name}.numerics-{version if version is not None else 'unversioned'}")
    dest, i = base, 1
    while dest.exists():
        i += 1
        dest = base.with_name(f"{base.name}-{i}")
    run_dir.rename(dest)
    return dest


def load_cell_record(plan: Plan, out: Path, reuse_any_version: bool = False) -> dict | None:
    """The stored cell JSON if it is finished, matches what this cell would run now and was made
    with the current numerics version (any version with ``reuse_any_version``)."""
    rec = _read(plan.cell_file(out))
    if not rec or rec.get("cell") != plan.cell.name or not isinstance(rec.get("result"), dict):
        return None
    run_config = rec.get("run_config")
    # A setting added since the cell was stored takes the value its run had, as for the run itself (run_state).
    same_run = isinstance(run_config, dict) and not config_diff(plan.expected_config(), normalise_config(plan.kind, run_config))
    same = (rec.get("reduced") == plan.reduced and same_run
            and rec.get("evaluation") == plan.evaluation and list(rec.get("stand_in") or []) == list(plan.stand_in))
    current = rec.get("numerics_version") == NUMERICS_VERSION
    return rec if same and (current or reuse_any_version) else None


def selections_dir(opts: Options) -> Path:
    """Where ``reproduce`` keeps chosen base sets: one per (target, N, seed, selector), shared by every method."""
    return Path(opts.out) / "selections"


def sibling_ledgers(run_dir: Path) -> list[Path]:
    """The model ledgers of the other runs beside ``run_dir`` (their own and their evaluations'): a ledger is keyed by
    everything that decides its models, so a cell may adopt what another cell's run finished (runs/ledger.py)."""
    if not run_dir.parent.is_dir():
        return []
    others = sorted(d for d in run_dir.parent.iterdir() if d.is_dir() and d.name != run_dir.name)
    return [f for d in others for f in (run_ledger(d), evaluation_ledger(d))]
