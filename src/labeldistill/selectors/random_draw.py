"""``random``: the seeded class-balanced draw every run used before selectors existed (the paper's main tables)."""
from __future__ import annotations

from dataclasses import dataclass

from ..data.selection import select_base
from ..seeding import numpy_generator
from ._base import Selection, SelectionContext, Selector, register_selector


@register_selector("random")
@dataclass
class RandomDraw(Selector):
    """``n // C`` random training images per class (the remainder to random classes), drawn from
    ``numpy_generator(seed, "base")``: bit for bit the draw of earlier versions. Sees: the training labels."""

    sees = "train labels"
    cached = False  # a draw costs nothing

    def select(self, ctx: SelectionContext) -> Selection:
        g = numpy_generator(ctx.seed, "base")
        return Selection(select_base(ctx.train.y, ctx.n_base, num_classes=ctx.num_classes, generator=g))
