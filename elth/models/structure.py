"""The elastic structure of a model: its stages, the units in each, and the tensors of each unit.

An Elastic Ticket Transformation maps a ticket between two depths of one family by renaming
tensors: target unit j of stage s takes every tensor (weights, biases, BN affine parameters, BN
running statistics, mask) of some source unit i of stage s, and every tensor outside the units
(stem, head) is taken as it is. A model therefore describes, once and uniformly for every family,
which state_dict keys belong to which unit, so that a transformation is a mapping of names and
never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """The minimal unit of replication: a residual block, or a conv/linear layer with its BN.

    `prefix` is the state_dict prefix of every tensor of the unit (it ends with a dot). A `fixed`
    unit is never replicated or dropped: the entry block of a ResNet stage (it downsamples or
    changes width), the first conv layer after a VGG pooling, or a layer that changes the width.
    """

    prefix: str
    fixed: bool

    def owns(self, key: str) -> bool:
        return key.startswith(self.prefix)


@dataclass(frozen=True)
class Stage:
    """A run of units at one resolution and width, delimited by downsampling (or the head)."""

    name: str
    units: tuple[Unit, ...]

    @property
    def elastic(self) -> tuple[int, ...]:
        """Indices of the units that may be replicated or dropped."""
        return tuple(i for i, unit in enumerate(self.units) if not unit.fixed)


@dataclass(frozen=True)
class ElasticStructure:
    """The stages of a model of one family; every key outside the units is shared (stem and head)."""

    family: str
    stages: tuple[Stage, ...]

    def locate(self, key: str) -> tuple[int, int] | None:
        """The (stage, unit) indices owning `key`, or None for a shared key."""
        for s, stage in enumerate(self.stages):
            for u, unit in enumerate(stage.units):
                if unit.owns(key):
                    return s, u
        return None

    def unit_keys(self, keys: Iterable[str], stage: int, unit: int) -> list[str]:
        """The keys of one unit, in the order given."""
        owner = self.stages[stage].units[unit]
        return [k for k in keys if owner.owns(k)]

    def shared_keys(self, keys: Iterable[str]) -> list[str]:
        """The keys that belong to no unit: the stem, the head and anything between stages."""
        return [k for k in keys if self.locate(k) is None]

    @property
    def depths(self) -> tuple[int, ...]:
        """Units per stage: the depth signature that transformations change."""
        return tuple(len(stage.units) for stage in self.stages)

    def describe(self) -> str:
        """A printable table of stages and units, fixed ones starred."""
        lines = [f"family {self.family}"]
        for stage in self.stages:
            units = " ".join(f"{u.prefix.rstrip('.')}{'*' if u.fixed else ''}" for u in stage.units)
            lines.append(f"  {stage.name}: {units or '(empty)'}")
        return "\n".join(lines)
