"""Independent random streams, one per purpose, all derived from one run seed.

Each purpose (split, base selection, target minibatches, inner minibatches, model
initialisation, validation models, test models) gets its own generator derived from
``(seed, purpose)`` with NumPy's SeedSequence, so changing how many numbers one purpose
draws (say, the validation frequency) never shifts another purpose's draws.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

PURPOSES = (
    "split",
    "base",
    "target-batches",
    "inner-batches",
    "model-init",
    "validation-models",
    "test-models",
)


def _purpose_key(purpose: str) -> int:
    # A stable hash (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "little")


def derive_seed(seed: int, purpose: str, *extra: int) -> int:
    """A 63-bit seed for ``purpose`` (and optional sub-keys such as a model index)."""
    ss = np.random.SeedSequence([int(seed), _purpose_key(purpose), *map(int, extra)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, purpose: str, *extra: int, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, purpose, *extra))
    return g


def numpy_generator(seed: int, purpose: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, purpose, *extra))


def draw_seed(g: torch.Generator) -> int:
    """Draw a fresh 62-bit seed from a generator (used for each model initialisation)."""
    return int(torch.randint(0, 2**62, (1,), generator=g, device=g.device).item())


@contextmanager
def isolated_torch_seed(seed: int) -> Iterator[None]:
    """Run a block (e.g. a user's model factory using default init) under ``seed``
    without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
