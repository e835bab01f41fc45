"""The mask type: which weights of a model survive pruning.

A `Mask` maps parameter names to boolean tensors of the same shapes. Only the prunable weights
(conv and linear weights, minus configured exclusions) have entries; every other tensor is dense.
Sparsity is measured two ways (`SPARSITY_CONVENTIONS`): `sparsity`, over the masked (prunable)
weights, and `sparsity_all`, over every conv and linear weight, the layers left unpruned counted as
kept, which is what open_lth and the authors report. They differ only where a layer is left
unpruned (VGG's and the MLP's output layer in the paper's configs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from elth.errors import CheckpointError
from elth.models.registry import prunable_names

# What each sparsity a ticket's JSON and runs.csv carry measures, written into the ticket's JSON.
SPARSITY_CONVENTIONS = {
    "sparsity": "pruned share of the prunable weights: the conv and linear weights the mask covers, "
                "layers left unpruned (pruning.unpruned) excluded",
    "sparsity_all": "pruned share of all conv and linear weights, layers left unpruned counted as kept: "
                    "the sparsity open_lth and the authors report",
}

# Where a random control (a mask permuted within each layer: the `random` baseline, an ETT's
# ` - Random` replicas) starts. `rewind`: the dense rewind weights, as the paper words it ("keeps
# the rewinding weights"). `pruned`: the rewind weights times the IMP mask being permuted, as
# open_lth's randomly_prune and the authors' random-mask ETT load them from the level's saved
# pruned model, so every weight the permuted mask newly keeps starts at exactly 0.
RANDOM_STARTS = ("rewind", "pruned")


class Mask(Mapping[str, Tensor]):
    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        self._tensors = {name: t.detach().to(torch.bool) for name, t in tensors.items()}

    @classmethod
    def ones(cls, model: nn.Module, names: list[str]) -> Mask:
        params = dict(model.named_parameters())
        return cls({n: torch.ones_like(params[n], dtype=torch.bool) for n in names})

    def __getitem__(self, name: str) -> Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    @property
    def total(self) -> int:
        return sum(t.numel() for t in self._tensors.values())

    @property
    def remaining(self) -> int:
        return int(sum(int(t.sum()) for t in self._tensors.values()))

    @property
    def sparsity(self) -> float:
        """The fraction of masked weights that are pruned."""
        return 1.0 - self.remaining / self.total if self.total else 0.0

    def unmasked(self, model: nn.Module) -> int:
        """How many conv and linear weights of `model` the mask leaves out: the layers never pruned."""
        params = dict(model.named_parameters())
        return sum(params[n].numel() for n in prunable_names(model) if n not in self._tensors)

    def sparsity_all(self, model: nn.Module) -> float:
        """The fraction of all conv and linear weights of `model` that are pruned, the layers the mask
        leaves out counted as kept: the sparsity open_lth reports, equal to `sparsity` when nothing
        is left unpruned."""
        unmasked = self.unmasked(model)
        # `sparsity`'s very expression, so the two are the same float when nothing is left unpruned.
        total = self.total + unmasked
        return 1.0 - (self.remaining + unmasked) / total if total else 0.0

    def layer_sparsity(self) -> dict[str, float]:
        return {n: 1.0 - int(t.sum()) / t.numel() for n, t in self._tensors.items()}

    def summary(self, model: nn.Module) -> dict:
        """What a ticket's JSON records: the sparsity in both conventions (named in the JSON), the
        counts behind them, and each masked layer's sparsity."""
        return {"sparsity": self.sparsity, "sparsity_all": self.sparsity_all(model), "remaining": self.remaining,
                "total": self.total, "total_all": self.total + self.unmasked(model),
                "sparsity_conventions": SPARSITY_CONVENTIONS, "layers": self.layer_sparsity()}

    def check(self, model: nn.Module, where: str = "mask") -> None:
        """Raise a clear error unless every entry names a parameter of `model` with its shape."""
        params = dict(model.named_parameters())
        for name, t in self._tensors.items():
            if name not in params:
                raise CheckpointError(f"{where}: entry {name!r} is not a parameter of {getattr(model, 'name', 'the model')}")
            if t.shape != params[name].shape:
                raise CheckpointError(f"{where}: entry {name!r} has shape {tuple(t.shape)} but the model's "
                                      f"parameter has {tuple(params[name].shape)}: the mask belongs to another model")

    @torch.no_grad()
    def apply_(self, model: nn.Module) -> None:
        """Zero every pruned weight of `model` in place."""
        params = dict(model.named_parameters())
        for name, t in self._tensors.items():
            params[name].mul_(t.to(device=params[name].device, dtype=params[name].dtype))

    def applied(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """`state` with every pruned weight zeroed (other tensors as they are): the state open_lth
        saves for a level's pruned model, which its random controls start from."""
        return {k: v * self[k].to(v.device) if k in self._tensors else v for k, v in state.items()}

    def to_dict(self) -> dict[str, Tensor]:
        return dict(self._tensors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask) or set(self) != set(other):
            return False
        return all(torch.equal(self[n], other[n].to(self[n].device)) for n in self)
