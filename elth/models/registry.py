"""Build a model by name for a dataset's shape, and name its prunable weights."""

from __future__ import annotations

import torch
from torch import nn

from elth.errors import ConfigError
from elth.models.init import initialize
from elth.models.mlp import MLP
from elth.models.names import parse
from elth.models.resnet import CifarResNet, ImageNetResNet
from elth.models.vgg import VGG


def build(name: str, in_channels: int, num_classes: int, in_features: int | None = None, seed: int | None = None) -> nn.Module:
    """Build a model by name; with `seed`, initialise it as open_lth does from that seed alone.

    `in_features` (channels x height x width) is needed by the MLP only.
    """
    spec = parse(name)
    if spec.family == CifarResNet.family:
        model: nn.Module = CifarResNet(*spec.args, in_channels=in_channels, num_classes=num_classes)
    elif spec.family == VGG.family:
        model = VGG(*spec.args, in_channels=in_channels, num_classes=num_classes)
    elif spec.family == MLP.family:
        if in_features is None:
            raise ConfigError(f"model {name!r}: an MLP needs the input size (in_features)")
        model = MLP(*spec.args, in_features=in_features, num_classes=num_classes)
    else:
        model = ImageNetResNet(*spec.args, in_channels=in_channels, num_classes=num_classes)
    model.name = name
    if seed is not None:
        initialize(model, torch.Generator().manual_seed(seed))
    return model


def prunable_names(model: nn.Module) -> list[str]:
    """The weights IMP may prune: those of every Conv2d and Linear layer, never biases or BN."""
    return [f"{name}.weight" for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]
