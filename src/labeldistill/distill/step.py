"""One step of the online loop as device work only, optionally replayed as a CUDA graph.

A step never reads a value back to the host: the reset decision is taken on the device
(:class:`DeviceResetMonitor`) and applied as a masked blend with a fresh model that is
initialised ahead of time, and the step's record (error, loss, reset, T_i, meta-gradient
variance, finiteness) comes back as one small tensor that the loop reads in chunks. On a
GPU the CPU can therefore queue steps ahead of the device, and the whole step (strategy,
both Adam updates, monitor, reset) can be captured once and replayed as one CUDA graph.
What is learned (labels, images or both; :mod:`.learned`) changes nothing here: the synthetic
set gives the inner minibatch and takes the meta-gradients back, on the device (learned
images are normalised with tensors built ahead of the step and clamped in place), so image
steps are captured in the graph as label steps are.
"""
from __future__ import annotations

import torch

from ..cuda_graphs import GraphedCall
from ..engine import DSAugmenter, Learner, ModelState
from ..problem import Problem
from .learned import SyntheticSet
from .reset import DeviceResetMonitor
from .strategies import StepOutput, Strategy
from .students import ProtocolStudents

RECORD_FIELDS = ("error", "loss", "reset", "T_i", "grad_var", "finite")


class MetaStep:
    """Callable ``step(rows, inner) -> record`` (a float64 tensor laid out as RECORD_FIELDS).

    Args:
        rows: indices of the target minibatch into the target's training split (on the device).
        inner: indices of the inner minibatch into the base set (on the device).
    The graph is used for full-size minibatches only; a smaller last minibatch of an epoch
    runs eagerly on the same state. A failed capture falls back to eager steps with a warning.
    """

    def __init__(self, *, strategy: Strategy, learner: Learner, model: ModelState, model_opt: torch.optim.Optimizer | None,
                 synthetic: SyntheticSet, monitor: DeviceResetMonitor, fresh: ModelState | None, problem: Problem,
                 full_batch: int, cuda_graph: bool = False, augment: DSAugmenter | None = None,
                 target_labels: torch.Tensor | None = None, students: ProtocolStudents | None = None) -> None:
        self.strategy, self.learner, self.model, self.model_opt = strategy, learner, model, model_opt
        self.synthetic, self.monitor, self.fresh, self.problem = synthetic, monitor, fresh, problem
        # What the target loss compares with: the target's class indices, or (--target-labels) one row per example.
        self.target_y = problem.target.train.y if target_labels is None else target_labels
        self.augment = augment  # the loop's augmenter (--augment), or None
        # Students trained the test's way (distill/students.py) instead of the Adam-stepped model: they see the images as
        # the test's models do (whitened, V augmented views for the strategy), follow each label step, are never reset.
        self.students = students
        # An augmented step chooses its transform on the host, so a captured graph would repeat one choice.
        self._init_dispatch(full_batch, cuda_graph and problem.base_x.device.type == "cuda" and augment is None and students is None)
        # (model tensor, fresh-model tensor) pairs: both are updated in place only, so listed once.
        pairs = [] if fresh is None else [(d[n], f[n]) for d, f in ((model.params, fresh.params), (model.buffers, fresh.buffers),
                                                                     (model.head, fresh.head)) for n in d]
        self._float_pairs = [(m, f) for m, f in pairs if m.is_floating_point()]
        self._other_pairs = [(m, f) for m, f in pairs if not m.is_floating_point()]
        self._opt_tensors: list[torch.Tensor] | None = None  # Adam's state exists after its first step

    def _init_dispatch(self, full_batch: int, use_graph: bool) -> None:
        """The state of :meth:`__call__`'s dispatch: eager, or graph replay (shared with the batched step)."""
        self.full_batch = full_batch  # the graph serves full target minibatches only
        self._graphed = GraphedCall(self._compute, enabled=use_graph, what="loop step")

    @property
    def graph_status(self) -> str:
        """:attr:`..cuda_graphs.GraphedCall.status` of this step."""
        return self._graphed.status

    @property
    def _graph(self) -> torch.cuda.CUDAGraph | None:
        """The captured step, once there is one."""
        return self._graphed.graph

    # -- the step itself ----------------------------------------------------------------
    def _compute(self, rows: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        p = self.problem
        xt, yt = p.target.train.x[rows], self.target_y[rows]
        xb, yb = self.synthetic.batch(inner)
        if self.augment is not None:  # the inner minibatch as a dc-dsa test model would see it; the target stays clean
            xb = self.augment.augment_one(0, xb)
        if self.students is not None:
            return self._students_step(inner, xb, yb, xt, yt)
        assert self.model_opt is not None
        self.model_opt.zero_grad(set_to_none=True)
        out = self.strategy.step(self.learner, self.model, xb, yb, xt, yt, self.synthetic.wrt)
        self.synthetic.step(inner, out)
        self.model_opt.step()
        # A float32 percentage: window sums of such values are exact in float64 (see DeviceResetMonitor).
        error = out.error.float() * 100.0
        reset, t_i = self.monitor.update(error)
        self._masked_reset(reset)
        return self._record(out, error, reset, t_i)

    def _students_step(self, inner: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        """The strategy's gradient at the students (their views of the inner minibatch, the target as they see it), the
        label step, then the students' own training on the new labels; never a reset."""
        st = self.students
        assert st is not None
        out = self.strategy.step(self.learner, self.model, st.views(xb, self.strategy.views), yb, st.whiten(xt), yt,
                                 self.synthetic.wrt)
        self.synthetic.step(inner, out)
        xb_new, yb_new = self.synthetic.batch(inner)
        st.follow(xb_new, yb_new)
        no = torch.zeros((), dtype=torch.bool, device=xb.device)
        return self._record(out, out.error.float() * 100.0, no, torch.zeros((), dtype=torch.long, device=xb.device))

    def _record(self, out: StepOutput, error: torch.Tensor, reset: torch.Tensor, t_i: torch.Tensor) -> torch.Tensor:
        """The step's record, laid out as RECORD_FIELDS."""
        finite = torch.isfinite(out.loss)
        for g in out.grads():
            finite = finite & torch.isfinite(g).all()
        monitored = self.synthetic.monitored_grad(out)
        grad_var = monitored.var() if monitored.numel() > 1 else monitored.new_zeros(())
        return torch.stack([t.to(torch.float64) for t in (error, out.loss, reset, t_i, grad_var, finite)])

    @torch.no_grad()
    def _masked_reset(self, reset: torch.Tensor) -> None:
        """Where ``reset``: model <- fresh model, optimiser moments and step counts <- 0 (= a new Adam)."""
        floats = self._float_pairs
        if floats:
            on, off = reset.to(floats[0][0].dtype), (~reset).to(floats[0][0].dtype)
            mine = [m for m, _ in floats]
            # m * 1 + f * 0 == m and m * 0 + f * 1 == f exactly: a select, as two fused list ops.
            torch._foreach_mul_(mine, off)
            torch._foreach_add_(mine, torch._foreach_mul([f for _, f in floats], on))
        for m, f in self._other_pairs:
            m.copy_(torch.where(reset, f, m))
        if self._opt_tensors is None:
            self._opt_tensors = [st[k] for st in self.model_opt.state.values() for k in ("exp_avg", "exp_avg_sq", "step")]
        keep = (~reset).to(torch.float32)
        for t in self._opt_tensors:
            t.mul_(keep if t.device == keep.device else keep.to(t.device))

    def refill(self, fresh: ModelState) -> None:
        """Copy a newly initialised model into the fresh-model tensors (in place: a graph keeps reading them)."""
        assert self.fresh is not None
        self.fresh.copy_(fresh.params, fresh.buffers, fresh.head)

    # -- dispatch ---------------------------------------------------------------------------
    def __call__(self, rows: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        if not self._graphed.enabled or rows.shape[-1] != self.full_batch:  # (rows: B, or K x B for a batched stack)
            return self._compute(rows, inner)
        out = self._graphed(rows, inner)
        assert isinstance(out, torch.Tensor)
        return out.clone() if self._graphed.graph is not None else out  # a replay's output is overwritten by the next
