"""Train K fresh models at once on a small labelled set (the paper's way).

Adam (lr 1e-3), T steps, each on a random minibatch of N_i base examples drawn without
replacement, soft cross-entropy. All K models advance together, one step at a time, with
one backward pass and one optimiser step per step: on a GPU the K forward passes are one
batched pass (``torch.func.vmap``); on a CPU a lockstep loop is faster (see
:mod:`.batching`). Model k's initialisation and minibatches come only from ``seeds[k]``,
so training it alone gives the same model.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UserError
from ..seeding import derive_seed
from .batching import map_models, resolve_mode
from .learner import Learner, ModelState, missing_reference
from .recipe import TrainRecipe


def draw_batches(generator: torch.Generator, steps: int, n: int, batch: int) -> torch.Tensor:
    """``steps x batch`` indices into ``range(n)``: each row a random subset (no repeats)."""
    return torch.rand(steps, n, generator=generator, device=generator.device).argsort(dim=1)[:, :batch]


def batch_generator(seed: int, order: int | None = None) -> torch.Generator:
    """The minibatch stream of the model initialised with ``seed`` (``order``: another stream of it)."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, "minibatches") if order is None else derive_seed(seed, "minibatches", order))
    return g


def check_batch(n: int, batch: int) -> None:
    if batch < 1 or batch > n:
        raise UserError(f"Inner batch size {batch} must be between 1 and the number of base examples ({n}).")


def train_models(
    learner: Learner,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int | Sequence[int],
    seeds: Sequence[int],
    *,
    batch_size: int = 50,
    lr: float = 1e-3,
    observe_at: Sequence[int] = (),
    observer: Callable[[int, ModelState], None] | None = None,
    mode: str = "auto",
    recipe: TrainRecipe | None = None,
    images_per_model: bool = False,
    view_labels: Callable[[torch.Tensor], torch.Tensor] | None = None,
    checkpoint: Callable[[RecipeCheckpoint], None] | None = None,
    resume: RecipeCheckpoint | None = None,
) -> ModelState:
    """Train ``len(seeds)`` fresh models at once and return them.

    Args:
        learner: architecture + head.
        images: N x C x H x W base images (normalised, on the training device) shared by all models, or with
            ``images_per_model`` K x N x C x H x W, one set per model (e.g. the label snapshots of several runs, each
            on its own base images, validated at once).
        labels: N x C label distributions shared by all models, or K x N x C (one set per
            model, e.g. several label snapshots validated at once).
        steps: T for all models, or one T per model (a model stops at its own T).
        seeds: one seed per model; it fixes the model's initialisation and minibatches.
        batch_size: N_i, the minibatch size (at most N).
        lr: Adam learning rate.
        observe_at: steps after which ``observer(step, state)`` is called (e.g. to measure
            validation accuracy during the baselines' step search).
        mode: ``"vmap"``, ``"loop"`` or ``"auto"`` (see :mod:`.batching`); same result.
        recipe: another way to train (:class:`~.recipe.TrainRecipe`: SGD, epochs, an lr
            schedule, augmentation); None (the default) is the paper's way above, unchanged.
            With a recipe, ``steps`` is one T (ignored when the recipe counts epochs) and an
            observer that returns True stops training (early stopping).
        images_per_model: ``images`` holds one image set per model (dim 0).
        view_labels: with a recipe only: each minibatch's labels computed from its images as the models see them
            (K x b x C x H x W, after augmentation) -> K x b x C, instead of ``labels``: a teacher labelling every
            augmented view (the relabelling evaluation of SRe2L-style work; ``studies/per_view_teacher.py``).
    Example:
        >>> state = train_models(learner, x, y, steps=300, seeds=range(20))
    """
    if recipe is not None:
        return _train_recipe(learner, images, labels, steps, seeds, batch_size=batch_size, observe_at=observe_at,
                             observer=observer, mode=mode, recipe=recipe, images_per_model=images_per_model,
                             view_labels=view_labels, checkpoint=checkpoint, resume=resume)
    if view_labels is not None:
        raise ValueError("view_labels needs a recipe (the paper's path has no views: it trains on the images as they are)")
    if checkpoint is not None or resume is not None:
        raise ValueError("checkpoint and resume need a recipe (the paper's path trains a few hundred steps at once)")
    k = len(seeds)
    n = _examples(images, k, images_per_model)
    check_batch(n, batch_size)
    per_model_steps = [int(steps)] * k if isinstance(steps, int) else [int(t) for t in steps]
    if len(per_model_steps) != k:
        raise ValueError("one step count per model expected")
    if labels.dim() == 3 and labels.shape[0] != k:
        raise ValueError("per-model labels need one label set per model")
    total = max(per_model_steps, default=0)
    device = images.device
    state = learner.init(seeds, device=device)
    # evaluation of batch-norm models normalises with these (observer included)
    state.reference, state.reference_per_model = images.detach(), images_per_model
    opt = learner.optimizer(state, lr)
    idx = torch.stack([draw_batches(batch_generator(s), total, n, batch_size) for s in seeds]).to(device)  # K x T x b
    rows = torch.arange(k, device=device)[:, None]
    step_fn = map_models(learner.train_loss, (0, 0, 0, 0, 0), resolve_mode(mode, device))
    finished = {t: [i for i, ti in enumerate(per_model_steps) if ti == t] for t in set(per_model_steps)}
    result: ModelState | None = None if len(finished) <= 1 else state.select(slice(None))
    observe = set(observe_at)
    for t in range(total):
        b = idx[:, t]
        xb = images[rows, b] if images_per_model else images[b]
        yb = labels[b] if labels.dim() == 2 else labels[rows, b]
        _step(step_fn, opt, state, xb, yb)
        done = t + 1
        if result is not None and done in finished:
            _copy_models(result, state, finished[done])
        if observer is not None and done in observe:
            observer(done, state)
    if result is None:
        return _detached(state)
    return result  # models asked for zero steps kept their initialisation


