"""The ridge-regression (RR) head of the paper (section 3, Algorithm 1).

Features get a constant 1 appended (the bias is the last row of W and is regularised
like the rest). The local solve uses the Woodbury form
``W_l = Z^T (Z Z^T + lambda I)^-1 Y`` (an n x n system for a minibatch of n examples)
with a Cholesky solve in float64, which is cheaper and more stable than an explicit inverse. The
global weights follow the pseudo-gradient ``W <- (1 - a) W + a W_l``; logits are
``[f(x), 1] @ (s W)`` with a learned calibration scale ``s``.
"""
from __future__ import annotations

import torch


def with_bias(z: torch.Tensor) -> torch.Tensor:
    """Append a column of ones: N x F -> N x (F + 1)."""
    return torch.cat([z, z.new_ones(*z.shape[:-1], 1)], dim=-1)


def ridge_solve(z: torch.Tensor, y: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Woodbury-form ridge solution ``Z^T (Z Z^T + lam I)^-1 Y`` (differentiable in Z and Y).

    Args:
        z: n x D design matrix (bias column already appended).
        y: n x C regression targets (the soft labels).
        lam: regularisation lambda (> 0, so the system is positive definite).
    Returns:
        D x C weights.
    """
    n = z.shape[-2]
    # The n x n system in float64 (numerics version 2). Unnormalised features grow while a model trains between
    # resets (AlexCifarNet on CIFAR-100: entries near 3,000, Gram eigenvalues near 5e9 within 20 steps), and a
    # float32 Gram then rounds by more than lambda = 1: it is no longer positive definite, the Cholesky factor fails
    # (NaN on a GPU, a silently wrong solve on a CPU). In float64 the products of float32 features are exact and
    # lambda survives. The last product Z^T C stays in float64 too: near-collinear features cancel there (a float32
    # product lost every digit in tests/test_models.py's case). Only W returns to the features' dtype. The system is
    # tiny (n <= a few hundred): the cost is negligible.
    z64 = z.to(torch.float64)
    gram = z64 @ z64.transpose(-1, -2) + lam * torch.eye(n, dtype=torch.float64, device=z.device)
    # cholesky_ex: no host synchronisation for the error check (the matrix is SPD by construction).
    chol, _ = torch.linalg.cholesky_ex(gram)
    # Two triangular solves (what cholesky_solve does), as plain BLAS calls: capturable in a CUDA graph.
    u = torch.linalg.solve_triangular(chol, y.to(torch.float64), upper=False)
    coef = torch.linalg.solve_triangular(chol.transpose(-1, -2), u, upper=True)
    return (z64.transpose(-1, -2) @ coef).to(torch.promote_types(z.dtype, y.dtype))


def ridge_solve_primal(z: torch.Tensor, y: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """The primal form ``(Z^T Z + lam I)^-1 Z^T Y`` (reference for tests; D x D system)."""
    d = z.shape[-1]
    a = z.transpose(-1, -2) @ z + lam * torch.eye(d, dtype=z.dtype, device=z.device)
    return torch.linalg.solve(a, z.transpose(-1, -2) @ y)


def pseudo_gradient_step(w: torch.Tensor, w_local: torch.Tensor, step: float = 0.01) -> torch.Tensor:
    """``W <- (1 - step) W + step W_l``: a step of size ``step`` along ``-(W - W_l)``."""
    return (1.0 - step) * w + step * w_local


def ridge_logits(z: torch.Tensor, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Logits ``[z, 1] @ (s W)`` for features ``z`` (without the bias column)."""
    return with_bias(z) @ (scale * w)


class RidgeClassifier(torch.nn.Module):
    """A trained RR model as a plain module: ``[features(x), 1] @ (s W)``."""

    def __init__(self, features: torch.nn.Module, w: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("w", w.detach().clone())
        self.scale = torch.nn.Parameter(scale.detach().clone().reshape(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ridge_logits(self.features(x), self.w, self.scale)
