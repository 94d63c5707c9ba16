"""The CUDA-graph dispatch (labeldistill/cuda_graphs.py) on the CPU, with the CUDA calls stood in for: eager while
disabled, warm-ups before a capture, a failed capture falls back to eager calls with one warning, replays copy new
inputs into the static ones; and the two users of the graph path, DD's outer iteration and the loop's step, run
through it with a stand-in graph that has a graph's effects (a replay recomputes into the captured outputs), equal to
their eager runs bit for bit: what a capture needs of the wiring (static inputs, outputs overwritten by the next
replay, state read and updated in place) is checked here; the tests marked gpu compare real captures with eager
runs (test_distill_step.py, test_unrolled_resume.py)."""
from __future__ import annotations

import sys

import pytest
import torch

from labeldistill import cuda_graphs
from labeldistill.cuda_graphs import WARMUP_CALLS, GraphedCall


def _counting_fn():
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.clone())
        return x * 2

    return fn, calls


def test_disabled_calls_the_function_itself():
    fn, calls = _counting_fn()
    g = GraphedCall(fn, enabled=False)
    for i in range(WARMUP_CALLS + 2):
        assert torch.equal(g(torch.tensor([float(i)])), torch.tensor([2.0 * i]))
    assert len(calls) == WARMUP_CALLS + 2 and g.graph is None and not g.enabled and g.status == "off"


class _FailingGraph:
    def __init__(self) -> None:
        raise RuntimeError("capture not supported here")


def test_failed_capture_falls_back_to_eager_with_a_warning(monkeypatch):
    monkeypatch.setattr(cuda_graphs, "own_stream", lambda: object())  # warm up "on the stack's stream": a plain call
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FailingGraph)
    fn, calls = _counting_fn()
    g = GraphedCall(fn, enabled=True, what="test step")
    outs = [g(torch.tensor([float(i)])) for i in range(WARMUP_CALLS)]  # warm-ups: eager, no capture yet
    assert [float(o) for o in outs] == [2.0 * i for i in range(WARMUP_CALLS)] and g.enabled and g.status == "warming up"
    with pytest.warns(UserWarning, match="CUDA graph capture of the test step failed"):
        out = g(torch.tensor([10.0]))
    assert float(out) == 20.0 and not g.enabled and g.graph is None
    assert g.status == "failed: RuntimeError: capture not supported here"  # what benchmarks report
    out = g(torch.tensor([11.0]))  # from now on eager, no second attempt (no warning)
    assert float(out) == 22.0
    assert [float(c) for c in calls] == [0.0, 1.0, 2.0, 10.0, 11.0]  # every call ran the function once


class _NoopGraph:
    """Stands in for a captured graph: its replay does nothing (the test checks what happens around it)."""

    replays = 0

    def replay(self) -> None:
        _NoopGraph.replays += 1


class _NoCapture:
    def __init__(self, graph, stream=None) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def test_replays_copy_new_inputs_into_the_static_ones_even_leaves_that_require_grad(monkeypatch):
    """After the warm-ups and the capture, each call copies its inputs into the graph's static tensors (which keep
    requires_grad: DD's fresh parameters are leaves the unroll differentiates through) and replays; the outputs are
    the static ones of the capture."""
    monkeypatch.setattr(cuda_graphs, "own_stream", lambda: object())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _NoopGraph)
    monkeypatch.setattr(torch.cuda, "graph", _NoCapture)
    fn, calls = _counting_fn()
    g = GraphedCall(fn, enabled=True)
    for i in range(WARMUP_CALLS):
        g(torch.tensor([float(i)], requires_grad=True))
    before = _NoopGraph.replays
    out = g(torch.tensor([5.0], requires_grad=True))  # captured (our stand-in runs fn on the static inputs), replayed
    assert g.graph is not None and _NoopGraph.replays == before + 1 and g.status == "captured"
    (static,) = g._inputs
    assert static.requires_grad and static.is_leaf and float(static.detach()) == 5.0
    out2 = g(torch.tensor([7.0], requires_grad=True))
    assert out2 is out and float(static.detach()) == 7.0 and _NoopGraph.replays == before + 2
    assert len(calls) == WARMUP_CALLS + 1  # the function ran at the capture only; replays are the graph's


class _ReplayingGraph:
    """Stands in for a captured graph with a graph's effects: a replay computes the captured function again from the
    static inputs (and whatever tensors it reads, as they are now) into the same output tensors. Our stand-in capture
    (_NoCapture) runs the function once, where a real capture only records it, so the replay that follows the capture
    in the same call is skipped: every call does the step once, as on a GPU."""

    def __init__(self) -> None:
        owner = sys._getframe(1).f_locals["self"]  # the GraphedCall whose _capture makes this graph
        assert isinstance(owner, GraphedCall)
        self.owner, self.captured_run_pending = owner, True

    def replay(self) -> None:
        if self.captured_run_pending:
            self.captured_run_pending = False
            return
        g = self.owner
        fresh = g.fn(*g._inputs)
        outs = g._outputs if isinstance(g._outputs, tuple) else (g._outputs,)
        fresh = fresh if isinstance(fresh, tuple) else (fresh,)
        with torch.no_grad():
            for o, f in zip(outs, fresh):
                o.copy_(f)


