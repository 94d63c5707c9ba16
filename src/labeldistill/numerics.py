"""What makes two runs numerically comparable: the numerics version and the float settings.

``NUMERICS_VERSION`` names the arithmetic of the package. **Rule:** any change that can move
a result of an existing configuration (a different reduction order, a layer computed another
way, a changed default, a changed random stream, a different evaluation) bumps it, in the same
commit, with a line in ``docs/design-notes.md`` ("Numerics versions"). Refactors that leave
every result bit for bit the same do not. Every run records it (with the package version, the
git commit and a dirty flag or a hash of the package's source files); ``reproduce`` reuses only
runs of the current version unless told otherwise, and marks such cells.

Versions:
    (none recorded)  everything before 2026-12-01 (sessions 1-4).
    1  order- and chunk-independent evaluation of batch-norm models (training-set statistics);
       same-dataset sources restricted to the target's training split; K-49 / CIFAR-100 reset
       window 100 for every N; TF32 off unless asked for.
    2  the ridge head's n x n solve in float64 (models/ridge.py): a float32 Gram of large features lost
       lambda, and its Cholesky failed (NaN on a GPU within 20 steps of CIFAR-100 LD RR, a wrong solve
       on a CPU). Moves every ridge run by rounding at least; second-order runs are unchanged.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

NUMERICS_VERSION = 2


def cpu_capability() -> str | None:
    """The instruction set PyTorch's CPU kernels dispatch to (``AVX2``, ``AVX512``, ...; None where torch cannot say)."""
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return None if get is None else str(get())


def float_settings() -> dict:
    """What changes float32 arithmetic: the GPU backend switches, and the instruction set of the CPU kernels (two
    CPUs reporting one model name differed in it, and their runs in the last bits; recorded with every run)."""
    return {
        "cpu_capability": cpu_capability(),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


@contextlib.contextmanager
def float32_precision(allow_tf32: bool) -> Iterator[dict]:
    """Run a block with TF32 on or off for both cuDNN convolutions and CUDA matmuls.

    PyTorch's defaults differ between the two (matmuls off, convolutions on), so a run would
    otherwise mix TF32 convolutions (10-bit mantissa) with full float32 matmuls on a GPU and
    differ from the same run on a CPU by more than rounding. The block sees exactly the
    requested setting; the previous one is restored afterwards. Yields :func:`float_settings`.
    """
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = bool(allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = bool(allow_tf32)
    try:
        yield float_settings()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
