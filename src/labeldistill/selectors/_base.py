"""The selector surface: what a selector sees (:class:`SelectionContext`), what it returns
(:class:`Selection`), and the registry its one-file modules fill with ``@register_selector``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..data.tensors import LabelledTensors, TargetData
from ..errors import UserError
from ..registry import Registry


@dataclass(frozen=True)
class SelectionContext:
    """Everything a selector may look at. The test split is not here, so no selector can see it.

    Attributes:
        train: the target's training split: the candidates (and the data feature models learn from).
        val: the target's validation split (the paper's strategy scores candidate sets on it).
        num_classes: C; n_base: N; seed: the run seed (every random choice derives from it).
        target: the target's name (for the paper's per-dataset settings); arch: the architecture
            that scores candidates (the target's default, whichever model the run trains, so one
            selected set per seed serves every method).
    """

    train: LabelledTensors
    val: LabelledTensors
    num_classes: int
    n_base: int
    seed: int
    target: str
    arch: str

    @classmethod
    def from_target(cls, target: TargetData, n_base: int, seed: int, arch: str | None = None) -> SelectionContext:
        from ..paper_defaults import default_arch

        return cls(target.train, target.val, target.num_classes, int(n_base), int(seed), target.name,
                   arch or default_arch(target.name, target.preprocessing.channels))

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    @property
    def labels(self) -> np.ndarray:
        """The training labels as int64 numpy (on the CPU)."""
        return self.train.y.detach().cpu().numpy().astype(np.int64)


@dataclass
class Selection:
    """A selector's answer: positions in ``ctx.train`` (ordered by class, then as chosen) and
    what it measured on the way (JSON-able; recorded in the run's provenance)."""

    positions: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)


class Selector:
    """Base of every selector: a dataclass of settings with the paper's (or sensible) defaults,
    and :meth:`select`. ``sees`` says which splits it reads (recorded with the choice);
    ``cached`` says whether its choice is worth keeping on disk (it trains models); ``balanced``
    whether its sets hold ``N // C`` or ``N // C + 1`` images of every class (checked)."""

    name: ClassVar[str] = ""
    sees: ClassVar[str] = "train"
    cached: ClassVar[bool] = True
    balanced: ClassVar[bool] = True

    def select(self, ctx: SelectionContext) -> Selection:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


SELECTORS: Registry[type[Selector]] = Registry("base selector")


def register_selector(name: str, *, aliases: tuple[str, ...] = ()):
    """Class decorator: register a :class:`Selector` subclass under ``name`` (``--base-select NAME``)."""

    def deco(cls: type[Selector]) -> type[Selector]:
        if not (isinstance(cls, type) and issubclass(cls, Selector)):
            raise TypeError(f"@register_selector({name!r}) decorates a Selector subclass, got {cls!r}")
        cls.name = name
        SELECTORS.register(name, aliases=aliases)(cls)
        return cls

    return deco


def by_class(positions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Positions ordered by class, keeping each class's own order (the random draw's layout)."""
    positions = np.asarray(positions, dtype=np.int64)
    return positions[np.argsort(labels[positions], kind="stable")]


def check_selection(positions: np.ndarray, ctx: SelectionContext, quota: np.ndarray | None = None) -> np.ndarray:
    """Raise unless ``positions`` are N distinct positions in the training split (and match the quota)."""
    p = np.asarray(positions)
    if p.ndim != 1 or len(p) != ctx.n_base or not np.issubdtype(p.dtype, np.integer):
        raise UserError(f"A selector returned {p.shape} positions of dtype {p.dtype}; expected {ctx.n_base} integers")
    if len(p) and (p.min() < 0 or p.max() >= len(ctx.train)):
        raise UserError("A selector returned positions outside the training split")
    if len(np.unique(p)) != len(p):
        raise UserError("A selector returned the same training image twice")
    if quota is not None and not np.array_equal(np.bincount(ctx.labels[p], minlength=ctx.num_classes), quota):
        raise UserError("A selector's set is not class-balanced as asked")
    return p.astype(np.int64)
