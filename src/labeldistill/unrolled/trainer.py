"""DD's unrolled trainer: learn images (and SLDD's labels) and per-step learning rates.

Each outer iteration takes a fresh network, trains it by ``T = steps * epochs`` plain SGD steps
on the distilled batches in their fixed order with the learned lrs, keeping the graph
(``create_graph``), scores the result on a minibatch of the target's training split, and
backpropagates exactly through all T steps to the images, the raw lrs and (SLDD) the labels;
Adam then updates them. Ordinary autograd through the unrolled graph gives the same gradient as
the reference's hand-written reverse pass.

Randomness is drawn from streams derived from ``(seed, purpose, index)``: the initial images,
the target permutation of each outer epoch, the fresh network and the augmentation of each
outer iteration. So the iteration counter is the whole generator state, and a run resumed from a
checkpoint replays exactly the draws of an uninterrupted one.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..cuda_graphs import GraphedCall
from ..errors import ArtifactError, UserError
from ..runs import MetricsLog, load_state, save_state
from ..seeding import torch_generator
from .config import UnrolledConfig
from .network import FunctionalNet, Params, inner_loss
from .schedule import Schedule, learned_schedule

CHECKPOINT_FORMAT = "labeldistill-unrolled-checkpoint"
CHECKPOINT_VERSION = 1


def unrolled_loss(
    net: Callable[[Params, torch.Tensor], torch.Tensor],
    params: Params,
    images: torch.Tensor,
    labels: torch.Tensor,
    lrs: torch.Tensor,
    order: Sequence[int],
    target_x: torch.Tensor,
    target_y: torch.Tensor,
) -> torch.Tensor:
    """The outer loss after ``len(order)`` differentiable SGD steps from ``params``.

    Step t: ``w <- w - lrs[t] * grad_w inner_loss(net(w, images[order[t]]), labels[order[t]])``
    with the graph kept, so the returned loss is differentiable in ``images``, ``lrs`` and
    ``labels`` (and in ``params``). ``params`` must require grad.

    Args:
        net: ``net(params, x) -> logits``.
        params: the fresh network's parameters.
        images: S x B x C x H x W distilled batches.
        labels: S x B class indices (DD) or S x B x K label vectors (SLDD).
        lrs: T learning rates (already through softplus).
        order: T step-tensor indices.
        target_x, target_y: the real minibatch (hard labels).
    """
    names = list(params)
    w = list(params.values())
    for t, b in enumerate(order):
        loss = inner_loss(net(dict(zip(names, w)), images[b]), labels[b])
        grads = torch.autograd.grad(loss, w, create_graph=True)
        w = [p - lrs[t] * g for p, g in zip(w, grads)]
    return F.cross_entropy(net(dict(zip(names, w)), target_x), target_y)


def initial_images(shape: Sequence[int], seed: int, image_std: float, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A run's images before learning: ``image_std`` x N(0, 1) noise of ``shape`` (S x B x C x H x W) from the run
    seed's own stream on ``device``. The same numbers only on the same kind of device: a CUDA generator draws others
    than a CPU one, which is why the distiller keeps its start in its checkpoints."""
    g = torch_generator(seed, "unrolled-images", device=device)
    return torch.randn(tuple(shape), generator=g, device=device, dtype=dtype) * image_std


def step_classes(num_classes: int, images_per_class: int) -> torch.Tensor:
    """The classes of one step's images, class-blocked: ``[0] * k + [1] * k + ...`` (k images per class)."""
    return torch.arange(num_classes).repeat_interleave(images_per_class)


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Reflect-pad by ``pad``, crop back to the input size at a random offset, flip half the
    images horizontally; one random draw per image, all in one gather.

    Normalisation is per-channel affine, so doing this on normalised images is the same as the
    reference's pad/crop/flip before ``Normalize``.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=generator.device).to(x.device)
    flip = torch.rand(n, generator=generator, device=generator.device).to(x.device) < 0.5
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = offsets[:, :1] + ar_h  # n x h
    cols = offsets[:, 1:] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # n x w
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # n x h x w x C
    return out.permute(0, 3, 1, 2).contiguous()


