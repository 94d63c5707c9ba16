"""The teacher cache: a teacher is trained once per (target and split, architecture, seed, numerics, settings,
whitening) and kept in a file named by that key's hash, its JSON header holding the key and record; beside it the
weights of the epochs that may label (``NAME.epochs.safetensors``), an interrupted training's last epoch
(``NAME.partial.safetensors``) and a finished training's last state (``NAME.final.safetensors``), from which a longer
teacher of the same settings goes on. Everything here reads and writes those files; :mod:`.train` trains."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

from ..engine import Learner, ModelState, RecipeCheckpoint
from ..errors import ArtifactError
from ..numerics import NUMERICS_VERSION
from ..runs.tensorstate import header_metadata, load_state, read_state_document
from .config import _ADDED_FIELDS, TeacherConfig, _stops_by


_DEFAULT_CACHE = object()
# Teachers trained within a ``shared_teachers()`` block, by key: a block's later requests reuse them even with the
# disk cache off. Scoped to the block (a context variable), never process-wide.
_SHARED: ContextVar[dict[str, tuple] | None] = ContextVar("labeldistill_shared_teachers", default=None)


@contextmanager
def shared_teachers() -> Iterator[None]:
    """Within the block, a teacher is trained at most once per key (target and split, architecture, seed, numerics,
    settings, whitening), with or without the disk cache: one distillation that starts from a teacher's labels
    (``--label-init teacher``) and also targets its probabilities (``--target-labels teacher``) trains it once."""
    token = _SHARED.set({} if _SHARED.get() is None else _SHARED.get())
    try:
        yield
    finally:
        _SHARED.reset(token)


def teacher_cache_dir() -> Path | None:
    """Next to the base-set selections (``selectors.default_cache_dir()``): ``.../teachers``; None when caching is off."""
    from ..selectors import default_cache_dir

    d = default_cache_dir()
    return None if d is None else d.parent / "teachers"


def _teacher_key(target, cfg: TeacherConfig, zca) -> dict:
    from ..selectors._cache import numerics_key

    key = {"target": target.name, "split_sha256": target.split_record.get("index_sha256"), "seed": cfg.seed,
           "preprocessing": target.preprocessing.to_dict(), "teacher": _settings_key(cfg), "numerics": numerics_key(),
           "zca": None if zca is None else {"eps": zca.eps, "fitted_on": zca.fitted_on}}
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _settings_key(cfg: TeacherConfig) -> dict:
    """The key's part that the settings alone make. The fields added since teachers were first cached count only where
    they differ from their default: a teacher trained the one way there was keeps its key, and its cache file."""
    defaults = {f.name: f.default for f in dataclasses.fields(TeacherConfig)}
    teacher = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _ADDED_FIELDS or v != defaults[k]}
    return json.loads(json.dumps(teacher, sort_keys=True, default=str))


def trained_epochs(folder: Path | None, target_name: str, cfg: TeacherConfig) -> tuple[bool, int]:
    """What the cache ``folder`` holds of this teacher: (cached, epochs trained). Cached: a finished teacher of these
    settings (nothing left to train); else the epochs an interrupted training reached (its partial file) or the
    longest shorter teacher trained all of its epochs (this one goes on from it; :func:`_shorter_teacher`), 0 where
    none. For estimates (``reproduce --dry-run``), from the files' JSON headers alone: it matches the target's name,
    the settings, seed and numerics version, not the key's parts that need the data loaded (the split's hash, the
    preprocessing, the whitening), so a teacher of another split of the same dataset can count here."""
    if folder is None or not Path(folder).is_dir():
        return False, 0
    want, stem = _settings_key(cfg), _teacher_file(Path(folder), target_name, cfg, {}).name.rsplit("-", 1)[0]
    trained = 0
    for f in Path(folder).glob(f"{stem}-*.safetensors"):
        if f.name.endswith(".epochs.safetensors"):
            continue
        if not f.name.endswith((FINAL, PARTIAL)):  # a teacher, not a training's last state
            record = _teacher_record(f)
            key = record.get("key") or {}
            if _same_target(key, target_name) and key.get("teacher") == want:
                return True, int(record.get("epochs_trained") or cfg.epochs)
            continue
        key, curve = _training_header(f)
        if not _same_target(key, target_name):
            continue
        epochs = max(curve, default=0)
        if key.get("teacher") == want or (  # the same training interrupted, or a shorter one it goes on from
                f.name.endswith(FINAL) and _goes_on_from({"teacher": key.get("teacher")}, curve, {"teacher": want}, cfg)):
            trained = max(trained, epochs)
    return False, trained


def _same_target(key: dict, target_name: str) -> bool:
    """Whether a cache file's key names this target and the current numerics version (what its header alone can tell)."""
    return key.get("target") == target_name and (key.get("numerics") or {}).get("version") == NUMERICS_VERSION