@pytest.mark.parametrize("method", ["dd", "sldd"])
def test_dd_outer_iterations_through_the_graph_path_equal_eager_ones(monkeypatch, method):
    """DD's trainer with its outer iterations dispatched through GraphedCall (warm-ups, capture, then replays that
    recompute into the captured outputs, as a graph does) gives the eager run's losses and learned tensors bit for
    bit on the CPU: the static inputs, the gradients handed to Adam from the graph's outputs and the eager short
    minibatches are wired as a real capture needs them."""
    from test_unrolled_resume import make, snapshot

    monkeypatch.setattr(cuda_graphs, "own_stream", lambda: object())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _ReplayingGraph)
    monkeypatch.setattr(torch.cuda, "graph", _NoCapture)

    eager = make(method)
    eager_losses = eager.run()
    graphed = make(method)
    graphed._graphed = GraphedCall(graphed._loss_and_grads, enabled=True)
    losses = graphed.run()
    assert graphed._graphed.graph is not None  # 8 full minibatches: 3 warm-ups, then capture and replays
    assert losses == eager_losses
    a, b = snapshot(eager), snapshot(graphed)
    for k in ("images", "raw_lrs", "labels"):
        assert (a[k] is None and b[k] is None) or torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("method", ["second-order", "ridge"])
def test_loop_steps_through_the_graph_path_equal_eager_ones(monkeypatch, method):
    """The online loop with its steps dispatched through GraphedCall (replays recomputing into the captured outputs, as
    a graph does: the record returned, the labels, models, Adam state and resets updated in place) gives the eager
    loop's labels and reset points bit for bit on the CPU (the loop's graph path on a GPU: test_distill_step.py)."""
    from labeldistill.distill import Distiller
    from labeldistill.distill.step import MetaStep
    from test_distill_loop import TinyNet, _config, blob_problem

    monkeypatch.setattr(cuda_graphs, "own_stream", lambda: object())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _ReplayingGraph)
    monkeypatch.setattr(torch.cuda, "graph", _NoCapture)
    results = []
    for graph in (False, True):
        if graph:
            real = MetaStep._init_dispatch
            monkeypatch.setattr(MetaStep, "_init_dispatch", lambda self, full_batch, use_graph: real(self, full_batch, True))
        cfg = _config(method, epochs=12, target_batch=16, reset_window=2, val_every=4)
        d = Distiller(cfg, blob_problem(), model_factory=TinyNet, progress=False)
        d.run()
        assert d._stepper is not None and (d._stepper._graph is not None) == graph, "the graph path was not taken"
        results.append((d.labels.value.detach().clone(), list(d.monitor.t_list)))
    (eager, t_eager), (graphed, t_graphed) = results
    assert t_eager == t_graphed and len(t_eager) >= 2
    assert torch.equal(graphed, eager)


@pytest.mark.parametrize("method", ["ridge", "second-order"])
def test_a_batched_stack_through_the_graph_path_equals_its_eager_steps(monkeypatch, mnist_small, method):
    """A batched stack (one step for all runs, distill/batched.py) dispatched through GraphedCall with the stand-in
    graph gives the labels, T and resets of its eager steps bit for bit: its stacked state is updated in place and its
    K records come back through the captured output."""
    from labeldistill.distill import distill_many
    from labeldistill.distill.batched import BatchedStep
    from labeldistill.distill.step import MetaStep
    from test_batched import _cfg

    monkeypatch.setattr(cuda_graphs, "own_stream", lambda: object())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _ReplayingGraph)
    monkeypatch.setattr(torch.cuda, "graph", _NoCapture)
    cfgs = [_cfg(mnist_small, method=method, seed=s, epochs=3) for s in (3, 4)]
    eager = distill_many(cfgs, progress=False, batched=True)
    captured = []
    real = MetaStep._init_dispatch

    def forced(self, full_batch, use_graph):
        batched = isinstance(self, BatchedStep)  # (each run's own step object takes no step while it is stacked)
        real(self, full_batch, use_graph or batched)
        if batched:
            captured.append(self)

    monkeypatch.setattr(MetaStep, "_init_dispatch", forced)
    graphed = distill_many(cfgs, progress=False, batched=True)
    assert captured and all(s._graph is not None for s in captured), "the graph path was not taken"
    for a, b in zip(eager, graphed):
        assert torch.equal(a.labels, b.labels)
        assert (a.steps, a.evaluation["resets"]) == (b.steps, b.evaluation["resets"])
    assert sum(a.evaluation["resets"] for a in eager) > 0
