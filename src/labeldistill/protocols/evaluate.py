"""Train and test fresh models on a set under a protocol (all K models at once, by the engine)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from ..data import TargetData
from ..engine import Evaluation, Learner, accuracy, model_seeds, train_models
from ..errors import ArtifactError, UserError
from ..runs import load_state, save_state
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
    test_y: torch.Tensor, *, steps: int, seed: int, models: int | None = None, batch_size: int = 50, lr: float = 1e-3,
    zca: ZCA | None = None, purpose: str = "test-models",
) -> Evaluation:
    """``models`` fresh models (default: the protocol's) trained on (images, labels) the protocol's way, tested on
    (test_x, test_y). ``steps`` / ``batch_size`` / ``lr`` are the set's own (used where the protocol keeps them);
    ``zca``: the whitening (from :func:`target_zca`), applied to the test images and, unless the set's images are
    already whitened, to them. Model seeds are the paper protocol's test-model seeds (``purpose``: another
    stream, e.g. ``"validation-models"`` for a choice made on the validation split).
    """
    p = get_protocol(protocol)
    k = p.models if models is None else int(models)
    if k < 1:
        raise UserError(f"--models must be at least 1, got {k}.")
    t0 = time.perf_counter()
    x = whiten(zca, images, already=zca is not None and zca.applied_to_images)
    tx = whiten(zca, test_x)
    batch = p.batch_for(int(images.shape[0]), batch_size)
    recipe = p.recipe(int(images.shape[1]), lr=lr)
    state = train_models(learner, x, labels, int(steps), model_seeds(seed, purpose, k), batch_size=batch, recipe=recipe)
    acc = accuracy(learner, state, tx, test_y).double().cpu() * 100
    total = recipe.total_steps(int(images.shape[0]), batch, int(steps))
    return Evaluation(
        accuracy_mean=float(acc.mean()), accuracy_std=float(acc.std(unbiased=False)) if k > 1 else 0.0,
        accuracies=[round(float(a), 4) for a in acc], steps=int(total), models=k, seconds=round(time.perf_counter() - t0, 3),
        extra={"protocol": p.name, "protocol_settings": p.to_dict(), "batch_size": batch, "train_epochs": recipe.epochs,
               "augmentation": None if recipe.augmentation is None else recipe.augmentation.to_dict(),
               "zca": None if zca is None else zca.document()},
    )