def _examples(images: torch.Tensor, k: int, per_model: bool) -> int:
    """N, the number of examples each model trains on (shared N x ... images, or K x N x ... with ``per_model``)."""
    if per_model:
        if images.shape[0] != k:
            raise ValueError("per-model images need one image set per model")
        return int(images.shape[1])
    return int(images.shape[0])


def _step(step_fn: Callable, opt: torch.optim.Optimizer, state: ModelState, xb: torch.Tensor, yb: torch.Tensor) -> None:
    """One optimiser step of all K models on their minibatches ``xb``, ``yb`` (K x b examples each);
    a ridge head's closed-form weights (``aux["w"]``) replace the head's."""
    losses, aux = step_fn(state.params, state.buffers, state.head, xb, yb)
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    opt.step()
    if aux:
        state.head["w"] = aux["w"]


def _detached(state: ModelState) -> ModelState:
    """The trained models, cut from the autograd graph (buffers and reference as they are)."""
    return ModelState({n_: p.detach() for n_, p in state.params.items()}, state.buffers,
                      {n_: h.detach() for n_, h in state.head.items()}, state.reference, state.reference_per_model)


@dataclass
class RecipeCheckpoint:
    """A recipe training's state after ``step`` steps: the K models, the optimiser's state and the augmenter's streams.
    With the seeds and the recipe that is all a resumed training needs: the minibatch orders are replayed from the
    seeds (a few ``randperm`` calls), not stored. ``to_dict`` / ``from_dict`` give nested tensors for
    :func:`~labeldistill.runs.tensorstate.save_state` (safetensors and JSON, no pickle)."""

    step: int
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    augment: dict[str, list[torch.Tensor]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "params": self.params, "buffers": self.buffers, "head": self.head,
                "optimizer": self.optimizer, "augment": self.augment}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecipeCheckpoint:
        return cls(int(d["step"]), d["params"], d["buffers"], d["head"], d["optimizer"], d.get("augment"))


def epoch_orders(generators: Sequence[torch.Generator], n: int) -> torch.Tensor:
    """K x n: one fresh shuffle of ``range(n)`` per model (model k from its own generator)."""
    return torch.stack([torch.randperm(n, generator=g) for g in generators])


