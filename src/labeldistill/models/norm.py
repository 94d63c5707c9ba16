"""Batch norm as a pure function of its parameters, with an evaluation mode that does not
depend on how the scored examples are batched.

:class:`BatchStatNorm` replaces every ``torch.nn`` batch-norm layer in the engine's models
(:func:`convert_batch_norm_`). It keeps the layer's parameter names (``weight``, ``bias``)
and has no buffers, so stacked states and checkpoints are unchanged, and it works under
``torch.func.vmap``, ``functional_call`` and a plain loop over models.

Two modes, chosen by the integer attribute ``reference_rows`` (set for one call by the
engine's :meth:`~labeldistill.engine.Learner.evaluating` context, never globally):

* ``0`` (default, training): the statistics of the current batch, exactly
  ``F.batch_norm(x, None, None, weight, bias, training=True, momentum, eps)`` as
  ``torch.func.replace_all_batch_norm_modules_`` gave before; no running averages.
* ``R > 0`` (evaluation): the input is ``[reference rows ; rows to score]``; the mean and
  the biased variance of the first ``R`` rows normalise all rows. With the model's own
  training images as the reference these are the population statistics of its training
  set under its final weights ("PreciseBN", Wu & Johnson 2021, "Rethinking 'Batch' in
  BatchNorm"), so a scored example's output depends only on the example, not on which
  other test examples share its batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class BatchStatNorm(nn.Module):
    """A batch-norm layer without running statistics (see the module docstring).

    Args:
        num_features: channels C (dimension 1 of the input).
        eps, momentum, affine: as the ``nn.BatchNorm*d`` it replaces (momentum is unused:
            there are no running averages to update).
        kind: the ``nn.BatchNorm*d`` class it stands for (used when exporting a plain module).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 kind: type[_BatchNorm] = nn.BatchNorm2d, device=None, dtype=None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum, self.affine, self.kind = num_features, eps, momentum, affine, kind
        self.reference_rows = 0  # 0: batch statistics; R: statistics of the first R rows
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    @classmethod
    def from_batch_norm(cls, bn: _BatchNorm) -> BatchStatNorm:
        """The same layer (its very parameter objects, so no copy and no RNG use)."""
        out = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, type(bn), device="meta")
        out.weight, out.bias = bn.weight, bn.bias  # None when not affine
        return out

    def reference_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance per channel of the first ``reference_rows`` rows of ``x``."""
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x[: self.reference_rows], dim=dims, correction=0)
        return mean, var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference_rows == 0:
            momentum = 0.0 if self.momentum is None else self.momentum
            return F.batch_norm(x, None, None, self.weight, self.bias, True, momentum, self.eps)
        if not 0 < self.reference_rows <= x.shape[0]:
            raise ValueError(f"reference_rows={self.reference_rows} but the batch has {x.shape[0]} rows")
        mean, var = self.reference_stats(x)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        out = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.weight is not None:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}, reference_rows={self.reference_rows}"


def convert_batch_norm_(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm*d`` inside ``module`` (in place) by :class:`BatchStatNorm`;
    returns ``module``. A module that is itself a batch-norm layer cannot be replaced in place."""
    if isinstance(module, _BatchNorm):
        raise TypeError("convert_batch_norm_ replaces submodules; wrap a bare batch-norm layer in a container")
    for name, child in list(module.named_children()):
        if isinstance(child, _BatchNorm):
            setattr(module, name, BatchStatNorm.from_batch_norm(child))
        else:
            convert_batch_norm_(child)
    return module


def norm_layers(module: nn.Module) -> dict[str, BatchStatNorm]:
    """The :class:`BatchStatNorm` layers of ``module`` by qualified name."""
    return {n: m for n, m in module.named_modules() if isinstance(m, BatchStatNorm)}


def export_batch_norm_(module: nn.Module, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> nn.Module:
    """Replace each :class:`BatchStatNorm` of ``module`` (in place) by the standard
    ``nn.BatchNorm*d`` it stands for, with ``running_mean`` / ``running_var`` set to
    ``stats[name]`` (mean, biased variance), and put it in eval mode: ``layer.eval()(x)``
    then normalises with those statistics, as the engine's evaluation does."""
    for name, layer in norm_layers(module).items():
        mean, var = stats[name]
        bn = layer.kind(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                        track_running_stats=True, device=mean.device, dtype=mean.dtype)
        with torch.no_grad():
            if layer.affine:
                bn.weight.copy_(layer.weight)
                bn.bias.copy_(layer.bias)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        bn.eval()
        parent_name, _, attr = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attr, bn)
    return module
