"""ResNets: the CIFAR family (ResNet-6n+2, He et al. 2016), the ImageNet family of BasicBlocks
(ResNet-18/34) and the ImageNet family of Bottlenecks (ResNet-50/101/152).

The blocks have torchvision's architecture and tensor names (`layer2.0.conv1.weight`,
`layer2.0.downsample.0.weight`; a Bottleneck adds `conv3`/`bn3`), written here so that no job
imports torchvision for a model (it costs about 1.9 s per process); tests check that every model
equals the torchvision-built one tensor for tensor and output for output. BasicBlock and Bottleneck
ResNets are two families: a block of one has no counterpart tensor in the other, so no ticket moves
between them. One structure function serves all three: stage i is `layer{i}`, its unit j is block
`layer{i}.{j}`, and block 0 of every stage is fixed (it downsamples or changes the width; the paper
keeps it in every transformation).
"""

from __future__ import annotations

from torch import Tensor, nn

from elth.models.structure import ElasticStructure, Stage, Unit


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN, and the input (or its 1x1-conv projection) added before the last ReLU.
    The submodules are registered in torchvision's order, so a seeded initialisation draws the same
    numbers in the same order as for torchvision's block."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """A 1x1 conv down to `planes` channels, a 3x3 conv (which carries the stride, as torchvision's
    "ResNet v1.5"), a 1x1 conv up to 4 x `planes`, each with BN, and the input (or its 1x1-conv
    projection) added before the last ReLU. The submodules are registered in torchvision's order, so
    a seeded initialisation draws the same numbers in the same order as for torchvision's block."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


Block = type[BasicBlock] | type[Bottleneck]


def _stage(block: Block, inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """torchvision's `ResNet._make_layer`: block 0 takes `inplanes` channels (projected by a 1x1 conv
    with BN where the stride or the channels change), every later block its output's."""
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out)
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(out, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def resnet_structure(model: nn.Module, family: str) -> ElasticStructure:
    stages = []
    for name, child in model.named_children():
        if name.startswith("layer") and isinstance(child, nn.Sequential):
            units = tuple(Unit(f"{name}.{j}.", fixed=(j == 0)) for j in range(len(child)))
            stages.append(Stage(name, units))
    return ElasticStructure(family, tuple(stages))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: a 3x3 stem, three stages of n blocks at widths 16/32/64
    times `width`, global average pooling and one linear layer. Shortcuts that change shape are a
    1x1 conv with BN, as in open_lth (which the paper's code builds on)."""

    family = "cifar-resnet"

    def __init__(self, depth: int, width: float, in_channels: int, num_classes: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        widths = [max(1, round(w * width)) for w in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _stage(BasicBlock, widths[0], widths[0], n, stride=1)
        self.layer2 = _stage(BasicBlock, widths[0], widths[1], n, stride=2)
        self.layer3 = _stage(BasicBlock, widths[1], widths[2], n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))

    @property
    def structure(self) -> ElasticStructure:
        return resnet_structure(self, self.family)


class ImageNetResNet(nn.Module):
    """torchvision's ImageNet ResNet with BasicBlocks and any per-stage block counts (2-2-2-2 is
    ResNet-18, 2-3-4-3 the paper's ResNet-26, 3-4-6-3 ResNet-34): a 7x7 stride-2 stem and a 3x3
    max-pool, four stages at widths 64-512 (times the block's expansion), global average pooling
    and one linear layer."""

    family = "imagenet-resnet"
    block: Block = BasicBlock

    def __init__(self, blocks: tuple[int, int, int, int], in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        for i, (n, planes) in enumerate(zip(blocks, widths)):
            inplanes = widths[i - 1] * self.block.expansion if i else 64
            self.add_module(f"layer{i + 1}", _stage(self.block, inplanes, planes, n, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * self.block.expansion, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

    @property
    def structure(self) -> ElasticStructure:
        return resnet_structure(self, self.family)


class BottleneckResNet(ImageNetResNet):
    """torchvision's ImageNet ResNet with Bottlenecks and any per-stage block counts (3-4-6-3 is
    ResNet-50, 3-4-23-3 ResNet-101, 3-8-36-3 ResNet-152): stages at widths 256-2048. A family of
    its own: its blocks' tensors (three convs, 4x wider outputs) have no counterpart in a BasicBlock's."""

    family = "imagenet-bottleneck"
    block: Block = Bottleneck
