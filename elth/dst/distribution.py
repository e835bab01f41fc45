"""How many weights each layer of a sparse-from-scratch network keeps, and where they start.

RigL (Evci et al. 2020, Sec 3) fixes each layer's count at the start and keeps it through training:
- `uniform`: RigL's uniform. The model's first layer (the stem conv: the first conv or linear
  weight in model order) is dense, as in Evci et al.'s code (google-research/rigl: its README says
  "Uniform sparsity distribution keeps first layer dense"; `first_layer_sparsity` defaults to 0,
  "layer is not pruned or masked"), and every other layer is at the one density that keeps the
  requested total, the count of the IMP ticket RigL is matched to (RigL's code puts the other
  layers at the target sparsity, so its networks end a little denser than the target).
- `uniform-all`: every layer at the global density, the stem included.
- `erk` (Erdős-Rényi-Kernel): a layer's density is proportional to (sum of its dimensions) /
  (product of its dimensions), so small layers (the stem, the classifier) stay denser. A layer
  the scale would push past density 1 is made dense and the scale is solved again for the rest,
  as RigL's code does.

The counts are rounded by largest remainder, so they add up to the requested number of weights
exactly: RigL matched to an IMP ticket keeps as many weights as the ticket, as every baseline does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from elth.errors import ConfigError
from elth.prune.mask import Mask

DISTRIBUTIONS = ("uniform", "uniform-all", "erk")


def densities(shapes: Mapping[str, torch.Size], remaining: int, distribution: str, *,
              first: str | None) -> dict[str, float]:
    """The density of every layer that keeps `remaining` weights in all: `distribution`'s shape.
    `first` names the model's first conv or linear weight, which `uniform` keeps dense; None, or a
    name not in `shapes` (a weight left out of the mask, so dense already), keeps none of `shapes` dense."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    total = sum(sizes.values())
    if not 0 < remaining <= total:
        raise ConfigError(f"cannot keep {remaining} of {total} weights: a sparse network keeps at least one and at most all")
    if distribution in ("uniform", "uniform-all"):
        stem = first if distribution == "uniform" and first in shapes else None
        if stem is None:
            return {n: remaining / total for n in shapes}
        if remaining < sizes[stem]:
            raise ConfigError(f"RigL's uniform distribution keeps the first layer {stem} dense, but its "
                              f"{sizes[stem]} weights are more than the {remaining} to keep; use uniform-all or erk")
        rest = total - sizes[stem]
        density = (remaining - sizes[stem]) / rest if rest else 1.0
        return {n: 1.0 if n == stem else density for n in shapes}
    if distribution != "erk":
        raise ConfigError(f"unknown sparsity distribution {distribution!r}; known: {', '.join(DISTRIBUTIONS)}")
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        sparse = [n for n in shapes if n not in dense]
        scale = (remaining - sum(sizes[n] for n in dense)) / sum(raw[n] * sizes[n] for n in sparse)
        top = max(raw[n] for n in sparse)
        if top * scale <= 1.0:
            return {n: 1.0 if n in dense else raw[n] * scale for n in shapes}
        dense.update(n for n in sparse if raw[n] == top)


def layer_counts(shapes: Mapping[str, torch.Size], remaining: int, distribution: str, *,
                 first: str | None) -> dict[str, int]:
    """Whole weights per layer, `remaining` in all: each layer's ideal count rounded down, then the
    weights left over go one each to the layers with the largest fractional parts."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    ideal = {n: d * sizes[n] for n, d in densities(shapes, remaining, distribution, first=first).items()}
    counts = {n: min(sizes[n], math.floor(x)) for n, x in ideal.items()}
    by_remainder = sorted((n for n in shapes if counts[n] < sizes[n]), key=lambda n: counts[n] - ideal[n])
    for n in by_remainder[:remaining - sum(counts.values())]:
        counts[n] += 1
    return counts


def random_mask(shapes: Mapping[str, torch.Size], counts: Mapping[str, int], generator: torch.Generator) -> Mask:
    """RigL's starting point: in each layer, `counts[layer]` weights kept at random positions."""
    out = {}
    for n, shape in shapes.items():
        flat = torch.zeros(math.prod(shape), dtype=torch.bool)
        flat[torch.randperm(flat.numel(), generator=generator)[:counts[n]]] = True
        out[n] = flat.view(shape)
    return Mask(out)
