"""Teacher soft labels: an early-stopped expert labels the base images (Qin et al. 2024).

A model trained on the target's whole training split, early-stopped on the validation split
(the "early-stopped expert" of Qin et al., "A Label is Worth a Thousand Images in Dataset
Distillation"), labels the base images with ``softmax(logits / temperature)``. The teacher is
cached per (target and split, architecture, seed, numerics, training settings), so every run of
one seed shares it. The temperature is given, or chosen on the validation split
(``temperature="auto"``): for each of :data:`TEMPERATURES` one student trains on the base images
with those labels the way the final test will (the paper protocol's step search, or the dc /
dc-dsa protocol's fixed epochs), and the labels of the best validation accuracy are kept.

Used by ``baseline --labels teacher`` and by ``distill --label-init teacher`` (the loop then
refines the same labels the teacher baseline tests).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .artifact import DistilledSet, load
from .calibration import TEMPERATURES, choose_best, choose_temperature, grid_edge, parse_temperature, validation_scorer  # noqa: F401  (re-exported)
from .engine import Learner, ModelState, RecipeCheckpoint, accuracy, make_learner, model_seeds, predict, train_models
from .data import TargetData
from .engine.augment import DSAParams
from .engine.recipe import TrainRecipe
from .errors import ArtifactError, UserError
from .problem import run_target
from .numerics import NUMERICS_VERSION, float32_precision
from .runs import read_json
from .runs.provenance import versions
from .runs.tensorstate import header_metadata, load_state, read_state_document, save_state



@dataclass(frozen=True)
class TeacherConfig:
    """How a teacher trains: minibatches of ``batch_size`` over the whole training split, at most ``epochs`` epochs,
    keeping the epoch of best validation accuracy and stopping ``patience`` epochs after it; by ``optimizer``
    (``"adam"`` or ``"sgd"``) at ``lr`` with ``momentum`` (SGD), on the images as they are (``augment="none"``) or
    on per-sample DSA views (``"dsa"``, no flips for one-channel images). :data:`TEACHER_RECIPES` names two ways."""

    arch: str
    seed: int = 0
    epochs: int = 30
    patience: int = 3
    batch_size: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    augment: str = "none"

    def __post_init__(self) -> None:
        if self.augment not in ("none", "dsa"):
            raise UserError(f"A teacher trains on images as they are (none) or on DSA views (dsa); got {self.augment!r}.")
        self.train_recipe(3)  # the engine's own checks of the optimiser, lr and momentum, now rather than at training

    def train_recipe(self, channels: int) -> TrainRecipe:
        """The engine's :class:`TrainRecipe` of this training, for images with ``channels`` channels."""
        dsa = None if self.augment == "none" else DSAParams().for_channels(channels)
        return TrainRecipe(optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, epochs=self.epochs, augmentation=dsa)


# How a teacher trains, by name (``--teacher-recipe``). "adam": the default, a cheap teacher (Adam, no augmentation).
# "expert": the expert of MTT's buffer.py as Qin et al. 2024 train it for their CIFAR-10 labels (train_expert/buffer.py
# and softlabel/sample_scripts.md of sunnytqin/no-distillation): plain SGD (no momentum, no weight decay) at lr 1e-3,
# minibatches of 256, DSA views (color_crop_cutout_flip_scale_rotate), on ZCA-whitened images where the protocol
# whitens; its labelling epoch is then chosen by the students (--teacher-epoch auto). Slow to converge by design: give
# it --teacher-epochs (Qin et al.'s CIFAR-10 expert ran 400; its 1-image-a-class labels came from epoch 20).
TEACHER_RECIPES: dict[str, dict] = {
    "adam": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.0, "augment": "none"},
    "expert": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0, "augment": "dsa"},
}
_ADDED_FIELDS = ("optimizer", "momentum", "augment")  # added in session 38: in a teacher's key only where not the default


def check_teacher_recipe(recipe: str, lr: float | None = None) -> None:
    """A one-line error for an unknown recipe or a bad lr, before any work is done."""
    teacher_config("any", seed=0, epochs=1, patience=1, recipe=recipe, lr=lr)


