"""The step schedule of a DD set as data, and the paper's test-time edits of it (Tables 10-12).

A :class:`Schedule` says, for each plain-SGD step of a fresh network, which distilled images it
trains on (indices into the flat set: image ``i`` of step-tensor ``b`` is ``b * batch + i``) and
with which learning rate. The learned schedule of DD visits the step-tensors in order,
``epochs`` times; the variants below only edit a schedule, never the images.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..errors import UserError


@dataclass(frozen=True)
class Schedule:
    """Which images and which learning rate at each inner step.

    Attributes:
        steps: one tuple of flat image indices per step (all steps the same size).
        lrs: one learning rate per step (0: the step changes nothing).
        epoch_length: steps per pass over the distilled set (DD: ``distill_steps``).
    """

    steps: tuple[tuple[int, ...], ...]
    lrs: tuple[float, ...]
    epoch_length: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(tuple(int(i) for i in s) for s in self.steps))
        object.__setattr__(self, "lrs", tuple(float(v) for v in self.lrs))
        if len(self.steps) != len(self.lrs):
            raise UserError(f"A schedule needs one learning rate per step: {len(self.steps)} steps, {len(self.lrs)} lrs.")
        if len({len(s) for s in self.steps}) > 1 or any(len(s) == 0 for s in self.steps):
            raise UserError("Every step of a schedule must use the same, non-zero number of images.")
        if self.epoch_length < 1:
            raise UserError(f"epoch_length must be at least 1, got {self.epoch_length}.")

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def batch_size(self) -> int:
        return len(self.steps[0]) if self.steps else 0

    @property
    def order(self) -> tuple[int, ...] | None:
        """The step-tensor of each step when every step is one whole step-tensor, else None."""
        b = self.batch_size
        out = []
        for s in self.steps:
            if s[0] % b or s != tuple(range(s[0], s[0] + b)):
                return None
            out.append(s[0] // b)
        return tuple(out)

    def index(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """T x B int64 image indices."""
        return torch.tensor(self.steps, dtype=torch.int64, device=device).reshape(len(self.steps), self.batch_size)

    def to_dict(self) -> dict:
        """``{"kind": "dd", "lrs": [...], "order": [...]}`` (plus ``"steps"`` when steps are not whole step-tensors)."""
        d: dict = {"kind": "dd", "lrs": list(self.lrs), "order": None, "epoch_length": self.epoch_length, "batch": self.batch_size}
        order = self.order
        if order is None:
            d["steps"] = [list(s) for s in self.steps]
        else:
            d["order"] = list(order)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Schedule:
        if d.get("kind") != "dd":
            raise UserError(f"Not a DD schedule (kind {d.get('kind')!r}); expected kind 'dd'.")
        if d.get("steps") is not None:
            return cls(tuple(map(tuple, d["steps"])), tuple(d["lrs"]), int(d["epoch_length"]))
        b = int(d["batch"])
        return cls(tuple(tuple(range(o * b, (o + 1) * b)) for o in d["order"]), tuple(d["lrs"]), int(d["epoch_length"]))


def learned_schedule(lrs: Sequence[float], num_batches: int, batch_size: int) -> Schedule:
    """DD's own schedule: step t trains on step-tensor ``t mod num_batches`` with ``lrs[t]``.

    Example:
        >>> learned_schedule([0.1, 0.2, 0.3, 0.4], 2, 3).steps
        ((0, 1, 2), (3, 4, 5), (0, 1, 2), (3, 4, 5))
    """
    if num_batches < 1 or batch_size < 1:
        raise UserError(f"num_batches and batch_size must be at least 1, got {num_batches}, {batch_size}.")
    steps = tuple(tuple(range((t % num_batches) * batch_size, (t % num_batches + 1) * batch_size)) for t in range(len(lrs)))
    return Schedule(steps, tuple(lrs), num_batches)


def first_steps(schedule: Schedule, n: int) -> Schedule:
    """Table 10: keep the lrs of the first ``n`` steps (counted across epochs), set the rest to 0."""
    if not 0 <= n <= len(schedule):
        raise UserError(f"n must be between 0 and the schedule's {len(schedule)} steps, got {n}.")
    return replace(schedule, lrs=schedule.lrs[:n] + (0.0,) * (len(schedule) - n))


def extended(schedule: Schedule, extra: int = 5) -> Schedule:
    """Table 10's "35": the schedule, then ``extra`` steps at the mean lr continuing the image
    order (step-tensors 1..extra), then lr-0 steps to the end of that epoch (the reference ran 4
    epochs, 40 steps, of which 35 move the weights)."""
    if not 0 <= extra:
        raise UserError(f"extra must be non-negative, got {extra}.")
    _check_nonempty(schedule)
    t, length = len(schedule), schedule.epoch_length
    total = -(-(t + extra) // length) * length if extra else t
    more = tuple(schedule.steps[i % length] for i in range(t, total))
    mean = sum(schedule.lrs) / len(schedule.lrs)
    return replace(schedule, steps=schedule.steps + more, lrs=schedule.lrs + (mean,) * extra + (0.0,) * (total - t - extra))


def average_lr(schedule: Schedule) -> Schedule:
    """Table 11: the mean of the schedule's lrs at every step, same images and order."""
    _check_nonempty(schedule)
    mean = sum(schedule.lrs) / len(schedule.lrs)
    return replace(schedule, lrs=(mean,) * len(schedule))


