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
