"""The CUDA-graph dispatch's rules (labeldistill/cuda_graphs.py), on the CPU with the CUDA calls stood in for:
eager while disabled, warm-ups before a capture, a failed capture falls back to eager calls with a warning and never
tries again. (A real capture against eager results: the tests marked gpu in test_distill_step.py and
test_unrolled_resume.py.)"""
from __future__ import annotations

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
    assert len(calls) == WARMUP_CALLS + 2 and g.graph is None and not g.enabled


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
    assert [float(o) for o in outs] == [2.0 * i for i in range(WARMUP_CALLS)] and g.enabled
    with pytest.warns(UserWarning, match="CUDA graph capture of the test step failed"):
        out = g(torch.tensor([10.0]))
    assert float(out) == 20.0 and not g.enabled and g.graph is None
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
    assert g.graph is not None and _NoopGraph.replays == before + 1
    (static,) = g._inputs
    assert static.requires_grad and static.is_leaf and float(static.detach()) == 5.0
    out2 = g(torch.tensor([7.0], requires_grad=True))
    assert out2 is out and float(static.detach()) == 7.0 and _NoopGraph.replays == before + 2
    assert len(calls) == WARMUP_CALLS + 1  # the function ran at the capture only; replays are the graph's
