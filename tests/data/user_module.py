"""A user's own module, as a user would write it, knowing nothing of elth: two stages of residual blocks.

`build(units, ...)` makes a network with `units[s]` blocks in stage s, under the prefixes `stage1.{j}.` and
`stage2.{j}.`; block 0 of stage 2 halves the resolution and doubles the width, which is why the tests declare
unit 0 of every stage fixed. tests/test_user_module.py declares it as a family and moves tickets between depths.
"""

from __future__ import annotations

from torch import Tensor, nn


class Block(nn.Module):
    """A 3x3 conv with BN and a residual connection (a 1x1 projection where the shape changes)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(planes)
        self.shortcut = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False) if stride != 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return (self.bn(self.conv(x)) + self.shortcut(x)).relu()


class TinyNet(nn.Module):
    def __init__(self, units: tuple[int, int], in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.stage1 = nn.Sequential(*(Block(width, width) for _ in range(units[0])))
        self.stage2 = nn.Sequential(*(Block(width if j == 0 else 2 * width, 2 * width, 2 if j == 0 else 1)
                                      for j in range(units[1])))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage2(self.stage1(self.stem(x).relu()))
        return self.head(x.mean((2, 3)))


def build(units: tuple[int, int], in_channels: int, num_classes: int, in_features: int | None = None,
          width: int = 4) -> TinyNet:
    return TinyNet(units, in_channels, num_classes, width)
