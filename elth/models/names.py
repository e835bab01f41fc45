"""Model names: what a name says (family, depth, width), parsed without importing torch.

The DAG validates every model of a config before any job starts, so this module stays free of
torch, which costs seconds to import.

Names:
- `resnet<N>` and `resnet<N>-w<k>`: CIFAR ResNet with N = 6n+2 (8, 14, 20, 32, 44, 56, 110, ...),
  base widths 16/32/64 times k (`resnet20-w2` is Table 5's ResNet-20 Wx2; `resnet14-w0.5` is 8/16/32).
- `vgg<N>` and `vgg<N>-fc<k>`: VGG-11/13/16/19 with k linear layers on top (default 1; Table 3's
  VGG-13-2/3/5 are `vgg13-fc2`, `vgg13-fc3`, `vgg13-fc5`).
- `mlp<n>`: widths {in, 300 x n, 100, classes}.
- `imagenet-resnet18`, `imagenet-resnet26`, `imagenet-resnet34`, or any block config such as
  `imagenet-resnet-2-3-4-3`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from elth.errors import ConfigError

# Conv widths per stage (between poolings) of each VGG depth, as in open_lth's CIFAR VGG.
VGG_PLANS: dict[int, tuple[tuple[int, ...], ...]] = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}
VGG_DEPTHS = tuple(VGG_PLANS)
IMAGENET_ALIASES = {18: (2, 2, 2, 2), 26: (2, 3, 4, 3), 34: (3, 4, 6, 3)}
EXAMPLES = ("resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet20-w2", "vgg13", "vgg16",
            "vgg19", "vgg13-fc3", "mlp2", "imagenet-resnet18", "imagenet-resnet-2-3-4-3")

_CIFAR_RESNET = re.compile(r"resnet(\d+)(?:-w(\d+(?:\.\d+)?))?")
_VGG = re.compile(r"vgg(\d+)(?:-fc(\d+))?")
_MLP = re.compile(r"mlp(\d+)")
_IMAGENET = re.compile(r"imagenet-resnet(?:(\d+)|-(\d+)-(\d+)-(\d+)-(\d+))")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name: enough to build the model and to group it with its family."""

    name: str
    family: str
    args: tuple


def parse(name: str) -> ModelSpec:
    """Parse a model name, or raise a ConfigError that says what is wrong and what would work."""
    if m := _CIFAR_RESNET.fullmatch(name):
        depth, width = int(m[1]), float(m[2] or 1)
        if depth < 8 or (depth - 2) % 6:
            ok = ", ".join(str(6 * n + 2) for n in range(1, 10))
            raise ConfigError(f"model {name!r}: a CIFAR ResNet has depth 6n+2 ({ok}, ...), not {depth}")
        if width <= 0:
            raise ConfigError(f"model {name!r}: the width multiplier must be positive")
        return ModelSpec(name, "cifar-resnet", (depth, width))
    if m := _VGG.fullmatch(name):
        depth, fc = int(m[1]), int(m[2] or 1)
        if depth not in VGG_DEPTHS:
            raise ConfigError(f"model {name!r}: VGG depth must be one of {list(VGG_DEPTHS)}")
        if fc < 1:
            raise ConfigError(f"model {name!r}: a VGG needs at least one linear layer (-fc1)")
        return ModelSpec(name, "vgg", (depth, fc))
    if m := _MLP.fullmatch(name):
        if int(m[1]) < 1:
            raise ConfigError(f"model {name!r}: an MLP needs at least one 300-wide layer (mlp1)")
        return ModelSpec(name, "mlp", (int(m[1]),))
    if m := _IMAGENET.fullmatch(name):
        if m[1] is not None:
            if int(m[1]) not in IMAGENET_ALIASES:
                raise ConfigError(
                    f"model {name!r}: known ImageNet depths are {sorted(IMAGENET_ALIASES)}; "
                    "give any other as a block config, e.g. imagenet-resnet-2-3-4-3"
                )
            blocks = IMAGENET_ALIASES[int(m[1])]
        else:
            blocks = tuple(int(b) for b in m.groups()[1:])
        if min(blocks) < 1:
            raise ConfigError(f"model {name!r}: every stage needs at least one block")
        return ModelSpec(name, "imagenet-resnet", (blocks,))
    near = difflib.get_close_matches(name, EXAMPLES, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ConfigError(f"unknown model {name!r}.{hint} Known forms: {', '.join(EXAMPLES)}")


def family_of(name: str) -> str:
    return parse(name).family


def layout(name: str) -> tuple[tuple[bool, ...], ...]:
    """Per stage, which units are fixed (True) or elastic (False): the model's elastic structure
    without building it, so that the DAG can check a transformation before any job runs. It
    equals `[[u.fixed for u in s.units] for s in model.structure.stages]` (a test pins this)."""
    spec = parse(name)
    def stage(n: int, first_fixed: bool = True) -> tuple[bool, ...]:
        return tuple(first_fixed and i == 0 for i in range(n))
    if spec.family == "cifar-resnet":
        return (stage((spec.args[0] - 2) // 6),) * 3
    if spec.family == "imagenet-resnet":
        return tuple(stage(b) for b in spec.args[0])
    if spec.family == "vgg":
        depth, fc = spec.args
        return tuple(stage(len(widths)) for widths in VGG_PLANS[depth]) + (stage(fc - 1, first_fixed=False),)
    return (stage(spec.args[0]),)


def width(name: str) -> float:
    """The width multiplier: depth transformations keep it, width transformations change it."""
    spec = parse(name)
    return spec.args[1] if spec.family == "cifar-resnet" else 1.0
