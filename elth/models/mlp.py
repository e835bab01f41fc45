"""MLP-n of the paper's Table 3: layer widths {in, 300 x n, 100, classes} (MLP-1 is LeNet-300-100).

Elastic structure: one stage of the 300-wide layers. The first (input to 300) is fixed since it
changes the width; the n-1 square 300x300 layers after it are the ones a transformation
replicates or drops. The 300-to-100 `neck` and the output `fc` are shared.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from elth.models.structure import ElasticStructure, Stage, Unit


class MLP(nn.Module):
    family = "mlp"

    def __init__(self, hidden_layers: int, in_features: int, num_classes: int) -> None:
        super().__init__()
        widths = [in_features] + [300] * hidden_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.neck = nn.Linear(300, 100)
        self.fc = nn.Linear(100, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.fc(F.relu(self.neck(x)))

    @property
    def structure(self) -> ElasticStructure:
        units = tuple(Unit(f"hidden.{j}.", fixed=(j == 0)) for j in range(len(self.hidden)))
        return ElasticStructure(self.family, (Stage("hidden", units),))
