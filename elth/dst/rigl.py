"""RigL (Evci et al. 2020): sparse training from scratch that moves connections, never their number.

Every ΔT steps until `stop` of training (T_end), each layer drops the fraction
α·(1 + cos(π t / T_end)) / 2 of its active weights with the smallest magnitude and grows as many
inactive ones, those with the largest dense gradient. The count to move is rounded down, as in
RigL's code; a dropped weight may be grown again at once, and then keeps its value.

`RigL` is an `elth.train.Rewiring`: the engine calls it after the backward pass (dense gradients
in `.grad`: the mask multiplies the weights in place, it is not in the graph) and before the
optimizer step. RigL's TensorFlow code skips the optimizer step on an update iteration, so that a
grown weight starts training at zero with no momentum; here every batch keeps its step, and a
grown weight's gradient is zeroed for that one step together with its value and momentum buffer,
which leaves it at zero with zero momentum after the step all the same (under AdamW, both of its
moment estimates are zeroed). A dropped weight needs no handling: the engine multiplies the weights
by the updated factors after the step.

`stretch` is RigL's "5x": the same recipe over a multiple of its epochs, schedule included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from elth.errors import ConfigError
from elth.recipe import Recipe


@dataclass(frozen=True)
class Schedule:
    """When RigL rewires, and how much: every `delta_t` steps from step `delta_t` on, while the step
    is before `stop` of the run's `total_steps`; at step t the drop fraction is α(1+cos(πt/T_end))/2."""

    total_steps: int
    delta_t: int = 100
    alpha: float = 0.3
    stop: float = 0.75

    def __post_init__(self) -> None:
        if self.total_steps < 1 or self.delta_t < 1:
            raise ConfigError(f"RigL needs at least one step and ΔT >= 1, got {self.total_steps} steps and ΔT {self.delta_t}")
        if not 0.0 <= self.alpha <= 1.0 or not 0.0 <= self.stop <= 1.0:
            raise ConfigError(f"RigL's alpha and stop fraction must be in [0, 1], got {self.alpha} and {self.stop}")

    @property
    def end(self) -> int:
        """T_end: the first step at which the mask no longer changes."""
        return int(self.stop * self.total_steps)

    def is_update(self, step: int) -> bool:
        return 0 < step < self.end and step % self.delta_t == 0

    def drop_fraction(self, step: int) -> float:
        if step >= self.end:
            return 0.0
        return self.alpha * (1.0 + math.cos(math.pi * step / self.end)) / 2.0

    def updates(self) -> int:
        """How many steps rewire: what the FLOPs accountant charges a dense gradient for."""
        return len(range(self.delta_t, self.end, self.delta_t))


class RigL:
    """Rewires the masks handed to it in place; the count of active weights of every layer is the
    one it saw on its first call (read once, so no update waits on the device)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._counts: list[int] | None = None

    def __call__(self, step: int, weights: list[Tensor], masks: list[Tensor], optimizer: torch.optim.Optimizer) -> None:
        if self._counts is None:
            self._counts = [int(m.sum()) for m in masks]
        if not self.schedule.is_update(step):
            return
        fraction = self.schedule.drop_fraction(step)
        for weight, mask, active in zip(weights, masks, self._counts):
            moved = int(active * fraction)
            if moved and active < mask.numel():
                state = optimizer.state.get(weight, {}).values()
                self._rewire(weight, mask, moved, [t for t in state if torch.is_tensor(t) and t.shape == weight.shape])

    @staticmethod
    @torch.no_grad()
    def _rewire(weight: Tensor, mask: Tensor, moved: int, moments: list[Tensor]) -> None:
        """Move `moved` connections of one layer. Positions are flattened in the tensor's logical
        order (`reshape`, not `view`): conv weights are channels_last, their mask is not. `moments`:
        the optimizer's per-weight state (SGD's momentum buffer, AdamW's two moment estimates)."""
        was_active = mask.reshape(-1).bool()
        drop_score = weight.detach().abs().reshape(-1).masked_fill(~was_active, math.inf)
        now = was_active.clone()
        now[torch.topk(drop_score, moved, largest=False).indices] = False
        grow_score = weight.grad.abs().reshape(-1).masked_fill(now, -math.inf)
        now[torch.topk(grow_score, moved).indices] = True
        mask.copy_(now.view(mask.shape))
        new = (now & ~was_active).view(mask.shape)
        for tensor in (weight, weight.grad, *moments):
            tensor.masked_fill_(new, 0.0)


def stretch(recipe: Recipe, multiplier: int) -> Recipe:
    """`recipe` over `multiplier` times its epochs, its milestones and warmup stretched alike (RigL's
    "5x": the learning-rate schedule is scaled with the run, not cut off or padded)."""
    if multiplier < 1:
        raise ConfigError(f"the training multiplier must be a positive whole number, got {multiplier}")
    warmup = f"{int(recipe.warmup[:-2]) * multiplier}{recipe.warmup[-2:]}"
    stretched = replace(recipe, epochs=recipe.epochs * multiplier,
                        milestones=tuple(m * multiplier for m in recipe.milestones), warmup=warmup)
    stretched.check()
    return stretched
