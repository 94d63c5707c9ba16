"""Training an early-stopped teacher on the target's whole training split, resumable epoch by epoch, through the
cache (:mod:`.cache`): :func:`train_teacher` (its best epoch) and :func:`train_teacher_epochs` (and the epochs that
may label)."""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..engine import Learner, ModelState, RecipeCheckpoint, accuracy, make_learner, model_seeds, train_models
from ..engine.recipe import TrainRecipe
from ..runs.provenance import versions
from ..runs.tensorstate import save_state
from .cache import (_DEFAULT_CACHE, _SHARED, FINAL, PARTIAL, _cached_epochs, _cached_teacher, _holds, _partial_teacher,
                    _shorter_teacher, _states_dict, _teacher_file, _teacher_key, _with_best, teacher_cache_dir)
from . import config  # config.TEACHER_EPOCHS read at call time: one setting for the training and the labels
from .config import TeacherConfig, _stops_by


def train_teacher(target, cfg: TeacherConfig, *, zca=None, cache_dir: Path | None | object = _DEFAULT_CACHE,
                  progress: bool = False) -> tuple[Learner, ModelState, dict]:
    """Train (or reuse from the cache) an early-stopped teacher on ``target``'s training split.

    One model (seed ``model_seeds(cfg.seed, "teacher", 1)``) trained by ``cfg``'s recipe (Adam or SGD, on the images or
    on DSA views) on shuffled minibatches; after each epoch its validation accuracy is measured; the best epoch's weights are kept and training stops
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
    keep = frozenset(int(e) for e in (config.TEACHER_EPOCHS if epochs is None else epochs))
    learner, _, record, kept = _train_teacher(target, cfg, zca=zca, cache_dir=cache_dir, keep=keep, progress=progress)
    return learner, kept, record  # type: ignore[return-value]


def _train_teacher(target, cfg: TeacherConfig, *, zca, cache_dir, keep: frozenset[int] | None, progress: bool = False
                   ) -> tuple[Learner, ModelState, dict, dict[int, ModelState] | None]:
    from ..runs.files import atomic_write_bytes

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