def teacher_config(arch: str, *, seed: int, epochs: int, patience: int, recipe: str = "adam",
                   lr: float | None = None) -> TeacherConfig:
    """The :class:`TeacherConfig` of a named recipe (:data:`TEACHER_RECIPES`), its lr replaced by ``lr`` when given."""
    if recipe not in TEACHER_RECIPES:
        raise UserError(f"Unknown teacher recipe {recipe!r}. Known: {', '.join(TEACHER_RECIPES)}.")
    way = dict(TEACHER_RECIPES[recipe])
    if lr is not None:
        way["lr"] = float(lr)
    return TeacherConfig(arch=arch, seed=seed, epochs=epochs, patience=patience, **way)


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
    from .selectors import default_cache_dir

    d = default_cache_dir()
    return None if d is None else d.parent / "teachers"


def _teacher_key(target, cfg: TeacherConfig, zca) -> dict:
    from .selectors._cache import numerics_key

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


def train_teacher(target, cfg: TeacherConfig, *, zca=None, cache_dir: Path | None | object = _DEFAULT_CACHE,
                  progress: bool = False) -> tuple[Learner, ModelState, dict]:
    """Train (or reuse from the cache) an early-stopped teacher on ``target``'s training split.

    One model (seed ``model_seeds(cfg.seed, "teacher", 1)``), Adam, shuffled minibatches; after each
    epoch its validation accuracy is measured; the best epoch's weights are kept and training stops
    ``cfg.patience`` epochs after it (or at ``cfg.epochs``). ``zca``: the protocol's whitening, applied
    to every split. Returns the learner, its one-model state and a record with its validation and test
    accuracy (%), the best epoch, the epochs trained and the cache file (``cache_dir``: default
    :func:`teacher_cache_dir`; None: no cache). ``progress``: a bar over the epochs a training runs (none for a
    cached teacher).
    """
    learner, state, record, _ = _train_teacher(target, cfg, zca=zca, cache_dir=cache_dir, keep=None, progress=progress)
    return learner, state, record


def train_teacher_epochs(target, cfg: TeacherConfig, *, zca=None, cache_dir: Path | None | object = _DEFAULT_CACHE,
                         progress: bool = False, epochs: Iterable[int] | None = None
                         ) -> tuple[Learner, dict[int, ModelState], dict]:
    """The same teacher as :func:`train_teacher` (the same training, bit for bit, and the same cache entry), with the
    weights after the given ``epochs`` (1-based; default :data:`TEACHER_EPOCHS`, the ones ``epoch="auto"`` scores)
    that it trained, and after its best epoch: ``{epoch: state}`` (the best epoch's equal ``train_teacher``'s).
    They are kept in a second cache file beside the teacher's (``NAME.epochs.safetensors``); a teacher cached
    without them trains again once, the same way, and the file then holds the epochs of both requests. For the
    choice of a teacher epoch by the students it labels (:func:`teacher_soft_labels` with ``epoch="auto"``).

    Only those epochs, not every one: a teacher's weights are kept a log-spaced few at a time (a ConvNet-3 on CIFAR-10
    is 1.3 MB an epoch, a larger teacher far more), so its cache files, rewritten each epoch while it trains, stay
    small enough to park between sessions (``records/in-progress``)."""
    keep = frozenset(int(e) for e in (TEACHER_EPOCHS if epochs is None else epochs))
    learner, _, record, kept = _train_teacher(target, cfg, zca=zca, cache_dir=cache_dir, keep=keep, progress=progress)
    return learner, kept, record  # type: ignore[return-value]


def _holds(epochs: dict[int, Any] | None, keep: frozenset[int], trained: int) -> bool:
    """Whether kept ``epochs`` (of a training that reached epoch ``trained``) include every one of ``keep`` it reached."""
    return epochs is not None and all(e in epochs for e in keep if e <= trained)


