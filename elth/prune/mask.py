"""The mask type: which weights of a model survive pruning.

A `Mask` maps parameter names to boolean tensors of the same shapes. Only the prunable weights
(conv and linear weights, minus configured exclusions) have entries; every other tensor is dense.
Sparsity is always measured over the masked weights, as open_lth and the paper report it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from elth.errors import CheckpointError


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

    def layer_sparsity(self) -> dict[str, float]:
        return {n: 1.0 - int(t.sum()) / t.numel() for n, t in self._tensors.items()}

    def summary(self) -> dict:
        """What a ticket's JSON records: global and per-layer sparsity, and the counts behind them."""
        return {"sparsity": self.sparsity, "remaining": self.remaining, "total": self.total,
                "layers": self.layer_sparsity()}

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

    def to_dict(self) -> dict[str, Tensor]:
        return dict(self._tensors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask) or set(self) != set(other):
            return False
        return all(torch.equal(self[n], other[n].to(self[n].device)) for n in self)
