"""VGG-11/13/16/19 for 32x32 inputs, as in open_lth's CIFAR VGG, with an optional FC head.

Conv layers are 3x3 conv + BN + ReLU; a max-pool closes each of the first four stages and global
average pooling the last. `fc_layers` counts the linear layers of the head: 1 (open_lth's and the
paper's code's default, the one Figs 1 and 6 train) is the output layer alone; VGG-13-2/3/5 of
Table 3 put 1, 2 or 4 hidden 512-wide layers before it.

Elastic structure: one stage per pooling block, whose first conv is fixed (it follows the
downsampling and may change the width, like a ResNet stage's block 0), and a last stage of the
hidden linear layers, all replicable (they are square).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from elth.models.names import VGG_PLANS
from elth.models.structure import ElasticStructure, Stage, Unit


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    family = "vgg"

    def __init__(self, depth: int, fc_layers: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        stages = []
        cin = in_channels
        for widths in VGG_PLANS[depth]:
            layers = []
            for cout in widths:
                layers.append(ConvBN(cin, cout))
                cin = cout
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.ModuleList(nn.Linear(cin, cin) for _ in range(fc_layers - 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            x = stage(x)
            x = F.max_pool2d(x, 2) if i < last else F.adaptive_avg_pool2d(x, 1)
        x = x.flatten(1)
        for layer in self.classifier:
            x = F.relu(layer(x))
        return self.fc(x)

    @property
    def structure(self) -> ElasticStructure:
        stages = [
            Stage(f"stages.{s}", tuple(Unit(f"stages.{s}.{j}.", fixed=(j == 0)) for j in range(len(stage))))
            for s, stage in enumerate(self.stages)
        ]
        stages.append(Stage("classifier", tuple(Unit(f"classifier.{j}.", fixed=False) for j in range(len(self.classifier)))))
        return ElasticStructure(self.family, tuple(stages))
