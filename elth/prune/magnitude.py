"""Global magnitude pruning, the step of IMP (Frankle & Carbin 2019; Frankle et al. 2020).

Each round removes the still-unpruned weights with the smallest magnitude, ranked over all
prunable layers together, ties broken by position. How many a round removes is the `count` rule
(config key `pruning.count`, see `prune_count`): `nearest`, elth's default, removes `fraction` of the
remaining prunable weights rounded to the nearest weight, so the sparsity of the prunable weights
after k rounds is 1 - (1 - fraction)^k up to rounding (73.79% after 6 rounds of 20%, 89.26% after
10); `open_lth`, the authors' rule, also counts the layers left unpruned and removes one weight more,
so it is the sparsity of all conv and linear weights that follows that law.
"""

from __future__ import annotations

import fnmatch
import math

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
    """The nominal sparsity after `level` rounds of IMP, 1 - (1 - fraction)^level: that of the prunable
    weights (`Mask.sparsity`) under the `nearest` count, that of all conv and linear weights
    (`Mask.sparsity_all`) under `open_lth`, both up to the rounding of each round's count."""
    return 1.0 - (1.0 - fraction) ** level


COUNTS = ("nearest", "open_lth")


def prune_count(remaining: int, fraction: float, count: str = "nearest", unmasked: int = 0) -> int:
    """How many of the `remaining` kept prunable weights one IMP round removes, by the `count` rule.

    `nearest` (elth's default): round(fraction x remaining), the count that makes the prunable weights'
    sparsity follow 1 - (1 - fraction)^k most closely.

    `open_lth`: the rule of open_lth's `pruning/sparse_global.py`, unchanged in the authors' ElasticLTH
    fork. Its mask holds every conv and linear weight, the layers it never prunes (VGG's and the MLP's
    output `fc.weight`) as ones, so `n = ceil(fraction x (remaining + unmasked))`, `unmasked` being the
    weights of those layers. It then removes every prunable weight with |w| <= the n-th smallest kept
    magnitude (0-based): n + 1 weights when the magnitudes are distinct. A weight tied with that
    threshold would be removed there too, however many there are; elth removes exactly n + 1, ties
    broken by position. The two differ only on equal magnitudes, which trained float weights have with
    probability zero.
    """
    if count == "nearest":
        return round(fraction * remaining)
    if count != "open_lth":
        raise ConfigError(f"pruning count must be one of {', '.join(COUNTS)}, got {count!r}")
    # The same float64 product open_lth's numpy takes the ceiling of, so the counts agree exactly.
    removed = math.ceil(fraction * (remaining + unmasked)) + 1
    if removed > remaining:
        raise ConfigError(f"the open_lth count would remove {removed} weights but only {remaining} prunable weights "
                          "remain (open_lth's threshold index runs past its weights here); prune fewer levels")
    return removed


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
def global_magnitude(weights: dict[str, Tensor], mask: Mask, fraction: float, count: str = "nearest",
                     unmasked: int = 0) -> Mask:
    """Prune the weights `mask` still keeps, smallest |w| first, ranked globally: as many as
    `prune_count` gives for `fraction` (`unmasked`: the conv and linear weights outside the mask,
    which the `open_lth` count counts as remaining)."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"pruning fraction must be in [0, 1), got {fraction}")
    # Already pruned weights score -inf: never kept again, never counted twice.
    scores = {n: weights[n].detach().abs().float().cpu().masked_fill(~mask[n], float("-inf")) for n in mask}
    return keep_top(scores, mask.remaining - prune_count(mask.remaining, fraction, count, unmasked))
