"""Replay a device-only function as a CUDA graph: PyTorch's warm-up / capture / replay recipe, once.

The online loop's step (:mod:`labeldistill.distill.step`, also a stack's batched step) and DD's unrolled outer
iteration (:mod:`labeldistill.unrolled.trainer`) are thousands of small kernels each whose host cost (Python,
autograd, launches) bounds them on a GPU. Captured once, a step is one launch. A function qualifies when it reads
the host nothing back, keeps its shapes, and reads its changing inputs from the tensors it is called with (copied
into static ones before each replay) or from tensors updated in place (learned leaves, optimiser state).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

WARMUP_CALLS = 3  # eager calls on a side stream before capture (PyTorch's recipe: autograd's threads warm up too)

Outputs = torch.Tensor | tuple[torch.Tensor, ...]


class GraphedCall:
    """``call(*inputs)``: ``fn(*inputs)`` eagerly, or (``enabled``) as a CUDA graph after :data:`WARMUP_CALLS`
    warm-ups. The graph's outputs are its static tensors, overwritten by the next replay: copy what must outlive it.

    A failed capture falls back to eager calls with a warning: the graph is an optimisation, never a reason to lose
    a run. ``inputs`` must keep their shapes, dtypes and devices from call to call (callers route other shapes to
    ``fn`` themselves).
    """

    def __init__(self, fn: Callable[..., Outputs], *, enabled: bool, what: str = "step") -> None:
        self.fn, self.enabled, self.what = fn, bool(enabled), what
        self.graph: torch.cuda.CUDAGraph | None = None
        self._warmups = 0
        self._inputs: tuple[torch.Tensor, ...] = ()
        self._outputs: Outputs | None = None
        self.failure: str | None = None  # why a capture failed (then every call is eager)

    @property
    def status(self) -> str:
        """How calls run: ``"off"`` (eager by request, or not on a GPU), ``"warming up"``, ``"captured"`` (replays),
        or ``"failed: <reason>"`` (eager after a failed capture). Benchmarks report it: a graph that silently fell back
        to eager launches is the first suspect when a GPU step is slow."""
        if self.failure is not None:
            return f"failed: {self.failure}"
        if not self.enabled:
            return "off"
        return "captured" if self.graph is not None else "warming up"

    def __call__(self, *inputs: torch.Tensor) -> Outputs:
        if not self.enabled:
            return self.fn(*inputs)
        if self.graph is None:
            if self._warmups < WARMUP_CALLS:
                self._warmups += 1
                return _off_default_stream(self.fn, inputs)
            try:
                self._capture(inputs)
            except Exception as e:
                self.failure = f"{type(e).__name__}: {e}"
                warnings.warn(f"CUDA graph capture of the {self.what} failed ({self.failure}); "
                              "continuing without graphs.", stacklevel=2)
                self.enabled, self.graph = False, None
                torch.cuda.synchronize()
                return self.fn(*inputs)
        with torch.no_grad():  # a static input may be a leaf that requires grad (DD's fresh parameters)
            for static, x in zip(self._inputs, inputs):
                static.copy_(x)
        assert self.graph is not None and self._outputs is not None
        self.graph.replay()
        return self._outputs

    def _capture(self, inputs: Sequence[torch.Tensor]) -> None:
        static = tuple(x.detach().clone().requires_grad_(x.requires_grad) for x in inputs)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        # On a stack's stream, capture there too (not on PyTorch's capture stream, a pooled stream that can be
        # another run's), so that the graph's static tensors belong to this run's stream.
        with torch.cuda.graph(graph, stream=own_stream()):
            out = self.fn(*static)
        self.graph, self._inputs, self._outputs = graph, static, out


def _off_default_stream(fn: Callable[..., Outputs], inputs: Sequence[torch.Tensor]) -> Outputs:
    """A warm-up call off the default stream (PyTorch's rule before a capture)."""
    if own_stream() is not None:
        # A run of a stack (distill/stack.py) is on a stream of its own already: warm up there. A fresh side stream
        # would come from PyTorch's pool of 32, which the stack's streams share, so it can be another run's stream:
        # what this call allocates there (Adam's moments, its record) would then be freed into that run's pool while
        # this run's stream still reads it. On 2026-12-04 a stack of 8 on an H200 failed with an illegal memory
        # access (docs/benchmarks.md); this is the cross-stream reuse such a failure points to.
        return fn(*inputs)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = fn(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    return out


def own_stream() -> torch.cuda.Stream | None:
    """The current CUDA stream where it is not the default one (a stack gives each run its own), else None."""
    cur = torch.cuda.current_stream()
    return None if cur == torch.cuda.default_stream(cur.device) else cur
