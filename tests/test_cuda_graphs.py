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
