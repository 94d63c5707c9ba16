"""A model architecture + head as pure functions of stacked parameters.

Everything that trains models (the evaluation engine, the baselines, the distillation
loop's persistent model) goes through :class:`Learner`: it turns a module factory into
per-model functions ``logits(params, head, x)`` and ``train_loss(params, head, x, y)``
that ``torch.func.vmap`` maps over K stacked models, so K models train in one batched
forward and backward pass.

Batch norm: every ``nn.BatchNorm*d`` becomes a :class:`~labeldistill.models.norm.BatchStatNorm`
(same parameters, no buffers). Training and every other use normalise with the statistics
of the current batch; evaluation (:meth:`Learner.eval_logits`, used by ``predict`` and
``accuracy``) normalises with the statistics of the model's training images
(``ModelState.reference``), so scores do not depend on how test examples are batched.

Two heads:
- ``linear``: the module's own ``head`` (standard model).
- ``ridge``: the module's ``features`` followed by the ridge-regression head (global
  weights W from the pseudo-gradient, calibration scale s); the linear head is unused.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from ..errors import check_choice
from ..models import check_surface, pseudo_gradient_step, ridge_logits, ridge_solve, with_bias
from ..models.norm import convert_batch_norm_, norm_layers
from ..seeding import isolated_torch_seed

HEADS = ("linear", "ridge")
Params = dict[str, torch.Tensor]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i sum_c -y_ic log softmax(z_i)_c`` for soft (probability) targets."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


@dataclass(frozen=True)
class HeadConfig:
    """Settings of the ridge-regression head (ignored by the linear head). Paper values."""

    ridge_lambda: float = 1.0  # lambda, the RR regulariser
    ridge_step: float = 0.01  # alpha, the pseudo-gradient step size
    scale_lr: float = 0.01  # Adam learning rate of the calibration scale s


@dataclass
class ModelState:
    """K models stacked along dim 0 (K may be 1)."""

    params: Params  # leaves with requires_grad, each K x ...
    buffers: Params
    head: Params  # ridge: {"w": K x (F+1) x C, "s": K}; linear: {}
    # The N x C x H x W images all K models were trained on (set by train_models): models with
    # batch norm are evaluated with these images' statistics. Shared by the K models, not copied;
    # K x N x C x H x W where each model was trained on its own images (``reference_per_model``).
    reference: torch.Tensor | None = None
    reference_per_model: bool = False

    @property
    def k(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @torch.no_grad()
    def copy_(self, params: Params, buffers: Params, head: Params) -> None:
        """Overwrite these models' tensors in place with the given ones, name by name (an optimiser, or a captured
        graph, that holds these tensors keeps reading them)."""
        for mine, theirs in ((self.params, params), (self.buffers, buffers), (self.head, head)):
            for n, t in mine.items():
                t.copy_(theirs[n])

    def select(self, idx: torch.Tensor | slice) -> ModelState:
        """A detached copy of some of the models."""
        pick = lambda d: {n: t[idx].detach().clone() for n, t in d.items()}  # noqa: E731
        ref = self.reference
        if ref is not None and self.reference_per_model:  # one image set per model: the selected models' sets
            ref = ref[idx]
        return ModelState(pick(self.params), pick(self.buffers), pick(self.head), ref, self.reference_per_model)


def missing_reference() -> ValueError:
    return ValueError(
        "This model has batch norm: scoring it needs the images it was trained on (ModelState.reference, "
        "set by train_models). Set state.reference to those images."
    )


class Learner:
    """An architecture (a factory of fresh modules) with a head, as pure functions.

    Args:
        factory: returns a fresh ``nn.Module`` with ``features`` and ``head`` (default init).
        head: ``"linear"`` or ``"ridge"``.
        head_config: ridge settings.
    Example:
        >>> learner = Learner(lambda: build_model("lenet", 1, 28, 10), head="ridge")
        >>> state = learner.init([0, 1, 2])   # three models, seeds 0..2
    """

    def __init__(self, factory: Callable[[], nn.Module], head: str = "linear", head_config: HeadConfig | None = None) -> None:
        self.factory = factory
        self.head_kind = check_choice("head", head, HEADS)
        self.cfg = head_config or HeadConfig()
        template = factory()
        check_surface(template)
        # Batch norm must not update running statistics inside vmap: batch statistics when
        # training, the training set's statistics when evaluating (models/norm.py).
        convert_batch_norm_(template)
        self.template = template
        self._norms = list(norm_layers(template).values())
        self.num_features = template.head.in_features
        self.num_classes = template.head.out_features
        self._body = template if self.head_kind == "linear" else template.features

    def signature(self) -> tuple:
        """Equal for learners that make the same models from the same seeds (head, ridge settings, module class and
        parameter shapes): the models of such learners can train in one engine call (stacks, ``evaluate_together``)."""
        shapes = tuple((n, tuple(p.shape)) for n, p in self.template.named_parameters())
        return (self.head_kind, self.cfg, type(self.template), shapes)

    @property
    def is_ridge(self) -> bool:
        return self.head_kind == "ridge"

    @property
    def has_batch_norm(self) -> bool:
        """Whether the model normalises by batch: evaluation then needs ``ModelState.reference``."""
        return bool(self._norms)

    # -- initialisation -------------------------------------------------------------
    def fresh_module(self, seed: int) -> nn.Module:
        with isolated_torch_seed(seed):
            m = self.factory()
        convert_batch_norm_(m)
        return m if self.head_kind == "linear" else m.features

    def init(self, seeds: Sequence[int], device: str | torch.device = "cpu") -> ModelState:
        """K fresh models, model k initialised under ``seeds[k]`` (default PyTorch init)."""
        mods = [self.fresh_module(int(s)).to(device) for s in seeds]
        params, buffers = stack_module_state(mods)
        head: Params = {}
        if self.is_ridge:
            k = len(mods)
            # The head follows the model's floating dtype (a float64 model gets a float64 W and s).
            dtype = next((t.dtype for t in params.values() if t.is_floating_point()), torch.get_default_dtype())
            head = {
                "w": torch.zeros(k, self.num_features + 1, self.num_classes, device=device, dtype=dtype),
                "s": torch.ones(k, device=device, dtype=dtype, requires_grad=True),
            }
        return ModelState(params, buffers, head)

    def reset_(self, state: ModelState, seed: int) -> None:
        """Re-initialise model 0 of ``state`` in place (the loop's reset on over-fitting)."""
        fresh = self.init([seed], device=next(iter(state.params.values())).device)
        with torch.no_grad():
            for d, f in ((state.params, fresh.params), (state.buffers, fresh.buffers), (state.head, fresh.head)):
                for n, t in d.items():
                    t.copy_(f[n])

    # -- per-model pure functions (vmap maps them over K) ------------------------------
    def body(self, params: Params, buffers: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._body, (params, buffers), (x,))

    def logits(self, params: Params, buffers: Params, head: Params, x: torch.Tensor) -> torch.Tensor:
        out = self.body(params, buffers, x)
        return ridge_logits(out, head["w"], head["s"]) if self.is_ridge else out

    @contextmanager
    def evaluating(self, reference_rows: int) -> Iterator[None]:
        """Within the block, the model's batch-norm layers take the statistics of the first
        ``reference_rows`` rows of their input (0: of the whole batch, the default)."""
        before = [m.reference_rows for m in self._norms]
        try:
            for m in self._norms:
                m.reference_rows = int(reference_rows)
            yield
        finally:
            for m, r in zip(self._norms, before):
                m.reference_rows = r

    def eval_logits(self, params: Params, buffers: Params, head: Params, reference: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """Logits for scoring: each row of ``x`` independent of the other rows.

        With batch norm, ``[reference ; x]`` goes through the model with the reference's
        statistics and only the rows of ``x`` are returned; without, this is ``logits``.
        """
        if not self.has_batch_norm:
            return self.logits(params, buffers, head, x)
        if reference is None:
            raise missing_reference()
        r = reference.shape[0]
        with self.evaluating(r):
            return self.logits(params, buffers, head, torch.cat([reference.to(x.device, x.dtype), x]))[r:]

    def population_stats(self, params: Params, buffers: Params, reference: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Mean and biased variance of each batch-norm layer's input over ``reference`` (one
        model), as evaluation uses them; keyed by the layer's name in the body."""
        stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        hooks = [
            m.register_forward_pre_hook(lambda mod, args, name=name: stats.__setitem__(name, mod.reference_stats(args[0])))
            for name, m in norm_layers(self._body).items()
        ]
        try:
            with torch.no_grad(), self.evaluating(reference.shape[0]):
                self.body(params, buffers, reference)
        finally:
            for h in hooks:
                h.remove()
        return stats

    def train_loss(self, params: Params, buffers: Params, head: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Params]:
        """Soft cross-entropy on a labelled minibatch, and the head's updated tensors.

        Ridge: W_l from the minibatch, W <- (1-a) W + a W_l, logits [f(x),1] @ (s W); the
        loss reaches the features through both the logits and W_l (DESIGN.md).
        """
        out = self.body(params, buffers, x)
        if not self.is_ridge:
            return soft_cross_entropy(out, y), {}
        z = with_bias(out)
        w = self.ridge_update(z, y, head["w"])
        loss = soft_cross_entropy(z @ (head["s"] * w), y)
        return loss, {"w": w.detach()}

    def ridge_update(self, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Global weights after one pseudo-gradient step towards the minibatch solution W_l(z, y)."""
        return pseudo_gradient_step(w, ridge_solve(z, y, self.cfg.ridge_lambda), self.cfg.ridge_step)

    def single(self, state: ModelState) -> tuple[Params, Params, Params]:
        """Views of model 0 of a stacked state (gradients flow back to the stacked leaves)."""
        pick = lambda d: {n: t[0] for n, t in d.items()}  # noqa: E731
        return pick(state.params), pick(state.buffers), pick(state.head)

    def optimizer(self, state: ModelState, lr: float, capturable: bool = False) -> torch.optim.Adam:
        """Adam over the stacked parameters (and the RR scale). ``capturable`` keeps its step
        counts on the device (CUDA only): no host reads, and CUDA-graph capture works."""
        groups: list[dict] = [{"params": list(state.params.values()), "lr": lr}]
        if self.is_ridge:
            groups.append({"params": [state.head["s"]], "lr": self.cfg.scale_lr})
        return torch.optim.Adam(groups, capturable=capturable)
