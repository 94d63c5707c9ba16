"""The persistent model of a strategy that learns through the test's own learner (``--method implicit``).

The paper's loop keeps one young model, stepped once per loop step by Adam and reset when it over-fits: the
meta-gradient then asks what the labels do for a model early in its training. A strategy whose ``persistent`` is
``"protocol"`` asks instead what they do for the model the test trains: :class:`ProtocolStudents` holds K such models
(ConvNet-3 under ``dc-dsa``), first trained the protocol's whole way on the start labels (SGD with momentum and weight
decay, its lr schedule, DSA views, 1,000 epochs), then, after every label step, trained ``follow_epochs`` more
full-batch epochs at the protocol's final learning rate on the new labels, so they track the minimiser the labels
define instead of being retrained (38 s a step against 3.8 minutes for a fresh student on one CPU thread, MNIST-100).
They are never reset. With ``refresh_every`` R, every R label steps one of them (in turn) is replaced by a fresh student
trained the protocol's whole way on the labels as they are, from a new seed: followed students keep the history of
the start labels, where the test's models are trained from scratch on the final ones (the one- and three-student runs
moved the labels in the same direction, and fresh students stopped gaining along it: docs/results.md, session 33). The
method refreshes one every 5 steps by default since session 34 (MNIST-100: 98.26 against 98.07 without); none after the
loop's last step.

Everything they see is the protocol's view of the images: whitened when the protocol whitens them (ZCA fitted on the
target's training split, as the test's), and augmented by the protocol's transforms. Every draw comes from the run's
own generators (the students' seeds: one stream for the following, one for the views the strategy differentiates
over), saved in the checkpoint with the students and their optimiser, so a resumed run continues exactly.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from tqdm.auto import tqdm

from ..engine import DSAugmenter, Learner, ModelState, TrainRecipe, train_models
from ..engine.batching import map_models, resolve_mode
from ..errors import UserError
from ..protocols import Protocol
from ..protocols.evaluate import whiten
from ..protocols.zca import ZCA
from ..seeding import derive_seed


class ProtocolStudents:
    """K students trained by ``protocol``'s recipe on the whole base set at once (full batch).

    Args:
        learner: the students' architecture (the protocol's) with a linear head.
        protocol: a fixed-epoch protocol (``dc``, ``dc-dsa``).
        channels: the images' channels (the protocol's transforms and ZCA depend on them).
        n_base: N, the base images; at most the protocol's batch (the students train full-batch).
        seed: the run's seed; student k is initialised from ``(seed, "protocol-students", k)``.
        students: K, the students a label step's gradient is averaged over.
        follow_epochs: full-batch epochs at the protocol's final lr after every label step.
        first_epochs: the first training's epochs (None: the protocol's own, with its lr schedule).
        zca: the protocol's whitening of these images, or None.
        refresh_every: every this many label steps (calls of :meth:`follow`), student ``r mod K`` of refresh r is trained
            afresh (``first_recipe``, seed ``(its seed, "refresh", r)``) on the labels just followed; None or 0: never.
        last_step: the loop's last label step: no refresh after it (that student would never give a gradient).
        progress: a progress bar over each refresh's training.
    """

    def __init__(self, learner: Learner, protocol: Protocol, *, channels: int, n_base: int, seed: int, students: int,
                 follow_epochs: int, first_epochs: int | None, zca: ZCA | None, device: torch.device,
                 refresh_every: int | None = None, last_step: int | None = None, progress: bool = False) -> None:
        if protocol.is_paper or protocol.epochs is None:
            raise UserError(f"the students train by a fixed-epoch protocol (dc, dc-dsa), not {protocol.name}")
        batch = protocol.batch_for(n_base, n_base)
        if batch < n_base:
            raise UserError(f"--method implicit trains its students on all base images at once: at most {batch} under "
                            f"{protocol.name} (got {n_base})")
        self.learner, self.protocol, self.zca, self.device = learner, protocol, zca, device
        self.n_base, self.follow_epochs, self.refresh_every, self.last_step = n_base, follow_epochs, refresh_every, last_step
        self.followed = 0  # label steps followed: when the next refresh comes, and which student it replaces
        # The refresh due at the last step, skipped (that student would never give a gradient) but kept, with the images
        # and labels it would train on, so that a longer run continued from here (distill --extend) makes it as one
        # started longer does: {"generation": r, "x": ..., "y": ...}, or None.
        self.owed: dict[str, Any] | None = None
        self.progress = progress  # a bar over a refresh's training (minutes on a CPU, inside one label step)
        self.recipe: TrainRecipe = protocol.recipe(channels, lr=1e-3)
        first = self.recipe if first_epochs is None else dataclasses.replace(protocol, epochs=first_epochs).recipe(channels, lr=1e-3)
        self.first_recipe: TrainRecipe = first
        self.seeds = [derive_seed(seed, "protocol-students", k) for k in range(students)]
        self.state: ModelState = learner.init(self.seeds, device=device)  # replaced by the first training
        self.trained = False
        aug = self.recipe.augmentation
        self._follow_aug = DSAugmenter(aug, [derive_seed(s, "follow") for s in self.seeds], device) if aug is not None else None
        self._view_aug = DSAugmenter(aug, [derive_seed(s, "views") for s in self.seeds], device) if aug is not None else None
        self._step_fn = map_models(learner.train_loss, (0, 0, 0, 0, None), resolve_mode("auto", device))
        self.opt = self._optimizer()

    @property
    def k(self) -> int:
        return len(self.seeds)

    @property
    def weight_decay(self) -> float:
        """The students' weight decay: part of the training loss whose minimiser they approach."""
        return self.recipe.weight_decay

    def _optimizer(self) -> torch.optim.SGD:
        """SGD at the protocol's final lr over the K stacked students (elementwise: one optimiser equals K)."""
        r = self.recipe
        return torch.optim.SGD(list(self.state.params.values()), lr=r.lr_at(r.epochs - 1), momentum=r.momentum,
                               weight_decay=r.weight_decay)

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """Images as the protocol's models see them before augmentation (whitened when the protocol whitens them)."""
        return whiten(self.zca, x)

    def _per_student(self, x: torch.Tensor) -> torch.Tensor:
        """K x N x ...: the whitened images once for each student (the augmenters take one minibatch a model)."""
        return self.whiten(x)[None].expand(self.k, *x.shape).contiguous()

    def _train_fresh(self, x: torch.Tensor, y: torch.Tensor, seeds: list[int], *, progress: bool, desc: str) -> ModelState:
        """Fresh models from ``seeds`` trained ``first_recipe``'s whole way on base images ``x`` (the loop's normalisation)
        and labels ``y``, with a progress bar over their steps when ``progress``."""
        total = self.first_recipe.total_steps(self.n_base, self.n_base, None)
        with tqdm(total=total * len(seeds), disable=not progress, unit="step", leave=False, desc=desc) as bar:
            def tick(_step: int, _state: object) -> None:  # None, never tqdm's True: an observer's True stops the training
                bar.update(len(seeds))

            return train_models(self.learner, self.whiten(x), y, 1, seeds, batch_size=self.n_base, recipe=self.first_recipe,
                                observe_at=range(1, total + 1) if progress else (), observer=tick if progress else None)

    def train_first(self, x: torch.Tensor, y: torch.Tensor, *, progress: bool = False) -> None:
        """The protocol's whole training (``first_recipe``) on base images ``x`` (the loop's normalisation) and labels ``y``."""
        state = self._train_fresh(x, y, self.seeds, progress=progress, desc=f"{self.protocol.name}: training {self.k} student(s)")
        self.state.copy_(state.params, state.buffers, state.head)  # into the tensors the optimiser holds
        self.trained = True

    def views(self, x: torch.Tensor, views: int) -> torch.Tensor:
        """K x (V N) x C x H x W: ``views`` augmented views of the whitened images ``x`` for each student, view-major
        (view v of image i at row v N + i), each student from its own stream; the images as they are without augmentation."""
        xk = self._per_student(x)
        if self._view_aug is None:
            return xk.repeat(1, views, 1, 1, 1)
        return torch.stack([self._view_aug(xk) for _ in range(views)], 1).flatten(1, 2)

    def follow(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """``follow_epochs`` full-batch SGD steps of every student on (augmented, whitened) ``x`` with labels ``y``; then,
        every ``refresh_every`` calls, one student replaced by a fresh one (:meth:`refresh`)."""
        xk = self._per_student(x)
        s = self.state
        for _ in range(self.follow_epochs):
            xb = self._follow_aug(xk) if self._follow_aug is not None else xk
            losses, _ = self._step_fn(s.params, s.buffers, s.head, xb, y)
            self.opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            self.opt.step()
        self.followed += 1
        if self.refresh_every and self.followed % self.refresh_every == 0:
            r = self.followed // self.refresh_every - 1
            if self.last_step is None or self.followed < self.last_step:
                self.refresh(r % self.k, x, y, generation=r)
            else:
                self.owed = {"generation": r, "x": x.detach().clone(), "y": y.detach().clone()}

    def refresh_seed(self, k: int, generation: int) -> int:
        return derive_seed(self.seeds[k], "refresh", generation)

    def refresh(self, k: int, x: torch.Tensor, y: torch.Tensor, *, generation: int) -> None:
        """Student ``k`` replaced by a fresh model trained ``first_recipe``'s whole way on ``x`` (the loop's normalisation)
        and labels ``y``, from seed :meth:`refresh_seed`; its momentum in the following optimiser starts again at zero."""
        fresh = self._train_fresh(x, y, [self.refresh_seed(k, generation)], progress=self.progress,
                                  desc=f"{self.protocol.name}: training student {k} afresh")
        with torch.no_grad():
            for mine, new in ((self.state.params, fresh.params), (self.state.buffers, fresh.buffers), (self.state.head, fresh.head)):
                for n, t in new.items():
                    mine[n][k].copy_(t[0])
            for p in self.opt.param_groups[0]["params"]:
                buf = self.opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf[k].zero_()

    def state_dict(self) -> dict[str, Any]:
        return {"params": {n: t.detach() for n, t in self.state.params.items()}, "buffers": self.state.buffers,
                "head": self.state.head, "opt": self.opt.state_dict(), "trained": self.trained, "followed": self.followed,
                "owed": self.owed,
                "follow_aug": self._follow_aug.state_dict() if self._follow_aug is not None else None,
                "view_aug": self._view_aug.state_dict() if self._view_aug is not None else None}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.state.copy_(s["params"], s["buffers"], s["head"])
        self.opt.load_state_dict(s["opt"])
        self.trained = bool(s["trained"])
        self.followed = int(s.get("followed", 0))  # checkpoints before refreshes: only a refresh reads it
        self.owed = s.get("owed")
        if self.owed is not None and (self.last_step is None or self.followed < self.last_step):
            # a run continued past the step whose refresh it skipped: made now, before the students give another gradient
            # (nothing between that step and this point trains them or draws from their streams)
            r = int(self.owed["generation"])
            self.refresh(r % self.k, self.owed["x"].to(self.device), self.owed["y"].to(self.device), generation=r)
            self.owed = None
        for aug, key in ((self._follow_aug, "follow_aug"), (self._view_aug, "view_aug")):
            if aug is not None:
                aug.load_state_dict(s[key])