def _check_nonempty(schedule: Schedule) -> None:
    if not len(schedule):
        raise UserError("The schedule has no steps.")


def _rechunk(steps: Sequence[tuple[int, ...]], generator: torch.Generator) -> tuple[tuple[int, ...], ...]:
    pool = torch.tensor([i for s in steps for i in s], dtype=torch.int64)
    pool = pool[torch.randperm(len(pool), generator=generator)].tolist()
    b = len(steps[0])
    return tuple(tuple(pool[k * b : (k + 1) * b]) for k in range(len(steps)))


def shuffled_within_epochs(schedule: Schedule, generator: torch.Generator) -> Schedule:
    """Table 12: per epoch, pool the images its steps use, permute them (one permutation per
    epoch) and re-chunk into steps of the same size; lrs stay with the step positions, so a step
    is no longer class-balanced. Draw once per test run: every test network shares the result."""
    length = schedule.epoch_length
    out: tuple[tuple[int, ...], ...] = ()
    for start in range(0, len(schedule), length):
        out += _rechunk(schedule.steps[start : start + length], generator)
    return replace(schedule, steps=out)


def shuffled_across_epochs(schedule: Schedule, generator: torch.Generator) -> Schedule:
    """Table 12: pool every image use of every step, permute once, re-chunk; lrs by position."""
    _check_nonempty(schedule)
    return replace(schedule, steps=_rechunk(schedule.steps, generator))


def shuffled_steps(schedule: Schedule, generator: torch.Generator, *, within: bool) -> Schedule:
    """A milder reading of Table 12 (ours): permute whole steps, so each step keeps its images (DD's
    steps stay class-balanced) and only the order of the steps changes; ``within``: per epoch (each
    step-tensor still once an epoch), else once over all steps. lrs stay with the step positions.
    The paper's wording fits both this and the image-level shuffles; docs/results.md measures both."""
    _check_nonempty(schedule)
    length = schedule.epoch_length if within else len(schedule)
    out: list[tuple[int, ...]] = []
    for start in range(0, len(schedule), length):
        block = schedule.steps[start : start + length]
        out += [block[i] for i in torch.randperm(len(block), generator=generator).tolist()]
    return replace(schedule, steps=tuple(out))


# -- the distilled-set file's schedule field ------------------------------------------------
def to_file_schedule(schedule: Schedule):
    """The schedule as the distilled-set file stores it (:class:`labeldistill.artifact.Schedule`,
    kind "per-step": ``order`` holds each step's flat image indices)."""
    from ..artifact import Schedule as FileSchedule

    return FileSchedule("per-step", schedule.lrs, schedule.steps, schedule.epoch_length)


def from_file_schedule(schedule) -> Schedule:
    """A file's per-step schedule as a :class:`Schedule` (it must say which images each step uses)."""
    if schedule.order is None:
        raise UserError("The set's schedule has learning rates but no image order; it cannot be trained step by step.")
    return Schedule(schedule.order, schedule.lrs, schedule.epoch_length or len(schedule.lrs))


# -- the paper's sensitivity variants by name (Tables 10-12, 15) --------------------------
VARIANTS = ("learned", "first-steps:N", "extended:K", "average-lr", "shuffle-within", "shuffle-across", "shuffle-steps-within",
            "shuffle-steps-across", "like-ld")


def parse_variant(text: str | None) -> tuple[str, int | None]:
    """``"first-steps:20"`` -> ``("first-steps", 20)``; ``None`` is ``"learned"``. One-line errors."""
    text = "learned" if text is None else str(text).strip()
    name, _, arg = text.partition(":")
    takes = {"first-steps": None, "extended": 5}
    plain = tuple(v for v in VARIANTS if ":" not in v)
    if name in plain and not arg:
        return name, None
    if name in takes:
        if not arg:
            if takes[name] is None:
                raise UserError(f"--variant {name} needs a number of steps, e.g. {name}:20.")
            return name, takes[name]
        try:
            n = int(arg)
        except ValueError:
            n = -1
        if n < 0:
            raise UserError(f"--variant {text}: '{arg}' is not a number of steps (0 or more).")
        return name, n
    raise UserError(f"Unknown --variant '{text}'. Known: {', '.join(VARIANTS)}.")


def variant_name(name: str, arg: int | None) -> str:
    return name if arg is None else f"{name}:{arg}"


def apply_variant(schedule: Schedule, name: str, arg: int | None, seed: int) -> Schedule:
    """The schedule a test run of variant ``name`` trains by (not ``like-ld``, which has none).

    The shuffles draw their permutation once per test run from ``(seed, "unrolled-variant-NAME")``:
    every test network shares it, and the same seed gives the same permutation."""
    from ..seeding import torch_generator

    if name == "learned":
        return schedule
    if name == "first-steps":
        return first_steps(schedule, int(arg))  # type: ignore[arg-type]
    if name == "extended":
        return extended(schedule, int(arg))  # type: ignore[arg-type]
    if name == "average-lr":
        return average_lr(schedule)
    if name in ("shuffle-within", "shuffle-across"):
        g = torch_generator(seed, f"unrolled-variant-{name}")
        return (shuffled_within_epochs if name == "shuffle-within" else shuffled_across_epochs)(schedule, g)
    if name in ("shuffle-steps-within", "shuffle-steps-across"):
        return shuffled_steps(schedule, torch_generator(seed, f"unrolled-variant-{name}"), within=name.endswith("within"))
    raise UserError(f"The variant {name!r} does not edit a schedule.")
