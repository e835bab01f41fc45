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
  `imagenet-resnet-2-3-4-3`: torchvision's ResNet of BasicBlocks (family `imagenet-resnet`).
- `imagenet-resnet50`, `imagenet-resnet101`, `imagenet-resnet152`, or any block config such as
  `imagenet-bottleneck-3-4-8-3`: torchvision's ResNet of Bottlenecks (family `imagenet-bottleneck`;
  a ticket never moves between the two block types).
- `vit-d<depth>-w<width>-p<patch>` and `vit-d<depth>-w<width>-p<patch>-h<heads>`: a Vision
  Transformer (elth/models/vit.py) of `depth` encoder layers of hidden width `width` on patches of
  `patch` x `patch` pixels, with `heads` attention heads (default width / 32: heads of 32
  dimensions) and an MLP of 4 x width; `vit-b16` is torchvision's ViT-B/16 (12 layers, width 768,
  12 heads, MLP 3072, patch 16). The image size is the dataset's.
- `<family>-<units>-<units>...`: a model of a family of the user's own module, one unit count per
  stage its declaration names (elth/models/user.py; `tiny-2-3`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from elth.errors import ConfigError
from elth.models import user

# Conv widths per stage (between poolings) of each VGG depth, as in open_lth's CIFAR VGG.
VGG_PLANS: dict[int, tuple[tuple[int, ...], ...]] = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}
VGG_DEPTHS = tuple(VGG_PLANS)
IMAGENET_ALIASES = {18: (2, 2, 2, 2), 26: (2, 3, 4, 3), 34: (3, 4, 6, 3)}
BOTTLENECK_ALIASES = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXAMPLES = ("resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet20-w2", "vgg13", "vgg16",
            "vgg19", "vgg13-fc3", "mlp2", "imagenet-resnet18", "imagenet-resnet-2-3-4-3",
            "imagenet-resnet50", "imagenet-bottleneck-3-4-6-3", "vit-d4-w64-p7", "vit-b16")