def _training_header(path: Path) -> tuple[dict, dict[int, float]]:
    """A training state file's key and validation curve, from its header alone (({}, {}) where unreadable)."""
    doc = read_state_document(path)
    try:
        return dict(doc.get("key") or {}), {int(e): float(v) for e, v in (doc.get("curve") or {}).items()}
    except (TypeError, ValueError, AttributeError):
        return {}, {}


def _teacher_file(folder: Path, target_name: str, cfg: TeacherConfig, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(target_name).split(":", 1)[-1]).name)[:40]
    return Path(folder) / f"{stem}-{cfg.arch}-seed{cfg.seed}-{digest}.safetensors"


def _teacher_record(path: Path) -> dict:
    """A cached teacher's record (its file's JSON header), without reading its weights; {} where unreadable."""
    try:
        return json.loads(header_metadata(path).get("record") or "{}")
    except ValueError:
        return {}


def _cached_teacher(path: Path, key: dict, learner: Learner, seeds: list[int], reference: torch.Tensor) -> tuple[ModelState, dict] | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    record = _teacher_record(path)
    if record.get("key") != key:
        return None
    try:
        saved = load_file(str(path))
    except (OSError, SafetensorError):
        return None
    state = learner.init(seeds, device=reference.device)
    if set(saved) != set(state.params):
        return None
    params = {n: saved[n].to(t.device, t.dtype) for n, t in state.params.items()}
    return ModelState(params, state.buffers, state.head, reference), record


def _holds(epochs: dict[int, Any] | None, keep: frozenset[int], trained: int) -> bool:
    """Whether kept ``epochs`` (of a training that reached epoch ``trained``) include every one of ``keep`` it reached."""
    return epochs is not None and all(e in epochs for e in keep if e <= trained)


def _with_best(epochs: dict[int, ModelState], keep: frozenset[int], best_epoch: int, best: ModelState
               ) -> dict[int, ModelState]:
    """The ``keep`` epochs of ``epochs`` and the best epoch's weights (kept in the teacher's own file)."""
    return {**{e: st for e, st in epochs.items() if e in keep}, best_epoch: best}


def _states_dict(states: dict[int, ModelState]) -> dict:
    return {int(e): {"params": st.params, "buffers": st.buffers, "head": st.head} for e, st in states.items()}


def _states_from(saved: dict, reference: torch.Tensor) -> dict[int, ModelState]:
    return {int(e): ModelState(d["params"], d["buffers"], d["head"], reference) for e, d in saved.items()}


def _keyed_state(path: Path | None, key: dict, reference: torch.Tensor) -> dict | None:
    """A state file written beside a teacher (its epochs, its partial training) for this teacher's ``key``, or None:
    absent, another teacher's, or unreadable (the teacher then trains again and overwrites it)."""
    if path is None or not path.exists():
        return None
    try:
        saved = load_state(path, device=reference.device)
    except ArtifactError:
        return None
    return saved if saved.get("key") == key else None


def _cached_epochs(path: Path | None, key: dict, reference: torch.Tensor) -> dict[int, ModelState] | None:
    """The per-epoch weights cached beside a teacher (:func:`train_teacher_epochs`), or None."""
    saved = _keyed_state(path, key, reference)
    return None if saved is None else _states_from(saved["epochs"], reference)


FINAL = ".final.safetensors"  # beside a teacher that trained all its epochs: its training's last state
PARTIAL = ".partial.safetensors"  # beside a teacher still training: its last epoch's state


def _without_length(key: dict) -> dict:
    return {**key, "teacher": {k: v for k, v in key["teacher"].items() if k not in ("epochs", "patience")}}


