"""The training recipe (Table 1 of the paper) and open_lth's step/epoch durations, without torch.

Training is counted in steps; epochs, milestones, warmup and the rewind point convert to steps
with the number of batches per epoch (the full ones, and the partial last one under the dataset's
`last_batch: keep`). The DAG validates every recipe before any job starts.

Two choices where open_lth differs from elth are recipe keys, elth's by default:
- `warmup_rule`: elth's warmup multiplies the rate by (step + 1) / W, so every step trains and the
  full rate is reached at step W - 1; open_lth's (training/optimizers.py) by step / W, so step 0
  has rate 0 (it only fills the momentum buffer) and the full rate is reached at step W.
- `momentum_at_rewind`: elth's dense run carries SGD's momentum through the rewind step; open_lth's
  lottery runner trains step 0 to the rewind step as a run of its own, then level 0 on from the
  saved rewind weights with a fresh optimizer (`reset`: the momentum is zeroed at the rewind step).

Two keys serve families the paper does not train (a ViT does not train with the ResNet recipe),
each the paper's by default, so every existing recipe means what it did:
- `optimizer`: `sgd` (SGD with `momentum` and `weight_decay`) or `adamw` (AdamW, Loshchilov &
  Hutter 2019, with betas (`momentum`, 0.999) and decoupled `weight_decay`).
- `decay`: `step` (times `gamma` at each of `milestones`) or `cosine`: after the warmup, the rate
  follows lr (1 + cos(pi t / T)) / 2 over the T steps left, to zero at the end (no milestones).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from elth.errors import ConfigError

_DURATION = re.compile(r"(\d+)(it|ep)")
WARMUP_RULES = ("elth", "open_lth")
MOMENTUM_AT_REWIND = ("carry", "reset")
OPTIMIZERS = ("sgd", "adamw")
DECAYS = ("step", "cosine")


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
    warmup_rule: str = "elth"
    momentum_at_rewind: str = "carry"
    optimizer: str = "sgd"
    decay: str = "step"

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
        for name, allowed in (("warmup_rule", WARMUP_RULES), ("momentum_at_rewind", MOMENTUM_AT_REWIND),
                              ("optimizer", OPTIMIZERS), ("decay", DECAYS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"recipe {name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.decay == "cosine" and self.milestones:
            raise ConfigError(f"recipe milestones {list(self.milestones)} belong to the step schedule; a cosine "
                              "decay reaches zero by itself: remove the milestones or use decay: step")

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.epochs * steps_per_epoch

    def rewind_step(self, steps_per_epoch: int) -> int:
        step = to_steps(self.rewind, steps_per_epoch)
        if step >= self.total_steps(steps_per_epoch):
            raise ConfigError(f"rewind point {self.rewind} ({step} steps) is not before the end of training "
                              f"({self.total_steps(steps_per_epoch)} steps of {steps_per_epoch} per epoch)")
        return step

    def schedule(self, steps_per_epoch: int) -> Callable[[int], float]:
        """The learning rate of each step, with durations converted once (it runs every step): the
        rate times gamma for every milestone reached (`step`) or its cosine decay after the warmup
        (`cosine`), times the warmup factor of `warmup_rule`."""
        milestones = [m * steps_per_epoch for m in self.milestones]
        warmup = to_steps(self.warmup, steps_per_epoch)
        offset = 1 if self.warmup_rule == "elth" else 0
        span = max(1, self.total_steps(steps_per_epoch) - warmup)  # the steps the cosine decays over

        def lr(step: int) -> float:
            if self.decay == "cosine":
                rate = self.lr * (1.0 + math.cos(math.pi * min(1.0, max(0, step - warmup) / span))) / 2.0
            else:
                rate = self.lr * self.gamma ** sum(step >= m for m in milestones)
            return rate * min(1.0, (step + offset) / warmup) if warmup else rate

        return lr

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        return self.schedule(steps_per_epoch)(step)
