"""The training recipe (Table 1 of the paper) and open_lth's step/epoch durations, without torch.

Training is counted in steps; epochs, milestones, warmup and the rewind point convert to steps
with the number of full batches per epoch. The DAG validates every recipe before any job starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from elth.errors import ConfigError

_DURATION = re.compile(r"(\d+)(it|ep)")


def to_steps(duration: str, steps_per_epoch: int) -> int:
    """'1000it' is 1000 steps; '5ep' is 5 epochs of steps (open_lth's notation)."""
    m = _DURATION.fullmatch(str(duration))
    if not m:
        raise ConfigError(f"duration {duration!r} must be a count of steps or epochs, like '1000it' or '5ep'")
    return int(m[1]) * (steps_per_epoch if m[2] == "ep" else 1)


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: Table 1 of the paper, one per family in the config."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup: str = "0it"
    rewind: str = "0it"

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        try:
            recipe = cls(**{**d, "milestones": tuple(d.get("milestones", ()))})
        except TypeError as err:
            raise ConfigError(f"recipe {d}: {err}") from None
        recipe.check()
        return recipe

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"recipe {asdict(self)}: epochs, batch_size and lr must be positive")
        if any(m < 1 or m > self.epochs for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"recipe milestones {list(self.milestones)} must be increasing epochs within 1..{self.epochs}")
        for name in ("warmup", "rewind"):
            to_steps(getattr(self, name), 1)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.epochs * steps_per_epoch

    def rewind_step(self, steps_per_epoch: int) -> int:
        step = to_steps(self.rewind, steps_per_epoch)
        if step >= self.total_steps(steps_per_epoch):
            raise ConfigError(f"rewind point {self.rewind} ({step} steps) is not before the end of training "
                              f"({self.total_steps(steps_per_epoch)} steps of {steps_per_epoch} per epoch)")
        return step

    def schedule(self, steps_per_epoch: int) -> Callable[[int], float]:
        """The learning rate of each step, with durations converted once (it runs every step)."""
        milestones = [m * steps_per_epoch for m in self.milestones]
        warmup = to_steps(self.warmup, steps_per_epoch)

        def lr(step: int) -> float:
            rate = self.lr * self.gamma ** sum(step >= m for m in milestones)
            return rate * min(1.0, (step + 1) / warmup) if warmup else rate

        return lr

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        return self.schedule(steps_per_epoch)(step)
