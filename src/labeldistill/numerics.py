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
import os
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
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


# cuBLAS's setting for reproducible results (NVIDIA's cuBLAS docs, "Results reproducibility"; PyTorch's
# "Reproducibility" notes): read when a cuBLAS handle gets its workspace, so set before a process's first GPU matmul.
CUBLAS_DETERMINISTIC = ":4096:8"


@contextlib.contextmanager
def float32_precision(allow_tf32: bool, deterministic: bool = False) -> Iterator[dict]:
    """Run a block with TF32 on or off for both cuDNN convolutions and CUDA matmuls, and optionally in deterministic mode.

    PyTorch's defaults differ between the two (matmuls off, convolutions on), so a run would
    otherwise mix TF32 convolutions (10-bit mantissa) with full float32 matmuls on a GPU and
    differ from the same run on a CPU by more than rounding. The block sees exactly the
    requested setting; the previous one is restored afterwards. Yields :func:`float_settings`.

    ``deterministic``: cuDNN's deterministic algorithms, PyTorch's deterministic mode (an op without a deterministic
    kernel warns) and cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, set unless the environment sets it).
    A GPU run is then the same bit for bit when repeated, and a run of a stack the same as alone (measured on an
    H200, docs/benchmarks.md; by default two runs differ by about 2e-6 in their labels after one epoch, and a long
    loop grows that into another trajectory). A CPU computes deterministically either way.
    """
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.allow_tf32 = bool(allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = bool(allow_tf32)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield float_settings()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before[0], before[1]
        if deterministic:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]
            torch.use_deterministic_algorithms(before[4], warn_only=before[5])