def _train_teacher(target, cfg: TeacherConfig, *, zca, cache_dir, keep: frozenset[int] | None, progress: bool = False
                   ) -> tuple[Learner, ModelState, dict, dict[int, ModelState] | None]:
    from .runs.files import atomic_write_bytes

    channels, size = target.preprocessing.channels, int(target.train.x.shape[-1])
    learner = make_learner(cfg.arch, channels, size, target.num_classes)
    seeds = model_seeds(cfg.seed, "teacher", 1)
    tx = target.train.x if zca is None else zca.apply(target.train.x)
    key = _teacher_key(target, cfg, zca)
    # The epochs are a request, not a setting: a teacher trained with them is the same teacher (same key, same file).
    shared, shared_key = _SHARED.get(), json.dumps(key, sort_keys=True, default=str)
    if shared is not None and shared_key in shared and (
            keep is None or _holds(shared[shared_key][3], keep, int(shared[shared_key][2]["epochs_trained"]))):
        return shared[shared_key]
    folder = teacher_cache_dir() if cache_dir is _DEFAULT_CACHE else cache_dir
    path = None if folder is None else _teacher_file(folder, target.name, cfg, key)  # type: ignore[arg-type]
    epochs_file = None if path is None else path.with_name(path.stem + ".epochs.safetensors")
    found, cached_epochs = None, None
    if path is not None and path.exists():
        found = _cached_teacher(path, key, learner, seeds, tx)
        cached_epochs = _cached_epochs(epochs_file, key, tx) if found is not None and keep is not None else None
        if found is not None and (keep is None or _holds(cached_epochs, keep, int(found[1]["epochs_trained"]))):
            kept = None if keep is None else _with_best(cached_epochs, keep, int(found[1]["best_epoch"]), found[0])  # type: ignore[arg-type]
            out = learner, found[0], {**found[1], "cache": {"file": str(path), "reused": True}}, kept
            if shared is not None:
                shared[shared_key] = out
            return out
    t0 = time.perf_counter()
    vx = target.val.x if zca is None else zca.apply(target.val.x)
    batch = min(cfg.batch_size, len(target.train))
    per_epoch = TrainRecipe.steps_per_epoch(len(target.train), batch)
    curve: dict[int, float] = {}
    best: dict = {}
    kept: dict[int, ModelState] | None = None if keep is None else {}
    # Each epoch's end is checkpointed beside the cache file (a CIFAR-10 teacher is an hour of a CPU core): an
    # interrupted training goes on from its last epoch, exactly as if it had not stopped.
    partial = None if path is None else path.with_name(path.stem + PARTIAL)
    resume, before = _partial_teacher(partial, key, curve, best, reference=tx, kept=kept, keep=keep)
    extended = None
    if resume is None and path is not None:  # else a cached teacher of fewer epochs, trained them all, goes on
        resume, before, extended = _shorter_teacher(path, key, cfg, curve, best, reference=tx, kept=kept, keep=keep)
    # A CIFAR-10 teacher trains for most of an hour of a CPU core: one tick an epoch, with its validation accuracy
    # (each shown: epochs are rare, mininterval 0).
    bar = tqdm(total=cfg.epochs, initial=max(curve, default=0), unit="epoch", leave=False, disable=not progress, mininterval=0,
               desc=f"teacher {cfg.arch} on {target.name}")

    def observe(step: int, st: ModelState) -> bool:
        epoch = step // per_epoch
        curve[epoch] = float(accuracy(learner, st, vx, target.val.y)[0]) * 100
        bar.set_postfix(val=f"{curve[epoch]:.2f}", refresh=False)
        bar.update(1)
        if kept is not None and epoch in keep:  # type: ignore[operator]
            kept[epoch] = st.select(slice(None))
        if not best or curve[epoch] > best["val"]:
            best.update(val=curve[epoch], epoch=epoch, state=st.select(slice(None)))
        return _stops_by(curve, cfg.patience) == epoch  # the one early-stop rule (a longer teacher replays it)

    last: list[RecipeCheckpoint] = [] if resume is None else [resume]

    def training_state(ck: RecipeCheckpoint, epochs: dict[int, ModelState] | None) -> dict:
        b = best["state"]
        return {"key": key, "training": ck.to_dict(), "curve": curve, "seconds": before + time.perf_counter() - t0,
                "best": {"val": best["val"], "epoch": best["epoch"], "params": b.params, "buffers": b.buffers, "head": b.head},
                **({} if epochs is None else {"epochs": _states_dict(epochs)})}

    def checkpoint(ck: RecipeCheckpoint) -> None:
        last[:] = [ck]
        save_state(partial, training_state(ck, kept))

    with bar:
        train_models(learner, tx, torch.nn.functional.one_hot(target.train.y, target.num_classes).float(), 1, seeds,
                     batch_size=batch, recipe=cfg.train_recipe(channels),
                     observe_at=[per_epoch * (e + 1) for e in range(cfg.epochs)], observer=observe,
                     checkpoint=checkpoint if partial is not None else None, resume=resume)
    state: ModelState = best["state"]
    state.reference = tx
    test_x = target.test.x if zca is None else zca.apply(target.test.x)
    record = {"arch": cfg.arch, "val_accuracy": round(best["val"], 4), "best_epoch": best["epoch"], "epochs_trained": max(curve),
              "test_accuracy": round(float(accuracy(learner, state, test_x, target.test.y)[0]) * 100, 4),
              "validation_curve": {str(k): round(v, 4) for k, v in curve.items()}, "config": dataclasses.asdict(cfg),
              "seconds": round(before + time.perf_counter() - t0, 3), "key": key, "versions": versions(),
              **({"resumed_after_epoch": resume.step // per_epoch} if resume is not None and extended is None else {}),
              **({"extended_from": extended} if extended is not None else {})}
    if found is not None:  # trained again for its epochs: the cached teacher stays what runs made with it used
        same = all(torch.equal(state.params[n], t) for n, t in found[0].params.items())
        record["same_as_cached"] = same
        if not same:
            warnings.warn(f"{path} trained again for its epochs gave other weights than the cached teacher (another machine "
                          "or thread count?): the cached teacher stays, and its epochs' labels come from this training.",
                          stacklevel=2)
    if path is not None:
        from safetensors.torch import save

        if found is None:
            tensors = {n: t.detach().cpu().contiguous() for n, t in state.params.items()}
            atomic_write_bytes(path, save(tensors, metadata={"record": json.dumps(record, sort_keys=True)}))
        if kept is not None:  # with the epochs an earlier request kept (trained again here, or the same weights)
            save_state(epochs_file, {"key": key, "epochs": _states_dict({**(cached_epochs or {}), **kept})})
        if last and last[0].step == cfg.epochs * per_epoch:  # trained every epoch: a longer teacher may go on from here
            save_state(path.with_name(path.stem + FINAL), training_state(last[0], None))
        partial.unlink(missing_ok=True)  # type: ignore[union-attr]  (a cache file has its partial file beside it)
    if kept is not None:
        kept = _with_best(kept, keep, best["epoch"], state)  # type: ignore[arg-type]
        for st in kept.values():
            st.reference = tx
    out = learner, state, {**record, "cache": {"file": None if path is None else str(path), "reused": False}}, kept
    if shared is not None:
        shared[shared_key] = out
    return out


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


def _stops_by(curve: dict[int, float], patience: int) -> int | None:
    """The epoch at which a training of this validation ``curve`` stops for ``patience`` (``patience`` epochs after its
    first best: a tie is no improvement), or None where it would not stop within it. ``_train_teacher``'s observer
    asks it after each epoch, and :func:`_shorter_teacher` of a finished teacher's curve, so both follow one rule."""
    best_epoch, best_val = 0, float("-inf")
    for e in sorted(curve):
        if curve[e] > best_val:
            best_epoch, best_val = e, curve[e]
        if e - best_epoch >= patience:
            return e
    return None


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


def teacher_labels(learner: Learner, state: ModelState, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(teacher(x) / temperature)``: N x C probability vectors (float32)."""
    if not temperature > 0:
        raise UserError(f"--temperature must be positive, got {temperature}.")
    return torch.softmax(predict(learner, state, x)[0].float() / temperature, dim=-1)


@dataclass
class RunTeacher:
    """A teacher-started run's pieces (:func:`run_teacher`): its distilled set (``run``: base images, their labels), its
    target split (``data``), and the teacher its start came from (``learner``, ``state``, ``record``) at the run's
    ``temperature``; ``seed`` is the run's (its split's, and the test models' of its evaluations)."""

    run: DistilledSet
    data: TargetData
    learner: Learner
    state: ModelState
    record: dict
    temperature: float
    seed: int
    float_settings: dict

    def labels(self, x: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """``softmax(teacher(x) / T)`` at the run's temperature, or another."""
        return teacher_labels(self.learner, self.state, x, self.temperature if temperature is None else temperature)


@contextmanager
def run_teacher(run_dir: str | Path, device: str = "cpu", data_root: str | Path | None = None) -> Iterator[RunTeacher]:
    """The teacher a run started from (``distill --label-init teacher``), with the run's set and target split, under the
    run's float settings for the block (the teacher cache's key records them): the same cached teacher, or the same
    teacher trained again where the cache lacks it. For experiments on a run's base images against its teacher
    (``studies/per_view_teacher.py``, ``studies/implicit_labels.py``). A teacher of whitened images is refused
    (it labels whitened views, which these experiments do not make). ``data_root``: where the target is (default: where
    the run found it)."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / "config.json")
    cfg, init = record.get("config") or {}, record.get("label_init") or {}
    if init.get("label_init") != "teacher":
        raise UserError(f"{run_dir} did not start from teacher labels (--label-init teacher): it has no teacher to reuse.")
    if (init["teacher"].get("key") or {}).get("zca") is not None:
        raise UserError(f"{run_dir}'s teacher was trained on whitened images; this helper gives teachers of plain images only.")
    with float32_precision(bool(cfg.get("allow_tf32", False)), bool(cfg.get("deterministic", False))) as floats:
        ds = load(run_dir, device=device)
        root = data_root if data_root is not None else record.get("data_root")
        data = run_target(cfg["target"], root, cfg, int(cfg["seed"]), device, int(ds.images.shape[-1]))
        t_learner, t_state, teacher = train_teacher(data, TeacherConfig(**init["teacher"]["config"]), zca=None)
        yield RunTeacher(ds, data, t_learner, t_state, teacher, float(init["temperature"]), int(cfg["seed"]), floats)


def default_teacher_arch(target_name: str, channels: int, image_size: int) -> str:
    """The teacher's architecture when none is given: the target's default (LeNet for digits, AlexCifarNet for colour), under
    every protocol, where it takes the images at the size they are loaded (else ConvNet-3, which takes any size from 8 px).
    A cheap teacher by default: on one core of our 2-core CPU an MNIST epoch (50,000 images, minibatches of 256) takes 9 s
    with LeNet and about 110 s with ConvNet-3 (session 45; 570 s with the code of session 9), so the field's ConvNet-3
    expert (``--teacher-arch convnet3``, 32 epochs) costs an hour there, LeNet minutes (docs/design-notes.md, "Teacher labels")."""
    from .models import input_size_for
    from .paper_defaults import default_arch

    arch = default_arch(target_name, channels)
    need = input_size_for(arch, image_size)
    return arch if need is None or need == image_size else "convnet3"


# The teacher epochs epoch="auto" scores (those trained, plus the best validation epoch): Qin et al.'s experts label
# best early in their training, well before their best accuracy, so the grid is dense early and sparse late.
TEACHER_EPOCHS = (1, 2, 4, 8, 16, 32, 64)


def parse_teacher_epoch(value: object, flag: str = "--teacher-epoch") -> int | str:
    """``"best"`` (the epoch of best validation accuracy, the default), ``"auto"`` (chosen by the students it labels,
    on the validation split) or a positive epoch number."""
    if isinstance(value, str) and value.strip().lower() in ("best", "auto"):
        return value.strip().lower()
    try:
        e = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        e = 0
    if e < 1 or (isinstance(value, float) and value != e):
        raise UserError(f"{flag} must be best, auto or a positive epoch number, got {value!r}.")
    return e


def teacher_soft_labels(problem, *, proto, zca, student: Learner, seed: int, arch: str | None, epochs: int, patience: int,
                        temperature: float | str, batch: int, lr: float, ledger: Path | None = None,
                        grid: tuple[float, ...] = TEMPERATURES, epoch: int | str = "best",
                        progress: bool = False, recipe: str = "adam", teacher_lr: float | None = None
                        ) -> tuple[torch.Tensor, dict]:
    """The teacher's soft labels for ``problem``'s base images, and a record (the teacher's, the temperature and,
    with ``"auto"``, every candidate's validation accuracy).

    ``proto``: the protocol the labels will be tested under (it decides how a temperature is scored);
    ``arch``: the teacher's architecture (None: :func:`default_teacher_arch`);
    ``zca``: its whitening (the teacher trains and labels whitened images); ``student``: the learner
    scored (linear head); ``batch`` / ``lr``: the student's minibatch size and lr under the paper protocol;
    ``ledger``: a folder where the temperature choice under a fixed-epoch protocol keeps each finished student
    (:class:`~labeldistill.runs.ledger.ModelLedger`), so an interrupted choice resumes;
    ``grid``: the temperatures ``"auto"`` scores (a check beyond the default grid's end:
    ``studies/temperature_beyond_grid.py``);
    ``epoch``: which of the teacher's weights label: ``"best"`` (its best validation accuracy), an epoch number, or
    ``"auto"``: the epoch whose labels train the best student (Qin et al.'s early-stopped expert), scored like a
    temperature on :data:`TEACHER_EPOCHS` (those trained) and the best epoch. With both ``"auto"``, one coordinate
    step each: the temperature at the best epoch (the students ``epoch="best"`` trains, which the ledger keeps), the
    epoch at that temperature, then the temperature again at the chosen epoch where it is another.
    ``progress``: bars over the teacher's epochs and each validation student's training.
    ``recipe`` / ``teacher_lr``: how the teacher trains (:data:`TEACHER_RECIPES`; its lr, else the recipe's).
    """
    target = problem.target
    arch = arch or default_teacher_arch(target.name, target.preprocessing.channels, int(target.train.x.shape[-1]))
    cfg = teacher_config(arch, seed=seed, epochs=epochs, patience=patience, recipe=recipe, lr=teacher_lr)
    epoch = parse_teacher_epoch(epoch)
    if epoch == "best":
        t_learner, t_state, teacher = train_teacher(target, cfg, zca=zca, progress=progress)
        states = {int(teacher["best_epoch"]): t_state}
    else:
        # The grid ``auto`` scores, and an epoch asked for by number (kept with them, for later requests).
        wanted = set(TEACHER_EPOCHS) | ({epoch} if isinstance(epoch, int) else set())
        t_learner, states, teacher = train_teacher_epochs(target, cfg, zca=zca, progress=progress, epochs=wanted)
        if isinstance(epoch, int) and epoch not in states:
            raise UserError(f"--teacher-epoch {epoch}: the teacher trained {max(states)} epochs (it stops {patience} after its "
                            f"best, epoch {teacher['best_epoch']}; --teacher-patience lets it go on).")
    bx = problem.base_x if zca is None else zca.apply(problem.base_x)
    logits_at = lambda e: predict(t_learner, states[e], bx)[0].float()  # noqa: E731
    best_epoch = int(teacher["best_epoch"])
    chosen = best_epoch if epoch in ("best", "auto") else int(epoch)
    record: dict = {"teacher": teacher}
    score = None
    if temperature == "auto" or epoch == "auto":
        score = validation_scorer(problem, proto=proto, student=student, seed=seed, batch=batch, lr=lr, zca=zca, ledger=ledger,
                                  progress=progress)

    def choose_t(e: int) -> tuple[float, dict]:
        t0 = time.perf_counter()
        t, scores = choose_temperature(logits_at(e), score, grid)  # type: ignore[arg-type]
        return t, {"grid": list(grid), "val_accuracy": scores, "chosen": t, "at_grid_edge": grid_edge(t, scores, grid),
                   "seconds": round(time.perf_counter() - t0, 3),
                   "how": "one student per temperature on the validation split, trained as the test trains",
                   **({} if epoch == "best" else {"epoch": e})}

    if temperature == "auto":
        temperature, record["temperature_choice"] = choose_t(chosen)
    if epoch == "auto":
        t0 = time.perf_counter()
        candidates = sorted({e for e in TEACHER_EPOCHS if e in states} | {best_epoch})  # the earliest wins ties
        chosen, scores = choose_best(candidates, lambda e: score(torch.softmax(logits_at(e) / float(temperature), dim=-1)))  # type: ignore[misc, arg-type]
        record["epoch_choice"] = {"grid": candidates, "val_accuracy": scores,
                                  "chosen": chosen, "temperature": float(temperature),  # type: ignore[arg-type]
                                  "seconds": round(time.perf_counter() - t0, 3),
                                  "how": "one student per teacher epoch on the validation split, trained as the test trains"}
        if "temperature_choice" in record and chosen != best_epoch:  # the temperature again, for the epoch chosen
            record["temperature_choice_at_best_epoch"] = record["temperature_choice"]
            temperature, record["temperature_choice"] = choose_t(chosen)
    if epoch != "best":  # (records of the default keep their shape: the best epoch is the teacher record's)
        record["epoch"] = chosen
    record["temperature"] = float(temperature)  # type: ignore[arg-type]
    return torch.softmax(logits_at(chosen) / float(temperature), dim=-1), record  # type: ignore[arg-type]
