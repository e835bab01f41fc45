"""Global magnitude pruning, the step of IMP (Frankle & Carbin 2019; Frankle et al. 2020).

Each round removes the `fraction` of the still-unpruned weights with the smallest magnitude,
ranked over all prunable layers together. The count is rounded to the nearest weight and ties are
broken by position, so the sparsity after k rounds is 1 - (1 - fraction)^k up to rounding:
73.79% after 6 rounds of 20%, 89.26% after 10.
"""

from __future__ import annotations

import fnmatch

import torch
from torch import Tensor, nn

from elth.errors import ConfigError
from elth.models.registry import prunable_names
from elth.prune.mask import Mask


def prunable(model: nn.Module, unpruned: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The prunable weights of `model` minus those matching a glob in `unpruned` (e.g. `fc.weight`).

    A pattern that matches no prunable weight is an error, so a typo cannot silently prune a layer
    the config meant to keep.
    """
    names = prunable_names(model)
    for pattern in unpruned:
        if not fnmatch.filter(names, pattern):
            raise ConfigError(f"unpruned pattern {pattern!r} matches no prunable weight of "
                              f"{getattr(model, 'name', 'the model')}; its prunable weights are e.g. {names[:3]} ... {names[-1:]}")
    return [n for n in names if not any(fnmatch.fnmatch(n, p) for p in unpruned)]


def imp_sparsity(level: int, fraction: float) -> float:
    """The nominal sparsity after `level` rounds of IMP."""
    return 1.0 - (1.0 - fraction) ** level


def keep_top(scores: dict[str, Tensor], keep: int) -> Mask:
    """Keep the `keep` highest scores over all layers together (ties broken by position): the one
    global selection that IMP and every score-based baseline share."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().flatten().float().cpu() for n in names])
    if not 0 <= keep <= flat.numel():
        raise ConfigError(f"cannot keep {keep} of {flat.numel()} weights")
    order = torch.argsort(flat, descending=True, stable=True)
    kept = torch.zeros(flat.numel(), dtype=torch.bool)
    kept[order[:keep]] = True
    out, offset = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = kept[offset:offset + size].view(scores[n].shape)
        offset += size
    return Mask(out)


@torch.no_grad()
def global_magnitude(weights: dict[str, Tensor], mask: Mask, fraction: float) -> Mask:
    """Prune `fraction` of the weights `mask` still keeps, smallest |w| first, ranked globally."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"pruning fraction must be in [0, 1), got {fraction}")
    # Already pruned weights score -inf: never kept again, never counted twice.
    scores = {n: weights[n].detach().abs().float().cpu().masked_fill(~mask[n], float("-inf")) for n in mask}
    return keep_top(scores, mask.remaining - round(fraction * mask.remaining))
