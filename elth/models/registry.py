"""Build a model by name for a dataset's shape, and name its prunable weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from elth.errors import ConfigError
from elth.models.init import initialize
from elth.models.mlp import MLP
from elth.models.names import parse
from elth.models import user, user_module
from elth.models.resnet import BottleneckResNet, CifarResNet, ImageNetResNet
from elth.models.vgg import VGG
from elth.models.vit import VisionTransformer


def build(name: str, in_channels: int, num_classes: int, in_features: int | None = None, seed: int | None = None) -> nn.Module:
    """Build a model by name; with `seed`, initialise it as open_lth does from that seed alone.

    `in_features` (channels x height x width) is needed by the MLP, and by a ViT, whose position
    embedding has one entry per patch of the (square) image: its side is sqrt(in_features / in_channels).
    """
    spec = parse(name)
    if (declared := user.parse(name)) is not None:  # the user's own module: its own initialisation
        return user_module.build(declared[0], name, declared[1], in_channels, num_classes, in_features, seed)
    if spec.family == CifarResNet.family:
        model: nn.Module = CifarResNet(*spec.args, in_channels=in_channels, num_classes=num_classes)
    elif spec.family == VGG.family:
        model = VGG(*spec.args, in_channels=in_channels, num_classes=num_classes)
    elif spec.family == MLP.family:
        if in_features is None:
            raise ConfigError(f"model {name!r}: an MLP needs the input size (in_features)")
        model = MLP(*spec.args, in_features=in_features, num_classes=num_classes)
    elif spec.family == VisionTransformer.family:
        if in_features is None:
            raise ConfigError(f"model {name!r}: a ViT needs the input size (in_features)")
        model = VisionTransformer(*spec.args, in_channels=in_channels, num_classes=num_classes,
                                  image_size=math.isqrt(in_features // in_channels))
    elif spec.family == BottleneckResNet.family:
        model = BottleneckResNet(*spec.args, in_channels=in_channels, num_classes=num_classes)
    else:
        model = ImageNetResNet(*spec.args, in_channels=in_channels, num_classes=num_classes)
    model.name = name
    if seed is not None:
        initialize(model, torch.Generator().manual_seed(seed))
    return model


def prunable_names(model: nn.Module) -> list[str]:
    """The weights IMP may prune: those of every Conv2d and Linear layer and attention's query, key and
    value projection (`in_proj_weight`, one parameter, not an nn.Linear; its output projection is
    one), never biases, BN, LayerNorm, embeddings or tokens; for a user's module that declares its prunable
    weights (elth/models/user.py), those."""
    if hasattr(model, "prunable_weights"):
        return list(model.prunable_weights)
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            names.append(f"{name}.in_proj_weight")
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            names.append(f"{name}.weight")
    return names
