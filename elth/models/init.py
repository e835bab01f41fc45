"""Weight initialisation as open_lth does it, drawn from an explicit generator.

Conv and linear weights are Kaiming-normal, BN weights uniform on [0, 1) and BN biases zero, as in
the paper's code (open_lth's `kaiming_normal` with `batchnorm_init='uniform'`). Biases of conv and
linear layers keep PyTorch's default uniform law. Every draw comes from one seeded generator so a
model is a function of its seed alone, whatever else used the global RNG before.

A model whose family has laws of its own (a ViT: torchvision's, elth/models/vit.py) has an
`initialize(generator)` method, which is called instead.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def initialize(model: nn.Module, generator: torch.Generator) -> None:
    own = getattr(model, "initialize", None)
    if callable(own):
        own(generator)
        return
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, generator=generator)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in)
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.uniform_(module.weight, 0.0, 1.0, generator=generator)
                nn.init.zeros_(module.bias)
