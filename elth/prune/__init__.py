"""Masks and pruning: the `Mask` type and the pruning methods that produce masks."""

from elth.prune.magnitude import global_magnitude, imp_sparsity, prunable
from elth.prune.mask import Mask

__all__ = ["Mask", "global_magnitude", "imp_sparsity", "prunable"]
