"""One loop step of K runs at once: the runs of a stack as one batched step (``distill_many(..., batched=True)``).

The lockstep driver (:mod:`.stack`) gives each run its own CUDA stream and graph; on an H200 eight LeNet runs then
took 3.8 times one run's loop, because the card ran their small kernels mostly one after another
(docs/design-notes.md, "What bounds a stack on a GPU"). Here every layer of the step is one kernel for all K runs:
the runs' persistent models, labels, optimiser states, fresh models and reset monitors are stacked along a leading
K dimension, their minibatches gathered K at a time, and the step runs the strategy's arithmetic over the stack
(``torch.func.vmap`` over the models; the K runs are independent, so the gradient of their summed losses is each
run's own gradient).

Each run keeps everything else (:class:`~.loop.Distiller`: its generators draw its minibatches, its host monitor
checks its records, its snapshots, validations, checkpoints and run directory): its learned tensors and optimiser
states become *views* into the stacked storage, so a checkpoint reads the current values in the single-run format,
and a run of a batched stack resumes alone or in lockstep. Which runs can be batched: :func:`batchable` (labels
learned as probabilities, the paper's target scale, no augmentation, the same settings but the seed, every run at
the same step). Numbers: the same arithmetic as the run alone, in batched kernels and with Adam written over per-run
step counts, so a batched run equals the run alone up to float rounding (tests/test_batched.py), not bit for bit.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.func import jvp, vmap

from ..engine import soft_cross_entropy
from ..models import with_bias
from .labels import Labels, normalise_
from .reset import DeviceResetMonitor
from .step import MetaStep

# Settings a batched stack shares beyond the stack key (they enter the step's arithmetic).
BATCH_FIELDS = ("label_lr", "model_lr", "inner_lr", "ridge_lambda", "ridge_step", "scale_lr", "reset_window", "label_param",
                "target_scale", "augment", "learn", "meta_gradient", "method", "arch")
BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as every optimiser of the loop


def batchable(distillers: Sequence) -> str | None:
    """None when these runs can take their steps as one batched step, else why not (one line)."""
    d0 = distillers[0]
    c0 = d0.cfg
    if c0.learn != "labels" or c0.label_param != "probabilities":
        return "a batched stack learns labels as probabilities only"
    if c0.augment != "none" or c0.target_scale != "shared":
        return "a batched stack takes no --augment and the paper's target scale"
    if c0.target_labels != "true":
        return "a batched stack compares with the target's true classes (no --target-labels teacher)"
    if c0.method not in ("ridge", "second-order") or (c0.method == "second-order" and d0.strategy.meta_gradient != "jvp"):
        return "a batched stack runs LD RR or LD (second order, JVP meta-gradient)"
    for d in distillers[1:]:
        differ = [f for f in BATCH_FIELDS if getattr(d.cfg, f) != getattr(c0, f)]
        if differ:
            return f"the runs of a batched stack must share {', '.join(differ)}"
        if d.step != d0.step or d.n_train != d0.n_train:
            return "the runs of a batched stack must be at the same step of the same data"
    return None


class BatchedStep(MetaStep):
    """Callable ``step(rows, inner) -> records``: rows K x B target rows, inner K x n inner rows; records K x 6 (as
    :data:`.step.RECORD_FIELDS`). Replayed as one CUDA graph on a GPU (:class:`.step.MetaStep`'s dispatch)."""

    def __init__(self, distillers: Sequence, *, cuda_graph: bool = False) -> None:
        why = batchable(distillers)
        if why is not None:
            raise ValueError(why)
        d0 = distillers[0]
        self.runs = list(distillers)
        self.k = k = len(distillers)
        self.learner, self.strategy, self.cfg = d0.learner, d0.strategy, d0.cfg
        dev = d0.device
        self.device = dev
        self._init_dispatch(d0.cfg.target_batch, cuda_graph and dev.type == "cuda")  # MetaStep.__call__: eager / graph
        # The target's training split: one tensor when every run has the same (a fixed split), else one per run (the
        # split drawn from the run's seed: K copies on the device).
        trains = [d.problem.target.train for d in distillers]
        self.shared_train = all(t.same_as(trains[0]) for t in trains)
        if self.shared_train:
            self.train_x, self.train_y = trains[0].x, trains[0].y
        else:
            self.train_x, self.train_y = torch.stack([t.x for t in trains]), torch.stack([t.y for t in trains])
        self.base_x = torch.stack([d.problem.base_x for d in distillers])  # each run its own base images
        self._ar = torch.arange(k, device=dev)[:, None]
        with torch.no_grad():
            self._stack_labels()
            self._stack_models()
        self.monitor = DeviceResetMonitor(d0.cfg.reset_window, dev, shape=(k,))
        for i, d in enumerate(distillers):
            self.monitor.load(d.monitor, index=i)
            d._stepper = _RunSlot(self, i)  # a reset's refill goes into the run's slot of the stacked fresh models
            d.batched_stack = max(d.batched_stack, k)

    # -- the stacked state, and each run's tensors as views into it --------------------------
    def _stack_labels(self) -> None:
        labs: list[Labels] = [d.synthetic.labels for d in self.runs]
        self.labels = torch.stack([lab.value.detach() for lab in labs])
        self.label_m, self.label_v, self.label_step = _adam_state([lab.opt for lab in labs], [lab.value for lab in labs], self.labels)
        for i, lab in enumerate(labs):
            leaf = lab.opt.param_groups[0]["params"][0]
            lab.value = self.labels[i]
            lab.opt.state[leaf] = {"step": self.label_step[i], "exp_avg": self.label_m[i], "exp_avg_sq": self.label_v[i]}

    def _stack_models(self) -> None:
        runs = self.runs
        cat = lambda part, src: {n: torch.cat([getattr(src(d), part)[n].detach() for d in runs]) for n in getattr(src(runs[0]), part)}  # noqa: E731
        self.params = {n: t.requires_grad_() for n, t in cat("params", lambda d: d.model).items()}
        self.buffers = cat("buffers", lambda d: d.model)
        self.head = cat("head", lambda d: d.model)
        if "s" in self.head:
            self.head["s"].requires_grad_()
        fresh = lambda d: d._stepper.fresh  # noqa: E731  (the run's MetaStep holds its next reset's model)
        self.fresh = {part: cat(part, fresh) for part in ("params", "buffers", "head")}
        # the model's Adam: per parameter (and the RR scale), moments K x ..., a step count per run
        self.model_leaves = [self._model_leaves(d) for d in runs]
        self.opt_state: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        names = [("params", n) for n in self.params] + ([("head", "s")] if "s" in self.head else [])
        for part, n in names:
            stacked = self.params[n] if part == "params" else self.head["s"]
            self.opt_state[n] = _adam_state([d.model_opt for d in runs], [leaves[n] for leaves in self.model_leaves], stacked)
        for i, d in enumerate(runs):
            for _, n in names:
                m, v, st = self.opt_state[n]
                d.model_opt.state[self.model_leaves[i][n]] = {"step": st[i], "exp_avg": m[i : i + 1], "exp_avg_sq": v[i : i + 1]}
            # views of detached aliases (the same storage, outside autograd): the run reads the current values
            d.model.params.update({n: self.params[n].detach()[i : i + 1] for n in self.params})
            d.model.buffers.update({n: self.buffers[n][i : i + 1] for n in self.buffers})
            d.model.head.update({n: self.head[n].detach()[i : i + 1] for n in self.head})

    @staticmethod
    def _model_leaves(d) -> dict[str, torch.Tensor]:
        """The run's optimiser's own parameter tensors by name (its state is keyed by them)."""
        groups = d.model_opt.param_groups
        out = dict(zip(d.model.params, groups[0]["params"]))
        if len(groups) > 1:
            out["s"] = groups[1]["params"][0]
        return out

    def release(self) -> None:
        """Give every run its own tensors back (the current values, copied out of the stack), and its own step object:
        each is a plain single run again (the stack goes on without a run that failed, or ends)."""
        for d in self.runs:  # the host monitor catches up with the device's (a new step object starts from it)
            try:
                d._flush()
            except Exception:  # noqa: BLE001  (a run that failed has its error already; the others go on)
                pass
        with torch.no_grad():
            for i, d in enumerate(self.runs):
                lab = d.synthetic.labels
                leaf = lab.opt.param_groups[0]["params"][0]
                leaf.copy_(self.labels[i])
                lab.value = leaf
                lab.opt.state[leaf] = {"step": self.label_step[i].clone(), "exp_avg": self.label_m[i].clone(),
                                       "exp_avg_sq": self.label_v[i].clone()}
                leaves = self.model_leaves[i]
                for n in self.params:
                    leaves[n].copy_(self.params[n][i : i + 1])
                    d.model.params[n] = leaves[n]
                for n in self.buffers:
                    d.model.buffers[n] = self.buffers[n][i : i + 1].clone()
                for n in self.head:
                    if n in leaves:  # the RR scale, an optimiser's parameter
                        leaves[n].copy_(self.head[n][i : i + 1])
                        d.model.head[n] = leaves[n]
                    else:
                        d.model.head[n] = self.head[n][i : i + 1].clone()
                for n, (m, v, st) in self.opt_state.items():
                    d.model_opt.state[leaves[n]] = {"step": st[i].clone(), "exp_avg": m[i : i + 1].clone(),
                                                   "exp_avg_sq": v[i : i + 1].clone()}
                d._stepper = d._build_stepper()

    def refill(self, index: int, fresh) -> None:
        with torch.no_grad():
            for part in ("params", "buffers", "head"):
                for n, t in getattr(fresh, part).items():
                    self.fresh[part][n][index : index + 1].copy_(t)

    # -- the step -----------------------------------------------------------------------------
    def _compute(self, rows: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        ar = self._ar
        if self.shared_train:
            xt, yt = self.train_x[rows], self.train_y[rows]  # K x B x ...
        else:
            xt, yt = self.train_x[ar, rows], self.train_y[ar, rows]
        xb = self.base_x[ar, inner]  # K x n x ...
        y = self.labels[ar, inner]
        if self.cfg.method == "ridge":
            label_grad, grads, error, loss = self._ridge(xb, y, xt, yt)
        else:
            label_grad, grads, error, loss = self._second_order(xb, y, xt, yt)
        # the labels: Adam on the whole set (zero gradient outside the inner rows, as Labels.step), then normalised
        full = torch.zeros_like(self.labels).index_put_((ar.expand_as(inner), inner), label_grad, accumulate=True)
        _adam_(self.labels, full, self.label_m, self.label_v, self.label_step, self.cfg.label_lr)
        normalise_(self.labels)
        # the persistent models
        with torch.no_grad():
            for n, g in grads.items():
                p = self.params[n] if n in self.params else self.head[n]
                m, v, st = self.opt_state[n]
                _adam_(p, g, m, v, st, self.cfg.scale_lr if n == "s" else self.cfg.model_lr)
        error_pct = error.float() * 100.0
        reset, t_i = self.monitor.update(error_pct)
        self._masked_reset(reset)
        finite = torch.isfinite(loss) & torch.isfinite(label_grad).flatten(1).all(1)
        grad_var = label_grad.flatten(1).var(1) if label_grad[0].numel() > 1 else torch.zeros_like(loss)
        return torch.stack([t.to(torch.float64) for t in (error_pct, loss, reset, t_i, grad_var, finite)], dim=1)

    def _ridge(self, xb, y, xt, yt):
        lr, body = self.learner, vmap(self.learner.body)
        s = self.head["s"]
        y = y.detach().requires_grad_()
        zb = with_bias(body(self.params, self.buffers, xb))
        w = lr.ridge_update(zb, y, self.head["w"])
        with torch.no_grad():
            zt = with_bias(body({n: p.detach() for n, p in self.params.items()}, self.buffers, xt))
        out = zt @ (s.detach()[:, None, None] * w)
        losses = F.cross_entropy(out.flatten(0, 1), yt.flatten(), reduction="none").view(self.k, -1).mean(1)
        (label_grad,) = torch.autograd.grad(losses.sum(), [y], retain_graph=True)
        base = vmap(soft_cross_entropy)(zb @ (s[:, None, None] * w), y.detach())
        names = list(self.params)
        got = torch.autograd.grad(base.sum(), [*self.params.values(), s])
        with torch.no_grad():
            self.head["w"].copy_(w.detach())
        grads = dict(zip([*names, "s"], got))
        return label_grad, grads, (out.argmax(-1) != yt).float().mean(1), losses.detach()

    def _second_order(self, xb, y, xt, yt):
        lr, alpha = self.learner, self.strategy.inner_lr
        logits = vmap(lambda p, b, x: lr.logits(p, b, {}, x))
        names = list(self.params)
        inner = vmap(soft_cross_entropy)(logits(self.params, self.buffers, xb), y)
        g = torch.autograd.grad(inner.sum(), list(self.params.values()))
        theta0 = {n: self.params[n].detach() for n in names}
        theta1 = {n: (theta0[n] - alpha * gi).requires_grad_() for n, gi in zip(names, g)}
        out = logits(theta1, self.buffers, xt)
        losses = F.cross_entropy(out.flatten(0, 1), yt.flatten(), reduction="none").view(self.k, -1).mean(1)
        v = torch.autograd.grad(losses.sum(), list(theta1.values()))
        _, tangent = jvp(lambda p: F.log_softmax(logits(p, self.buffers, xb), dim=-1), (theta0,), (dict(zip(names, v)),))
        label_grad = tangent * (alpha / xb.shape[1])
        return label_grad, dict(zip(names, g)), (out.argmax(-1) != yt).float().mean(1), losses.detach()

    @torch.no_grad()
    def _masked_reset(self, reset: torch.Tensor) -> None:
        """Where run k resets: its model <- its fresh model, its Adam moments and step count <- 0 (a new Adam)."""
        keep = ~reset
        for part in ("params", "buffers", "head"):
            for n, t in getattr(self, part).items():
                t.copy_(torch.where(_bcast(reset, t), self.fresh[part][n], t))
        for m, v, st in self.opt_state.values():
            m.mul_(_bcast(keep, m, m.dtype))
            v.mul_(_bcast(keep, v, v.dtype))
            st.mul_(keep)


class _RunSlot:
    """A run's stand-in for its step object in a batched stack: only a reset's refill reaches it."""

    def __init__(self, batched: BatchedStep, index: int) -> None:
        self.batched, self.index = batched, index

    def refill(self, fresh) -> None:
        self.batched.refill(self.index, fresh)

    def __call__(self, rows, inner):  # pragma: no cover  (the driver steps the batch)
        raise RuntimeError("a run of a batched stack takes its steps through the stack")


def _bcast(mask: torch.Tensor, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A K-vector as K x 1 x ... against ``like`` (K x ...), as ``dtype`` (default: bool)."""
    return mask.view(-1, *([1] * (like.dim() - 1))).to(dtype or torch.bool)


def _adam_state(opts, leaves, stacked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stacked Adam moments (like ``stacked``) and per-run step counts (K) from the runs' optimisers (zeros where a
    run's optimiser has not stepped yet)."""
    k = len(opts)
    m, v = torch.zeros_like(stacked), torch.zeros_like(stacked)
    steps = torch.zeros(k, dtype=torch.float32, device=stacked.device)
    for i, (opt, leaf) in enumerate(zip(opts, leaves)):
        st = opt.state.get(leaf)
        if st:  # run i's slot: row i of the stack
            m[i : i + 1].copy_(st["exp_avg"].reshape(m[i : i + 1].shape))
            v[i : i + 1].copy_(st["exp_avg_sq"].reshape(v[i : i + 1].shape))
            steps[i] = float(st["step"])
    return m, v, steps


def _adam_(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: torch.Tensor, lr: float) -> None:
    """torch.optim.Adam's update (defaults: betas 0.9 / 0.999, eps 1e-8, no weight decay) of one tensor stacked over K
    runs, each row with its own step count (as each parameter of torch's Adam has; a run's reset restarts its Adam)."""
    with torch.no_grad():
        b1, b2 = BETAS
        step.add_(1)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        bc1 = _bcast(1 - b1 ** step, p, step.dtype)
        bc2 = _bcast(1 - b2 ** step, p, step.dtype)
        p.sub_(lr * m / bc1 / (v.sqrt() / bc2.sqrt() + EPS))
