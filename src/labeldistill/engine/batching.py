"""Map a per-model function over K stacked models: ``vmap`` or a lockstep loop.

Both give the same result (each model sees only its own slice). Which is faster depends
on the device, measured (docs/benchmarks.md): on a GPU, ``vmap`` turns K small models
into one batched kernel launch per layer; on a CPU it turns convolutions into grouped
convolutions, which oneDNN runs about 4x slower than K plain ones for LeNet-sized layers,
so ``auto`` uses the loop there.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..errors import check_choice

MODES = ("auto", "vmap", "loop")


def resolve_mode(mode: str, device: torch.device | str) -> str:
    check_choice("model batching mode", mode, MODES)
    if mode != "auto":
        return mode
    return "vmap" if torch.device(device).type == "cuda" else "loop"


def map_models(fn: Callable[..., Any], in_dims: Sequence[int | None], mode: str) -> Callable[..., Any]:
    """Like ``vmap(fn, in_dims)`` (batched dims must be 0), optionally as a loop over models."""
    if mode == "vmap":
        return vmap(fn, in_dims=tuple(in_dims))

    def looped(*args: Any) -> Any:
        k = next(tree_flatten(a)[0][0].shape[0] for a, d in zip(args, in_dims) if d == 0)
        # unbind once, not t[i] per model: the backward of K selects writes each gradient into a
        # fresh zero tensor of the whole stack (O(K^2) memory traffic, most of a CPU step at K=150);
        # unbind's backward stacks the K gradients once. Same values bit for bit (x + 0 == x).
        per_model = [_unbind(a) if d == 0 else None for a, d in zip(args, in_dims)]
        outs = [fn(*(_pick(u, i) if d == 0 else a for a, u, d in zip(args, per_model, in_dims))) for i in range(k)]
        leaves = [tree_flatten(o)[0] for o in outs]
        spec = tree_flatten(outs[0])[1]
        return tree_unflatten([torch.stack(col) for col in zip(*leaves)], spec)

    return looped


def _unbind(tree: Any) -> tuple[list[tuple[torch.Tensor, ...]], Any]:
    leaves, spec = tree_flatten(tree)
    return [leaf.unbind(0) for leaf in leaves], spec


def _pick(unbound: tuple[list[tuple[torch.Tensor, ...]], Any], i: int) -> Any:
    columns, spec = unbound
    return tree_unflatten([col[i] for col in columns], spec)