def _optimizer(learner: Learner, state: ModelState, recipe: TrainRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        opt = learner.optimizer(state, recipe.lr)
        for group in opt.param_groups[:1]:
            group["weight_decay"] = recipe.weight_decay
        return opt
    groups: list[dict] = [{"params": list(state.params.values()), "weight_decay": recipe.weight_decay}]
    if learner.is_ridge:  # the RR head's learned scale: the same SGD at the same lr (one lr for everything), never decayed
        groups.append({"params": [state.head["s"]], "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum)


def _train_recipe(
    learner: Learner, images: torch.Tensor, labels: torch.Tensor, steps: int | Sequence[int], seeds: Sequence[int], *,
    batch_size: int, observe_at: Sequence[int], observer: Callable[[int, ModelState], object] | None, mode: str, recipe: TrainRecipe,
    images_per_model: bool = False, view_labels: Callable[[torch.Tensor], torch.Tensor] | None = None,
    checkpoint: Callable[[RecipeCheckpoint], None] | None = None, resume: RecipeCheckpoint | None = None,
) -> ModelState:
    """``train_models`` with a recipe: K models, one optimiser step per minibatch, all in lockstep.

    Minibatches: ``recipe.epochs`` passes of a fresh per-model shuffle (all models see the same
    minibatch sizes, so they stack), or T random minibatches exactly as the paper's path draws
    them. Model k's shuffles come from its own seed (``batch_generator``), its augmentation from
    its own streams (:class:`~.augment.DSAugmenter`): training it alone gives the same model.
    """
    from .augment import DSAugmenter

    if not isinstance(steps, int):
        raise ValueError("a recipe trains every model for the same T")
    k = len(seeds)
    n = _examples(images, k, images_per_model)
    check_batch(n, batch_size)
    if labels.dim() == 3 and labels.shape[0] != k:
        raise ValueError("per-model labels need one label set per model")
    device = images.device
    state = learner.init(seeds, device=device)
    state.reference, state.reference_per_model = images.detach(), images_per_model
    opt = _optimizer(learner, state, recipe)
    gens = [batch_generator(s, recipe.order) for s in seeds]
    augment = DSAugmenter(recipe.augmentation, seeds, device) if recipe.augmentation is not None else None
    rows = torch.arange(k, device=device)[:, None]
    step_fn = map_models(learner.train_loss, (0, 0, 0, 0, 0), resolve_mode(mode, device))
    total = recipe.total_steps(n, batch_size, int(steps))
    per_epoch = recipe.steps_per_epoch(n, batch_size)
    random_idx = None if recipe.epochs is not None else torch.stack([draw_batches(g, total, n, batch_size) for g in gens]).to(device)
    observe = set(observe_at)
    order = None
    start = 0
    if resume is not None:
        order = _resume_recipe(resume, state, opt, augment, gens, n, recipe, per_epoch, device)
        start = resume.step
    for t in range(start, total):
        if recipe.epochs is not None:
            epoch, j = divmod(t, per_epoch)
            if j == 0:
                lr = recipe.lr_at(epoch)
                if epoch > 0 and lr != recipe.lr_at(epoch - 1) and recipe.reset_momentum_at_decay:
                    opt.state.clear()
                opt.param_groups[0]["lr"] = lr
                order = epoch_orders(gens, n).to(device)
            b = order[:, j * batch_size : (j + 1) * batch_size]  # type: ignore[index]
        else:
            b = random_idx[:, t]  # type: ignore[index]
        xb = images[rows, b] if images_per_model else images[b]
        if augment is not None:
            xb = augment(xb)
        if view_labels is not None:  # the views' own labels: the set's are not gathered
            yb = view_labels(xb)
        else:
            yb = labels[b] if labels.dim() == 2 else labels[rows, b]
        _step(step_fn, opt, state, xb, yb)
        if t + 1 in observe:
            if observer is not None and observer(t + 1, state) is True:
                break
            if checkpoint is not None:
                checkpoint(RecipeCheckpoint(t + 1, dict(state.params), dict(state.buffers), dict(state.head), opt.state_dict(),
                                            augment.state_dict() if augment is not None else None))
    return _detached(state)


def _resume_recipe(resume: RecipeCheckpoint, state: ModelState, opt: torch.optim.Optimizer, augment, gens: list[torch.Generator],
                   n: int, recipe: TrainRecipe, per_epoch: int, device: torch.device) -> torch.Tensor | None:
    """Put a fresh recipe training where ``resume`` left it: the models' tensors in place (the optimiser holds them), the
    optimiser's and augmenter's state (its lr included), and the minibatch streams advanced past the epochs already
    trained. Returns the current epoch's order where training stopped within an epoch (else None: the loop draws the
    next epoch's)."""
    if (augment is None) != (resume.augment is None):
        raise ValueError("the checkpoint was taken from a training " + ("without" if resume.augment is None else "with") + " augmentation")
    state.copy_(resume.params, resume.buffers, resume.head)
    opt.load_state_dict(resume.optimizer)
    if augment is not None:
        augment.load_state_dict(resume.augment)
    if recipe.epochs is None:  # random minibatches: all drawn up front from the fresh streams, as before
        return None
    epoch, j = divmod(resume.step, per_epoch)
    order = None
    for _ in range(epoch + (1 if j else 0)):
        order = epoch_orders(gens, n).to(device)
    return order if j else None


def _copy_models(dst: ModelState, src: ModelState, which: list[int]) -> None:
    ix = torch.tensor(which, device=next(iter(src.params.values())).device)
    with torch.no_grad():
        for d, s in ((dst.params, src.params), (dst.buffers, src.buffers), (dst.head, src.head)):
            for name, t in d.items():
                t[ix] = s[name][ix].detach()


# On a CPU each chunk streams through every layer; one whose largest activation stays in cache is scored
# up to 2x faster (ConvNet-3; benchmarks/bench_scoring_chunk.py, docs/benchmarks.md) and gives the same logits up to float32
# rounding (bit for bit on AMD EPYC; oneDNN may block a kernel by batch size on other CPUs): without batch norm every
# row's result ignores the other rows, and the chunk is set by the model, not the machine (tests/test_eval_order.py).
CPU_CHUNK_BYTES = 8 << 20
# The most rows scored in one pass on a CPU (and the loop's default chunk when the byte budget does not apply).
CPU_MAX_CHUNK = 2048


def cpu_chunk_rows(learner: Learner, x: torch.Tensor, budget: int = CPU_CHUNK_BYTES) -> int:
    """Rows per scoring chunk on a CPU: as many as keep the largest tensor of one forward pass under ``budget``
    bytes (every intermediate, seen by a :class:`~torch.overrides.TorchFunctionMode` on one probe row through the
    template; fused layers included), between 1 and ``CPU_MAX_CHUNK``."""
    from torch.overrides import TorchFunctionMode

    class _Largest(TorchFunctionMode):
        numel = int(x[:1].numel())

        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                self.numel = max(self.numel, out.numel())
            return out

    probe = _Largest()
    with torch.no_grad(), probe:
        learner.template(x[:1].to(next(learner.template.parameters()).device))
    return int(min(CPU_MAX_CHUNK, max(1, budget // (probe.numel * x.element_size()))))


def _scoring(learner: Learner, state: ModelState, x: torch.Tensor, chunk: int | None, mode: str) -> tuple[Callable[..., torch.Tensor], int]:
    """The per-chunk scoring function (K x b x C logits of a chunk of b rows) and the chunk size.

    Without batch norm: the models' logits on the chunk, in chunks of :func:`cpu_chunk_rows` rows on a
    CPU (``4096 // K`` under vmap). With batch norm: each chunk is scored after the training
    images (``state.reference``), whose statistics normalise it (``Learner.eval_logits``), so
    every row's logits are independent of the chunk size and of the order of ``x``; the
    default chunk is then at least the reference's size (at most twice the rows per pass).
    """
    k, mode = state.k, resolve_mode(mode, x.device)
    default = max(32, 4096 // k) if mode == "vmap" else CPU_MAX_CHUNK
    if not learner.has_batch_norm:
        if mode == "loop" and x.device.type == "cpu" and chunk is None:
            default = cpu_chunk_rows(learner, x)
        fn = map_models(learner.logits, (0, 0, 0, None), mode)
        return (lambda xc: fn(state.params, state.buffers, state.head, xc)), chunk or default
    ref = state.reference
    if ref is None:
        raise missing_reference()
    per_model = state.reference_per_model  # each model's own training images (train_models with K image sets)
    fn = map_models(learner.eval_logits, (0, 0, 0, 0 if per_model else None, None), mode)
    return (lambda xc: fn(state.params, state.buffers, state.head, ref, xc)), chunk or max(default, ref.shape[-x.dim()])


@torch.no_grad()
def predict(learner: Learner, state: ModelState, x: torch.Tensor, chunk: int | None = None, mode: str = "auto") -> torch.Tensor:
    """Logits of all K models on shared inputs: K x B x C, computed in chunks.

    Each row's logits depend only on that row (batch-norm models use the statistics of
    ``state.reference``, their training images), not on ``chunk`` or the order of ``x``.
    """
    score, chunk = _scoring(learner, state, x, chunk, mode)
    return torch.cat([score(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)], dim=1)


@torch.no_grad()
def accuracy(learner: Learner, state: ModelState, x: torch.Tensor, y: torch.Tensor, chunk: int | None = None, mode: str = "auto") -> torch.Tensor:
    """Fraction correct of each of the K models on (x, y): a K-vector (stays on the device).

    Independent of ``chunk`` and of the order of the examples (see :func:`predict`).
    """
    score, chunk = _scoring(learner, state, x, chunk, mode)
    correct = torch.zeros(state.k, device=x.device)
    for i in range(0, x.shape[0], chunk):
        correct += (score(x[i : i + chunk]).argmax(-1) == y[i : i + chunk]).sum(-1)
    return correct / max(1, x.shape[0])