_CIFAR_RESNET = re.compile(r"resnet(\d+)(?:-w(\d+(?:\.\d+)?))?")
_VGG = re.compile(r"vgg(\d+)(?:-fc(\d+))?")
_MLP = re.compile(r"mlp(\d+)")
_IMAGENET = re.compile(r"imagenet-resnet(?:(\d+)|-(\d+)-(\d+)-(\d+)-(\d+))")
_BOTTLENECK = re.compile(r"imagenet-bottleneck-(\d+)-(\d+)-(\d+)-(\d+)")
_VIT = re.compile(r"vit-d(\d+)-w(\d+)-p(\d+)(?:-h(\d+))?")
VIT_ALIASES = {"vit-b16": (12, 768, 16, 12, 3072)}  # torchvision's vit_b_16: depth, width, patch, heads, MLP


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
        if m[1] is None:
            return _imagenet(name, "imagenet-resnet", tuple(int(b) for b in m.groups()[1:]))
        depth = int(m[1])
        if depth in BOTTLENECK_ALIASES:
            return _imagenet(name, "imagenet-bottleneck", BOTTLENECK_ALIASES[depth])
        if depth not in IMAGENET_ALIASES:
            raise ConfigError(
                f"model {name!r}: known ImageNet depths are {sorted(IMAGENET_ALIASES)} (BasicBlock) and "
                f"{sorted(BOTTLENECK_ALIASES)} (Bottleneck); give any other as a block config, e.g. "
                "imagenet-resnet-2-3-4-3 or imagenet-bottleneck-3-4-8-3"
            )
        return _imagenet(name, "imagenet-resnet", IMAGENET_ALIASES[depth])
    if m := _BOTTLENECK.fullmatch(name):
        return _imagenet(name, "imagenet-bottleneck", tuple(int(b) for b in m.groups()))
    if name in VIT_ALIASES:
        return ModelSpec(name, "vit", VIT_ALIASES[name])
    if m := _VIT.fullmatch(name):
        return _vit(name, *(int(g) if g else None for g in m.groups()))
    if (declared := user.parse(name)) is not None:  # a family of the user's own (elth/models/user.py)
        return ModelSpec(name, declared[0].name, (declared[1],))
    near = difflib.get_close_matches(name, EXAMPLES, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ConfigError(f"unknown model {name!r}.{hint} Known forms: {', '.join(EXAMPLES)}")


def _imagenet(name: str, family: str, blocks: tuple[int, ...]) -> ModelSpec:
    if min(blocks) < 1:
        raise ConfigError(f"model {name!r}: every stage needs at least one block")
    return ModelSpec(name, family, (blocks,))


def _vit(name: str, depth: int, hidden: int, patch: int, heads: int | None) -> ModelSpec:
    """(depth, width, patch, heads, MLP width) of a ViT name, heads of 32 dimensions unless given."""
    if min(depth, hidden, patch) < 1 or heads == 0:
        raise ConfigError(f"model {name!r}: depth, width, patch and heads must be positive")
    if heads is None:
        if hidden % 32:
            raise ConfigError(f"model {name!r}: width {hidden} is not a multiple of 32, the default head size; "
                              f"name the heads, e.g. {name}-h{next(h for h in range(8, 0, -1) if hidden % h == 0)}")
        heads = hidden // 32
    if hidden % heads:
        raise ConfigError(f"model {name!r}: width {hidden} does not split into {heads} heads; "
                          "pick heads that divide the width")
    return ModelSpec(name, "vit", (depth, hidden, patch, heads, 4 * hidden))


def family_of(name: str) -> str:
    return parse(name).family


def layout(name: str) -> tuple[tuple[bool, ...], ...]:
    """Per stage, which units are fixed (True) or elastic (False): the model's elastic structure
    without building it, so that the DAG can check a transformation before any job runs. It
    equals `[[u.fixed for u in s.units] for s in model.structure.stages]` (a test pins this)."""
    if (declared := user.parse(name)) is not None:
        return declared[0].layout(declared[1])
    spec = parse(name)
    def stage(n: int, first_fixed: bool = True) -> tuple[bool, ...]:
        return tuple(first_fixed and i == 0 for i in range(n))
    if spec.family == "cifar-resnet":
        return (stage((spec.args[0] - 2) // 6),) * 3
    if spec.family in ("imagenet-resnet", "imagenet-bottleneck"):
        return tuple(stage(b) for b in spec.args[0])
    if spec.family == "vgg":
        depth, fc = spec.args
        return tuple(stage(len(widths)) for widths in VGG_PLANS[depth]) + (stage(fc - 1, first_fixed=False),)
    if spec.family == "vit":
        return (stage(spec.args[0], first_fixed=False),)
    return (stage(spec.args[0]),)


def width(name: str) -> float:
    """The width multiplier (a ViT's: its hidden width): depth transformations keep it, width
    transformations change it."""
    spec = parse(name)
    return spec.args[1] if spec.family in ("cifar-resnet", "vit") else 1.0


def check_pair(source: str, target: str) -> None:
    """Refuse a transformation between two ViTs that differ in more than depth: width, patch, heads
    or MLP width change the shape of every tensor, and elth has no width transformation for
    attention (binary splitting would mix the query, key and value blocks of `in_proj_weight`).
    Other families are left to the spec's own checks (elth.transform.spec)."""
    a, b = parse(source), parse(target)
    if a.family == b.family == "vit" and a.args[1:] != b.args[1:]:
        what = ", ".join(f"{k} {x} vs {y}" for k, x, y in zip(("width", "patch", "heads", "MLP width"), a.args[1:], b.args[1:])
                         if x != y)
        raise ConfigError(f"cannot transform {source} into {target}: they differ in {what}; a ViT ticket moves only "
                          "between depths of one width, patch size and head count")


def check_image_size(name: str, image_size: int) -> None:
    """A ViT's patches must tile the dataset's images."""
    spec = parse(name)
    if spec.family == "vit" and image_size % spec.args[2]:
        fits = [p for p in range(1, image_size + 1) if image_size % p == 0]
        raise ConfigError(f"model {name!r}: patch {spec.args[2]} does not tile the dataset's {image_size}x{image_size} "
                          f"images; pick a patch that divides {image_size} ({', '.join(map(str, fits))})")
