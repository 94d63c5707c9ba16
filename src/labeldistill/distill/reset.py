"""Reset on over-fitting: the moving-average rule of the reference code (DESIGN.md).

The monitored value is the error (%) of the persistent model on each step's target
minibatch. The window ``w`` is both the moving-average length and the patience; the
state persists across epochs. The earliest reset is on step ``2w + 1`` of a model's life,
and each reset records T_i = the step count at which the best moving average occurred.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import torch


@dataclass
class ResetMonitor:
    window: int = 50
    values: deque = field(default_factory=deque)
    steps: int = 0  # steps in the current model's life
    best: float = math.inf  # best (lowest) window sum so far
    since_best: int = 0
    t_list: list[int] = field(default_factory=list)  # T_i of every reset so far

    def update(self, error: float) -> bool:
        """Feed one step's error; True when the model must be reset (after this step's updates)."""
        w = self.window
        self.steps += 1
        if len(self.values) < w:  # warm-up: fill the window
            self.values.append(error)
            if self.steps == w:
                self.best, self.since_best = sum(self.values), 0
            return False
        self.values.popleft()
        self.values.append(error)
        total = sum(self.values)
        if total < self.best:
            self.best, self.since_best = total, 0
        elif self.since_best < w:
            self.since_best += 1
        else:
            self.t_list.append(self.steps - self.since_best - 1)
            self.values.clear()
            self.steps, self.best, self.since_best = 0, math.inf, 0
            return True
        return False

    @property
    def resets(self) -> int:
        return len(self.t_list)

    @property
    def moving_average(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    def estimate_steps(self) -> int:
        """T = int(mean of the last three T_i); the current model's step count before any reset."""
        if not self.t_list:
            return max(1, self.steps)
        last = self.t_list[-3:]
        return max(1, int(sum(last) / len(last)))

    def state_dict(self) -> dict:
        return {
            "window": self.window, "values": list(self.values), "steps": self.steps,
            "best": None if math.isinf(self.best) else self.best, "since_best": self.since_best, "t_list": list(self.t_list),
        }

    @classmethod
    def from_state(cls, d: dict) -> ResetMonitor:
        return cls(
            window=d["window"], values=deque(d["values"]), steps=d["steps"],
            best=math.inf if d["best"] is None else d["best"], since_best=d["since_best"], t_list=list(d["t_list"]),
        )


class DeviceResetMonitor:
    """The same rule as :class:`ResetMonitor`, as tensor operations on the training device.

    The loop uses it to decide each step's reset without reading anything back to the
    host (a read per step would stall a GPU). The host replays the same errors through
    the reference :class:`ResetMonitor` in chunks and checks that both agree; the host
    copy is what checkpoints hold.

    Errors are float32 percentages (0, or at least 100 / batch size), so every window sum
    is exact in float64 whatever the order of summation: device and host decide alike.
    """

    def __init__(self, window: int, device: torch.device | str, shape: tuple[int, ...] = ()) -> None:
        self.window = w = int(window)
        z = lambda dtype: torch.zeros(shape, dtype=dtype, device=device)  # noqa: E731
        self.values = torch.zeros(*shape, w, dtype=torch.float64, device=device)  # a ring; empty slots hold 0
        self.pos, self.steps, self.since_best = z(torch.long), z(torch.long), z(torch.long)
        self.best = torch.full(shape, math.inf, dtype=torch.float64, device=device)

    def update(self, error: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed one step's error (%, of the monitor's ``shape``: 0-dim for one run, K for K runs side by side);
        returns (reset?, T_i) of that shape (T_i = -1 without reset)."""
        w = self.window
        self.values.scatter_(-1, self.pos.unsqueeze(-1), error.to(torch.float64).unsqueeze(-1))
        self.pos.add_(1).remainder_(w)
        self.steps.add_(1)
        total = self.values.sum(-1)
        warm = self.steps <= w
        first_full = self.steps == w
        improved = ~warm & (total < self.best)
        patient = ~warm & ~improved & (self.since_best < w)
        reset = ~warm & ~improved & ~patient
        t_i = torch.where(reset, self.steps - self.since_best - 1, torch.full_like(self.steps, -1))
        self.best.copy_(torch.where(reset, torch.full_like(self.best, math.inf), torch.where(first_full | improved, total, self.best)))
        self.since_best.copy_(torch.where(first_full | improved | reset, torch.zeros_like(self.since_best), self.since_best + patient.long()))
        self.values.mul_((~reset).unsqueeze(-1))
        self.steps.mul_(~reset)
        return reset, t_i

    def load(self, ref: ResetMonitor, index: int | None = None) -> None:
        """Take the state of a host monitor (after a resume); ``index``: into that run's slot of a monitor of K runs."""
        if ref.window != self.window:
            raise ValueError("window mismatch")
        at = (lambda t: t) if index is None else (lambda t: t[index])  # noqa: E731
        vals = list(ref.values)
        with torch.no_grad():
            at(self.values).zero_()
            if vals:
                at(self.values)[: len(vals)] = torch.tensor(vals, dtype=torch.float64)
            at(self.pos).fill_(len(vals) % self.window)
            at(self.steps).fill_(ref.steps)
            at(self.since_best).fill_(ref.since_best)
            at(self.best).fill_(ref.best)
