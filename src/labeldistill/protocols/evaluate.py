"""Train and test fresh models on a set under a protocol (all K models at once, by the engine)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..data import TargetData
from ..engine import Evaluation, Learner, accuracy, model_seeds, train_models
from ..engine.batching import resolve_mode
from ..errors import ArtifactError, UserError
from ..runs import load_state, save_state
from ..runs.ledger import ModelLedger, tensor_sha256
from ._base import Protocol, get_protocol
from .zca import ZCA, fit_zca


def target_zca(protocol: Protocol, target: TargetData | None, channels: int, given: ZCA | None = None) -> ZCA | None:
    """The ZCA whitening a protocol needs for this data: ``given`` (a set's recorded one) if there is one,
    else fitted on the target's training split; None when the protocol does not whiten these images."""
    if not protocol.uses_zca(channels):
        return None
    if given is not None:
        return given
    if target is None:
        raise UserError(f"Protocol {protocol.name} whitens colour images with a ZCA fitted on the target's training split: "
                        "the set records none, so give the target data.")
    fitted_on = {"dataset": target.name, "split": "train", "images": len(target.train),
                 "index_sha256": target.split_record.get("index_sha256"), "seed": target.split_record.get("seed")}
    return cached_fit_zca(target.train.x, protocol.zca_eps or 0.0, fitted_on=fitted_on)


def zca_cache_dir() -> Path | None:
    """Next to the base-set selections and teachers (``selectors.default_cache_dir()``): ``.../zca``; None when caching is off."""
    from ..selectors import default_cache_dir

    d = default_cache_dir()
    return None if d is None else d.parent / "zca"


def cached_fit_zca(x: torch.Tensor, eps: float, *, fitted_on: dict) -> ZCA:
    """:func:`fit_zca`, kept in :func:`zca_cache_dir` by the images' content, eps and what can change the
    fit's arithmetic (torch and kornia versions, device type): the fit of CIFAR-10's training split takes
    about 30 s on a CPU, hashing its images about one. A hit returns the stored fit, bit for bit."""
    import kornia

    root = zca_cache_dir()
    if root is None:
        return fit_zca(x, eps, fitted_on=fitted_on)
    h = hashlib.sha256()
    h.update(json.dumps({"shape": list(x.shape), "dtype": str(x.dtype), "eps": float(eps), "torch": torch.__version__,
                         "kornia": kornia.__version__, "device": x.device.type}, sort_keys=True).encode())
    h.update(x.detach().contiguous().cpu().numpy().tobytes())
    path = root / f"{h.hexdigest()[:32]}.safetensors"
    if path.exists():
        try:
            state = load_state(path, device=x.device)
            return ZCA.from_parts({**state["doc"], "fitted_on": fitted_on}, state["tensors"])
        except ArtifactError:
            pass  # a damaged entry: fit again and replace it
    zca = fit_zca(x, eps, fitted_on=fitted_on)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_state(path, {"doc": zca.document(), "tensors": zca.tensors()})
    except OSError:
        pass  # a read-only cache only costs the fit next time
    return zca


def whiten(zca: ZCA | None, x: torch.Tensor, *, already: bool = False) -> torch.Tensor:
    return x if zca is None or already else zca.apply(x)


def evaluate_protocol(
    protocol: str | Protocol, learner: Learner, images: torch.Tensor, labels: torch.Tensor, test_x: torch.Tensor,
    test_y: torch.Tensor, *, steps: int | None, seed: int, models: int | None = None, batch_size: int = 50, lr: float = 1e-3,
    zca: ZCA | None = None, purpose: str = "test-models", ledger: str | Path | None = None, progress: bool = False,
    view_labels: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Evaluation:
    """``models`` fresh models (default: the protocol's) trained on (images, labels) the protocol's way, tested on
    (test_x, test_y). ``steps`` / ``batch_size`` / ``lr`` are the set's own (used where the protocol keeps them; ``steps`` None for a set
    without a T, which only a fixed-epoch protocol trains);
    ``zca``: the whitening (from :func:`target_zca`), applied to the test images and, unless the set's images are
    already whitened, to them. Model seeds are the paper protocol's test-model seeds (``purpose``: another
    stream, e.g. ``"validation-models"`` for a choice made on the validation split).

    ``ledger``: a folder for a :class:`~labeldistill.runs.ledger.ModelLedger`. Each finished model's accuracy is
    recorded there, and a later call with the same settings trains only the models it lacks (on a CPU the
    models then train one by one, which costs nothing there: the engine's CPU path is a loop over models).
    ``progress``: a progress bar over the training steps of the models still to train.
    ``view_labels``: label every (augmented, whitened) minibatch by this function of its images instead of ``labels``
    (``train_models``'s; a teacher on every view). Not with a ledger, whose key could not say which function it was.
    """
    p = get_protocol(protocol)
    if view_labels is not None and ledger is not None:
        raise ValueError("view_labels cannot be recorded in a ledger: evaluate without one")
    k = p.models if models is None else int(models)
    if k < 1:
        raise UserError(f"--models must be at least 1, got {k}.")
    x = whiten(zca, images, already=zca is not None and zca.applied_to_images)
    tx = whiten(zca, test_x)
    batch = p.batch_for(int(images.shape[0]), batch_size)
    recipe = p.recipe(int(images.shape[1]), lr=lr)
    total = recipe.total_steps(int(images.shape[0]), batch, steps)
    checks = p.check_steps(recipe.steps_per_epoch(int(images.shape[0]), batch))
    seeds = model_seeds(seed, purpose, k)
    book = None
    if ledger is not None:
        # steps: those the models train (a fixed-epoch protocol ignores the set's own T), so one set re-tested at
        # another T, or the same labels reached by another run, finds the models already trained
        key = _ledger_key(p, learner, x, labels, tx, test_y, steps=int(total), seed=seed, purpose=purpose, batch=batch,
                          lr=recipe.lr, zca=zca)
        book = ModelLedger(ledger, key, prefix=p.name)
    done = {} if book is None else {i: r for i, r in book.done().items() if i < k}
    todo = [i for i in range(k) if i not in done]
    # With a ledger on a CPU, one model at a time (each recorded as it finishes); else all at once (vmap on a GPU).
    one_by_one = book is not None and resolve_mode("auto", x.device) == "loop"
    groups = [[i] for i in todo] if one_by_one else ([todo] if todo else [])
    bar = tqdm(total=len(todo) * total, disable=not progress or not todo, unit="step", leave=False,
               desc=f"{p.name}: {len(todo)} of {k} model(s) to train")

    with bar:
        for group in groups:
            on_the_way: list[list[float]] = []  # the test checks before the end, one list over the group's models each

            def observe(step: int, state: object, n: int = len(group), on_the_way: list = on_the_way) -> None:
                if progress:  # (returns None: True would stop training)
                    bar.update(n)
                if step in checks and step != total:  # testing reads the models, never their training state
                    on_the_way.append((accuracy(learner, state, tx, test_y).double().cpu() * 100).tolist())

            t0 = time.perf_counter()
            state = train_models(learner, x, labels, total, [seeds[i] for i in group], batch_size=batch, recipe=recipe,
                                 observe_at=range(1, total + 1) if progress else checks,
                                 observer=observe if (progress or checks) else None, view_labels=view_labels)
            acc = (accuracy(learner, state, tx, test_y).double().cpu() * 100).tolist()
            seconds = (time.perf_counter() - t0) / len(group)
            for j, (i, a) in enumerate(zip(group, acc)):
                done[i] = {"model": i, "seed": seeds[i], "accuracy": a, "seconds": seconds}
                if checks:
                    done[i]["checks"] = [round(c[j], 4) for c in on_the_way] + [round(a, 4)]
                if book is not None:
                    book.record(i, seed=seeds[i], accuracy=a, seconds=round(seconds, 3),
                                **({"checks": done[i]["checks"]} if checks else {}))
    acc = torch.tensor([float(done[i]["accuracy"]) for i in range(k)], dtype=torch.float64)
    extra = {"protocol": p.name, "protocol_settings": p.to_dict(), "batch_size": batch, "train_epochs": recipe.epochs,
             "augmentation": None if recipe.augmentation is None else recipe.augmentation.to_dict(),
             "zca": None if zca is None else zca.document()}
    if checks:
        extra.update(_best_checks(p, [done[i]["checks"] for i in range(k)]))
    if book is not None:
        extra.update(ledger=str(book.path), models_from_ledger=k - len(todo))
    return Evaluation(
        accuracy_mean=float(acc.mean()), accuracy_std=float(acc.std(unbiased=False)) if k > 1 else 0.0,
        accuracies=[round(float(a), 4) for a in acc], steps=int(total), models=k,
        seconds=round(sum(float(done[i]["seconds"]) for i in range(k)), 3), extra=extra,
    )


def _best_checks(p: Protocol, curves: list[list[float]]) -> dict:
    """The test checks on the way, and each model's best of them: the protocol's authors' reporting, chosen on the test set."""
    best = torch.tensor([max(c) for c in curves], dtype=torch.float64)
    epochs = list(p.check_epochs())
    return {"test_checks": {"epochs": epochs, "accuracies": curves},
            "best_check": {"accuracy_mean": float(best.mean()), "accuracy_std": float(best.std(unbiased=False)) if len(curves) > 1 else 0.0,
                           "accuracies": [round(float(b), 4) for b in best],
                           "note": f"each model's best of its {len(epochs)} test checks: {p.name}'s authors' reporting, a choice "
                                   "made on the test set (accuracy_mean is the trained models' final accuracy)"}}


def _ledger_key(p: Protocol, learner: Learner, x: torch.Tensor, labels: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, *,
                steps: int, seed: int, purpose: str, batch: int, lr: float, zca: ZCA | None) -> dict:
    """Everything that decides a model's test accuracy under ``p`` (the number of models does not); ``batch`` and
    ``lr`` are the ones the models train with (a fixed-epoch protocol's own, not the set's)."""
    from ..numerics import NUMERICS_VERSION, float_settings

    return {"protocol": p.to_dict(), "model": type(learner.template).__name__, "head": learner.head_kind,
            "parameters": [list(t.shape) for t in learner.template.parameters()],
            "train": tensor_sha256(x, labels), "test": tensor_sha256(tx, ty), "steps": steps, "seed": seed, "purpose": purpose,
            "batch": batch, "lr": lr, "zca": None if zca is None else zca.document(), "device": x.device.type,
            "numerics_version": NUMERICS_VERSION, "float_settings": float_settings()}