class UnrolledDistiller:
    """The outer loop of DD / SLDD on one target training split.

    Args:
        config: the run's settings (:func:`~labeldistill.unrolled.unrolled_config`).
        train_x, train_y: the target's training split, normalised, on the training device
            (``load_for_arch(...).train``; never the validation split).
        net: the architecture as a :class:`FunctionalNet` on that device.
        num_classes: C; each batch holds ``images_per_class`` images of each class, class-blocked.
        seed: the run seed; every random stream is derived from it.
        cuda_graph: on a GPU, replay an outer iteration's forward and backward (all T unrolled steps) as one CUDA
            graph: the same arithmetic, without the host cost of its thousands of small kernels (an eager AlexCifarNet
            iteration took 0.31 s on an H200, bound by that cost). Full target minibatches only; a shorter last one
            of an epoch runs eagerly.
    Example:
        >>> data = load_for_arch("mnist", "lenet")
        >>> net = FunctionalNet.from_arch("lenet", 1, 28, 10)
        >>> dist = UnrolledDistiller(unrolled_config("mnist", "dd"), data.train.x, data.train.y, net, 10)
        >>> dist.run(); schedule = dist.schedule()
    """

    def __init__(self, config: UnrolledConfig, train_x: torch.Tensor, train_y: torch.Tensor, net: FunctionalNet,
                 num_classes: int, *, seed: int = 0, cuda_graph: bool = False) -> None:
        if train_x.dim() != 4 or train_x.shape[0] != train_y.shape[0] or train_x.shape[0] == 0:
            raise UserError(f"train_x must be N x C x H x W with one label per image, got {tuple(train_x.shape)} and {tuple(train_y.shape)}.")
        self.config, self.net, self.seed = config, net, int(seed)
        self.num_classes = int(num_classes)
        if self.num_classes < 2 or int(train_y.min()) < 0 or int(train_y.max()) >= self.num_classes:
            raise UserError(f"train_y must hold class indices 0..{self.num_classes - 1} (num_classes={self.num_classes}).")
        self.x, self.y = train_x, train_y
        self.device = train_x.device
        cfg = config
        per_step = self.num_classes * cfg.images_per_class
        shape = (cfg.steps, per_step, *train_x.shape[1:])
        # The start is kept, not drawn again later: the noise comes from the generator of the device the run starts on,
        # and a run may finish on another kind (a CPU cannot draw what a GPU's generator drew).
        self.initial: torch.Tensor | None = initial_images(shape, self.seed, cfg.image_std, device=self.device, dtype=train_x.dtype)
        self.images = self.initial.clone().requires_grad_()
        classes = step_classes(self.num_classes, cfg.images_per_class).to(self.device)
        self.hard_labels = classes.expand(cfg.steps, per_step).contiguous()
        raw = math.log(math.expm1(cfg.distill_lr))  # softplus^-1
        self.raw_lrs = torch.full((cfg.inner_steps,), raw, device=self.device, dtype=train_x.dtype, requires_grad=True)
        self.labels: torch.Tensor | None = None
        leaves = [self.images, self.raw_lrs]
        if cfg.learns_labels:
            self.labels = F.one_hot(self.hard_labels, self.num_classes).to(train_x.dtype).requires_grad_()
            leaves.append(self.labels)
        self.optimizer = torch.optim.Adam(leaves, lr=cfg.outer_lr, betas=cfg.betas)
        self._leaves = leaves
        self._graphed = GraphedCall(self._loss_and_grads, enabled=cuda_graph and self.device.type == "cuda",
                                    what="unrolled outer iteration")
        self.iteration = 0
        self.seconds = 0.0  # wall time of the outer iterations so far (kept across resumes)
        self.order = [t % cfg.steps for t in range(cfg.inner_steps)]
        self._perm: tuple[int, torch.Tensor] | None = None

    # -- shape of the run -------------------------------------------------------------
    @property
    def iterations_per_epoch(self) -> int:
        return -(-self.x.shape[0] // self.config.batch_size)

    @property
    def total_iterations(self) -> int:
        return self.config.outer_epochs * self.iterations_per_epoch

    def lrs(self) -> torch.Tensor:
        return F.softplus(self.raw_lrs)

    def step_labels(self) -> torch.Tensor:
        """S x B class indices (DD) or the learned S x B x C label vectors (SLDD)."""
        return self.labels if self.labels is not None else self.hard_labels

    # -- one outer iteration --------------------------------------------------------------
    def target_batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The real minibatch of an outer iteration: epoch ``iteration // per_epoch``'s
        permutation, its ``iteration % per_epoch``-th slice; augmented if configured."""
        epoch, j = divmod(iteration, self.iterations_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            g = torch_generator(self.seed, "unrolled-target-batches", epoch, device=self.device)
            self._perm = (epoch, torch.randperm(self.x.shape[0], generator=g, device=self.device))
        idx = self._perm[1][j * self.config.batch_size : (j + 1) * self.config.batch_size]
        x, y = self.x[idx], self.y[idx]
        if self.config.augment:
            x = crop_flip(x, torch_generator(self.seed, "unrolled-augment", iteration, device=self.device))
        return x, y

    def fresh_params(self, iteration: int) -> Params:
        g = torch_generator(self.seed, "unrolled-model-init", iteration, device=self.device)
        return self.net.init(g, self.config.init_gain, requires_grad=True)

    def _loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The outer loss of fresh ``params`` (in the net's order) on the real minibatch ``(x, y)``, and its
        gradients in the learned leaves (images, raw lrs, SLDD's labels): device work only, so it can be captured."""
        loss = unrolled_loss(self.net, dict(zip(self.net.names, params)), self.images, self.step_labels(), self.lrs(),
                             self.order, x, y)
        return (loss.detach(), *torch.autograd.grad(loss, self._leaves))

    def step(self) -> float:
        """One outer iteration; returns its outer loss. Raises FloatingPointError on a non-finite
        loss (before updating anything), as the reference stops on NaN."""
        it = self.iteration
        epoch = it // self.iterations_per_epoch
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.outer_lr_at(epoch)
        x, y = self.target_batch(it)
        params = list(self.fresh_params(it).values())
        if x.shape[0] == self.config.batch_size:
            loss, *grads = self._graphed(x, y, *params)
        else:
            loss, *grads = self._loss_and_grads(x, y, *params)
        value = float(loss)
        if not math.isfinite(value):
            raise FloatingPointError(f"The outer loss became {value} at iteration {it}; the run stops (as the reference does on NaN).")
        for p, g in zip(self._leaves, grads):
            p.grad = g  # a replay's static output: read by this step only, overwritten by the next replay
        self.optimizer.step()
        self.iteration = it + 1
        return value

    def run(self, until: int | None = None, *, checkpoint: str | Path | None = None, checkpoint_every: int = 0,
            checkpoint_minutes: float | None = None, metrics: MetricsLog | None = None,
            on_iteration: Callable[[int, float], None] | None = None, stop: Callable[[], bool] | None = None) -> list[float]:
        """Outer iterations up to iteration ``until`` (default: the configured total).

        Args:
            until: stop once ``self.iteration == until``.
            checkpoint: file written every ``checkpoint_every`` iterations, at least every
                ``checkpoint_minutes``, when ``stop`` says so, and at the end.
            metrics: one JSON line per iteration; the checkpoint records its offset.
            on_iteration: called as ``on_iteration(iteration_done, loss)``.
            stop: asked after every iteration; True writes the checkpoint and returns early
                (``self.iteration < until`` tells the caller), e.g. after a Ctrl-C.
        Returns:
            The outer losses of the iterations run.
        """
        until = self.total_iterations if until is None else int(until)
        losses = []
        last = time.monotonic()
        while self.iteration < until:
            t0 = time.perf_counter()
            loss = self.step()
            self.seconds += time.perf_counter() - t0
            losses.append(loss)
            if metrics is not None:
                metrics.write({"iteration": self.iteration, "epoch": (self.iteration - 1) // self.iterations_per_epoch,
                               "loss": loss, "outer_lr": self.optimizer.param_groups[0]["lr"]})
            if on_iteration is not None:
                on_iteration(self.iteration, loss)
            if stop is not None and stop():
                if checkpoint is not None:
                    self.save_checkpoint(checkpoint, metrics)
                return losses
            due = checkpoint_every > 0 and self.iteration % checkpoint_every == 0
            if checkpoint_minutes is not None and time.monotonic() - last > 60 * checkpoint_minutes:
                due = True
            if checkpoint is not None and due:
                self.save_checkpoint(checkpoint, metrics)
                last = time.monotonic()
        if checkpoint is not None:
            self.save_checkpoint(checkpoint, metrics)
        return losses

    # -- results ------------------------------------------------------------------------
    def schedule(self) -> Schedule:
        """The learned schedule: step t on step-tensor ``t mod steps`` with ``softplus(raw_t)``."""
        return learned_schedule(self.lrs().detach().cpu().tolist(), self.config.steps, self.images.shape[1])

    def initial_images(self) -> torch.Tensor | None:
        """The images before learning (S x B x C x H x W). None after loading a checkpoint written before checkpoints kept
        them (a caller that knows the run started on this kind of device may :meth:`draw_initial` them again)."""
        return self.initial

    def draw_initial(self) -> torch.Tensor:
        """The run's start drawn again from its seed on this distiller's device: the start only on the kind of device the
        run started on."""
        return initial_images(self.images.shape, self.seed, self.config.image_std, device=self.device, dtype=self.images.dtype)

    def distilled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The flat distilled set: (S*B) x C x H x W images and (S*B) labels (DD: class
        indices; SLDD: the learned label vectors), in the schedule's index order."""
        labels = self.step_labels().detach()
        return self.images.detach().flatten(0, 1).clone(), labels.flatten(0, 1).clone()

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "iteration": self.iteration,
            "seconds": self.seconds,
            "images": self.images.detach(),
            "raw_lrs": self.raw_lrs.detach(),
            "labels": None if self.labels is None else self.labels.detach(),
            "initial_images": self.initial,
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise ArtifactError(f"Not an unrolled-trainer checkpoint of version {CHECKPOINT_VERSION} "
                                f"(format {state.get('format')!r}, version {state.get('version')!r}).")
        saved = UnrolledConfig.from_dict(state["config"])
        if saved != self.config or int(state["seed"]) != self.seed:
            raise UserError("The checkpoint was written by a run with another configuration or seed; "
                            "resume with the same settings, or start a new run.")
        with torch.no_grad():
            self.images.copy_(state["images"])
            self.raw_lrs.copy_(state["raw_lrs"])
            if self.labels is not None:
                self.labels.copy_(state["labels"])
        initial = state.get("initial_images")  # absent from checkpoints written before session 29
        self.initial = None if initial is None else initial.to(device=self.device, dtype=self.images.dtype)
        self.optimizer.load_state_dict(state["optimizer"])  # moves the moments to the leaves' device
        self.iteration = int(state["iteration"])
        self.seconds = float(state.get("seconds") or 0.0)
        self._perm = None

    def save_checkpoint(self, path: str | Path, metrics: MetricsLog | None = None) -> None:
        """Write all state (safetensors, no pickle); with ``metrics``, flush it and record its offset."""
        state = self.state_dict()
        state["metrics_offset"] = metrics.flush() if metrics is not None else None
        save_state(path, state)

    def load_checkpoint(self, path: str | Path) -> int | None:
        """Restore a checkpoint; returns the metrics offset to resume the log at (or None)."""
        state = load_state(path)  # on the CPU: the optimiser moves its moments, its step counts stay there
        self.load_state_dict(state)
        return state.get("metrics_offset")
