"""A registry model as a pure function of its parameters, with DD's fresh-network initialisation.

DD's LeNet and AlexCifarNet are this package's ``lenet`` and ``alexnet`` (same layers, sizes and
order; LeNet pools before its ReLU, which is the same function). What differs is the
initialisation: DD draws Xavier-normal weights (gain 1) and zero biases for every convolution and
linear layer, where PyTorch's default is Kaiming-uniform; :meth:`FunctionalNet.init` does DD's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..engine.learner import soft_cross_entropy
from ..models import build_model
from ..seeding import isolated_torch_seed

Params = dict[str, torch.Tensor]


class FunctionalNet:
    """``net(params, x)``: a module's forward with the given parameters (``functional_call``).

    Args:
        module: the architecture (its own parameter values are only a template).
    Example:
        >>> net = FunctionalNet.from_arch("lenet", 1, 28, 10)
        >>> params = net.init(torch.Generator().manual_seed(0))
        >>> net(params, torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.buffers = dict(module.named_buffers())
        self.names = [n for n, _ in module.named_parameters()]
        # Parameters of Conv / Linear layers get DD's init; any other parameter keeps the template's value.
        self._xavier: dict[str, str] = {}
        for mname, m in module.named_modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                prefix = f"{mname}." if mname else ""
                if getattr(m, "weight", None) is not None:
                    self._xavier[prefix + "weight"] = "weight"
                if getattr(m, "bias", None) is not None:
                    self._xavier[prefix + "bias"] = "bias"

    @classmethod
    def from_arch(cls, arch: str, in_channels: int, image_size: int, num_classes: int,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> FunctionalNet:
        """A registered architecture (``labeldistill.models.list_models()``)."""
        with isolated_torch_seed(0):  # the template's own values are never used, but keep them reproducible
            module = build_model(arch, in_channels, image_size, num_classes)
        return cls(module.to(device=device, dtype=dtype))

    def __call__(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, (params, self.buffers), (x,))

    def init(self, generator: torch.Generator, gain: float = 1.0, requires_grad: bool = False) -> Params:
        """A fresh network's parameters: Xavier-normal weights (``gain``), zero biases, in
        module order, drawn from ``generator`` (on the parameters' device)."""
        out: Params = {}
        for name, p in self.module.named_parameters():
            kind = self._xavier.get(name)
            if kind == "weight":
                t = nn.init.xavier_normal_(torch.empty_like(p, requires_grad=False), gain=gain, generator=generator)
            elif kind == "bias":
                t = torch.zeros_like(p, requires_grad=False)
            else:
                t = p.detach().clone()
            out[name] = t.requires_grad_(requires_grad)
        return out


def inner_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """DD's cross-entropy for class indices; SLDD's soft cross-entropy for label vectors
    (``mean_i sum_c -y_ic log softmax(z_i)_c``, labels unconstrained)."""
    if labels.is_floating_point():
        return soft_cross_entropy(logits, labels)
    return F.cross_entropy(logits, labels)
