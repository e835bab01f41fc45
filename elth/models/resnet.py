"""ResNets: the CIFAR family (ResNet-6n+2, He et al. 2016) and the ImageNet family (BasicBlock).

Both families are built of one `BasicBlock` with torchvision's architecture and tensor names
(`layer2.0.conv1.weight`, `layer2.0.downsample.0.weight`), written here so that no job imports
torchvision for a model (it costs about 1.9 s per process); a test checks that every model equals
the torchvision-built one tensor for tensor and output for output. One structure function serves
both families: stage i is `layer{i}`, its unit j is block `layer{i}.{j}`, and block 0 of every stage
is fixed (it downsamples or changes the width; the paper keeps it in every transformation).
"""

from __future__ import annotations

from torch import Tensor, nn

from elth.models.structure import ElasticStructure, Stage, Unit


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN, and the input (or its 1x1-conv projection) added before the last ReLU.
    The submodules are registered in torchvision's order, so a seeded initialisation draws the same
    numbers in the same order as for torchvision's block."""

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


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
        )
    layers = [BasicBlock(inplanes, planes, stride, downsample)]
    layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
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
        self.layer1 = _stage(widths[0], widths[0], n, stride=1)
        self.layer2 = _stage(widths[0], widths[1], n, stride=2)
        self.layer3 = _stage(widths[1], widths[2], n, stride=2)
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
    max-pool, four stages at widths 64-512, global average pooling and one linear layer."""

    family = "imagenet-resnet"

    def __init__(self, blocks: tuple[int, int, int, int], in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        for i, (n, planes) in enumerate(zip(blocks, widths)):
            inplanes = widths[i - 1] if i else 64
            self.add_module(f"layer{i + 1}", _stage(inplanes, planes, n, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

    @property
    def structure(self) -> ElasticStructure:
        return resnet_structure(self, self.family)
