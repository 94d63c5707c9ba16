"""``train_on``: train fresh models of your own on any (images, soft labels) set."""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import UserError
from ..models import RidgeClassifier
from ..models.norm import export_batch_norm_
from .evaluate import model_seeds
from .learner import HeadConfig, Learner, ModelState, missing_reference
from .train import train_models


def module_factory(model: str | nn.Module | Callable[[], nn.Module], in_channels: int, image_size: int, num_classes: int) -> Callable[[], nn.Module]:
    """A factory of fresh modules from an architecture name, a factory, or a module instance
    (re-initialised with each submodule's ``reset_parameters``, PyTorch's default init)."""
    if isinstance(model, nn.Module):
        template = model

        def fresh() -> nn.Module:
            m = copy.deepcopy(template)
            for sub in m.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
            return m

        return fresh
    if callable(model):
        return model
    from ..models import build_model

    return lambda: build_model(model, in_channels, image_size, num_classes)


def to_modules(learner: Learner, state: ModelState, seeds: Sequence[int]) -> list[nn.Module]:
    """Plain ``nn.Module`` copies of K trained models (ridge: a :class:`RidgeClassifier`).

    Models with batch norm come back with standard ``nn.BatchNorm*d`` layers in eval mode whose
    ``running_mean`` / ``running_var`` are the statistics of the training images
    (``state.reference``) under the final weights, so ``module.eval()(x)`` gives the engine's
    ``predict``; in train mode they would use (and update) batch statistics instead.
    """
    out = []
    if learner.has_batch_norm and state.reference is None:
        raise missing_reference()
    for k, seed in enumerate(seeds):
        body = learner.fresh_module(seed).to(next(iter(state.params.values())).device)
        params, buffers = {n: p[k] for n, p in state.params.items()}, {n: b[k] for n, b in state.buffers.items()}
        body.load_state_dict({**params, **buffers}, strict=False)
        if learner.has_batch_norm:
            ref = state.reference[k] if state.reference_per_model else state.reference  # model k's own images, or shared
            export_batch_norm_(body, learner.population_stats(params, buffers, ref))
        out.append(RidgeClassifier(body, state.head["w"][k], state.head["s"][k]) if learner.is_ridge else body)
    return out


def train_on(
    images: torch.Tensor, labels: torch.Tensor, model: str | nn.Module | Callable[[], nn.Module] = "lenet", steps: int | None = 300, *,
    models: int = 1, head: str = "linear", seed: int = 0, batch_size: int = 50, lr: float = 1e-3, head_config: HeadConfig | None = None,
) -> list[nn.Module]:
    """Train ``models`` fresh models the paper's way (Adam, soft cross-entropy, random minibatches).

    Args:
        images: N x C x H x W normalised images (their device is the training device).
        labels: N x C label distributions (e.g. ``labeldistill.load(run).labels``).
        model: an architecture name, a module factory, or a module (re-initialised per model);
            it needs ``features`` and ``head`` for ``head="ridge"``.
        steps: T; ``batch_size``: N_i (at most N).
    Returns:
        The trained modules (for ``head="ridge"``, :class:`~labeldistill.models.RidgeClassifier`).
    Example:
        >>> ds = labeldistill.load("runs/mnist-rr")
        >>> [net] = train_on(ds.images, ds.labels, "lenet", steps=ds.steps)
    """
    if steps is None:  # ds.steps of a set learned by students trained the test's way (--method implicit)
        raise UserError("steps is None: this set has no T for the paper's training; it trains by its recipe's test_protocol "
                        "(labeldistill.evaluate(run, protocol=...)), or give a number of steps.")
    factory = module_factory(model, int(images.shape[1]), int(images.shape[-1]), int(labels.shape[-1]))
    learner = Learner(factory, head=head, head_config=head_config)
    seeds = model_seeds(seed, "train-on", models)
    state = train_models(learner, images, labels, steps, seeds, batch_size=min(batch_size, images.shape[0]), lr=lr)
    return to_modules(learner, state, seeds)