def _goes_on_from(saved_key: dict, curve: dict[int, float], key: dict, cfg: TeacherConfig) -> bool:
    """Whether the teacher of ``saved_key``, which trained all its epochs (validation ``curve``), is a shorter one this
    teacher (``key``, ``cfg``) goes on from: every setting but the length the same, fewer epochs, and this teacher's
    ``patience`` would not have stopped it within them."""
    teacher = saved_key.get("teacher")
    return (bool(teacher) and _without_length(saved_key) == _without_length(key)
            and int(teacher.get("epochs", 0)) < cfg.epochs and _stops_by(curve, cfg.patience) is None)


def _shorter_teacher(path: Path, key: dict, cfg: TeacherConfig, curve: dict[int, float], best: dict, *,
                     reference: torch.Tensor, kept: dict[int, ModelState] | None = None,
                     keep: frozenset[int] | None = None) -> tuple[RecipeCheckpoint | None, float, dict | None]:
    """A cached teacher of every setting of this one (``key``) but fewer epochs, which trained all of them (its
    ``FINAL`` file): the longest such, filling ``curve`` / ``best`` / ``kept`` as :func:`_partial_teacher` does, with its
    last training state, seconds and a record of it. Going on from it equals training this teacher from the start: no
    teacher recipe has a step that depends on the epochs still to come (no lr schedule; the minibatch orders come from
    the seeds, epoch by epoch); and this teacher's ``patience`` must not have stopped it within those epochs.
    (None, 0, None) where there is none."""
    candidates = []  # (epochs, file): their keys and curves from the headers alone; only the one taken is loaded whole
    for f in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*" + FINAL):
        k, curve_ = _training_header(f)
        if _goes_on_from(k, curve_, key, cfg):
            candidates.append((int(k["teacher"].get("epochs", 0)), str(f)))
    found = None
    for epochs, name in sorted(candidates, reverse=True):  # the longest that loads (and verifies)
        try:
            found = (Path(name), epochs, load_state(name, device=reference.device))
            break
        except ArtifactError:
            continue
    if found is None:
        return None, 0.0, None
    f, epochs, saved = found
    if kept is not None:
        those = _cached_epochs(f.with_name(f.name[: -len(FINAL)] + ".epochs.safetensors"), saved["key"], reference)
        if not _holds(those, keep, epochs):  # type: ignore[arg-type]
            return None, 0.0, None
        kept.update({e: st for e, st in those.items() if e in keep})  # type: ignore[union-attr, operator]
    curve.update({int(e): float(v) for e, v in saved["curve"].items()})
    b = saved["best"]
    best.update(val=float(b["val"]), epoch=int(b["epoch"]), state=ModelState(b["params"], b["buffers"], b["head"], reference))
    return RecipeCheckpoint.from_dict(saved["training"]), float(saved["seconds"]), {"file": f.name, "epochs": epochs}


def _partial_teacher(partial: Path | None, key: dict, curve: dict[int, float], best: dict, *,
                     reference: torch.Tensor, kept: dict[int, ModelState] | None = None,
                     keep: frozenset[int] | None = None) -> tuple[RecipeCheckpoint | None, float]:
    """An interrupted teacher training's last epoch (``partial``, written by :func:`train_teacher`): fills ``curve`` and
    ``best`` (and ``kept``, the weights of the ``keep`` epochs, when given) and returns the training's checkpoint and the seconds it
    had run; (None, 0) where there is none, or one of another teacher (its key differs), one without the epochs
    ``kept`` asks for, or one that cannot be read (a training then starts afresh and overwrites it)."""
    saved = _keyed_state(partial, key, reference)
    if saved is None:
        return None, 0.0
    if kept is not None:
        those = _states_from(saved["epochs"], reference) if "epochs" in saved else None
        if not _holds(those, keep, max(int(e) for e in saved["curve"])):  # type: ignore[arg-type]
            return None, 0.0
        kept.update({e: st for e, st in those.items() if e in keep})  # type: ignore[union-attr, operator]
    curve.update({int(e): float(v) for e, v in saved["curve"].items()})
    b = saved["best"]
    best.update(val=float(b["val"]), epoch=int(b["epoch"]), state=ModelState(b["params"], b["buffers"], b["head"], reference))
    return RecipeCheckpoint.from_dict(saved["training"]), float(saved["seconds"])
