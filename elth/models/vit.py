"""Vision Transformers (Dosovitskiy et al. 2021) with the state-dict layout of torchvision's
`VisionTransformer`, written here so that no job imports torchvision for a model.

The tensor names are torchvision's (`conv_proj`, `class_token`, `encoder.pos_embedding`,
`encoder.layers.encoder_layer_{i}.ln_1` / `self_attention` / `ln_2` / `mlp.0` / `mlp.3`,
`encoder.ln`, `heads.head`), so a torchvision `vit_b_16` state dict loads into `vit-b16` strictly;
the patch embedding takes the dataset's channels (torchvision's fixes 3), and the image size is
the dataset's. Attention is torch's `nn.MultiheadAttention`, as in torchvision: its query, key and
value projections are one parameter, `in_proj_weight`, not an `nn.Linear`.

Elastic structure: one stage, whose units are the encoder layers. Every layer maps width to the
same width, so all of them are elastic (none downsamples or changes the width, which is what fixes
a ResNet's block 0); each layer's two LayerNorms lie under its prefix and travel with it. The patch
embedding, class token, position embedding, final LayerNorm and head are shared.

Initialisation (`initialize`, drawn from one generator so a model is a function of its seed) is
torchvision's, with one exception: patch embedding truncated normal with std sqrt(1 / fan_in) and
zero bias; class token zero; position embedding normal with std 0.02; LayerNorms one and zero;
attention's `in_proj_weight` Xavier-uniform and its biases zero, `out_proj.weight` nn.Linear's
default law U(-1/sqrt(width), 1/sqrt(width)), as nn.MultiheadAttention leaves it; MLP weights
Xavier-uniform, their biases normal with std 1e-6. The exception is the head: torchvision zeroes
it, which makes every gradient below it zero at initialisation, so SNIP, GraSP and SynFlow scoring
a ticket rewound to step 0 would see nothing but zeros. elth draws it as torchvision draws its
pre-logits layer, truncated normal with std sqrt(1 / fan_in), its bias zero.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from elth.errors import ConfigError
from elth.models.structure import ElasticStructure, Stage, Unit

LAYER_NORM_EPS = 1e-6  # torchvision's partial(nn.LayerNorm, eps=1e-6)


class EncoderBlock(nn.Module):
    """Pre-norm transformer layer: x + attention(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=LAYER_NORM_EPS)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=LAYER_NORM_EPS)
        # torchvision's MLP is Linear, GELU, Dropout, Linear, Dropout: slot 2 is its dropout (elth
        # trains without), kept so that the second linear layer is `mlp.3` as in its state dict.
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, mlp_dim), nn.GELU(), nn.Identity(), nn.Linear(mlp_dim, hidden_dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, seq_length, hidden_dim))
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim)) for i in range(num_layers)))
        self.ln = nn.LayerNorm(hidden_dim, eps=LAYER_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.ln(self.layers(x + self.pos_embedding))


class VisionTransformer(nn.Module):
    """Patch embedding (a conv of kernel and stride `patch_size`), a class token, `num_layers`
    encoder layers, a final LayerNorm, and a linear head on the class token."""

    family = "vit"

    def __init__(self, num_layers: int, hidden_dim: int, patch_size: int, num_heads: int, mlp_dim: int,
                 in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ConfigError(f"a ViT with patch {patch_size} needs an image size divisible by it, not {image_size}")
        self.patch_size, self.hidden_dim = patch_size, hidden_dim
        self.conv_proj = nn.Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.encoder = Encoder((image_size // patch_size) ** 2 + 1, num_layers, num_heads, hidden_dim, mlp_dim)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])

    @property
    def structure(self) -> ElasticStructure:
        units = tuple(Unit(f"encoder.layers.{name}.", fixed=False) for name, _ in self.encoder.layers.named_children())
        return ElasticStructure(self.family, (Stage("encoder", units),))

    @torch.no_grad()
    def initialize(self, generator: torch.Generator) -> None:
        """torchvision's laws (the head excepted, see the module docstring), in module order."""
        def lecun(weight: Tensor) -> None:
            nn.init.trunc_normal_(weight, std=math.sqrt(1.0 / weight[0].numel()), generator=generator)

        lecun(self.conv_proj.weight)
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.zeros_(self.class_token)
        nn.init.normal_(self.encoder.pos_embedding, std=0.02, generator=generator)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.encoder.layers:
            attention = block.self_attention
            nn.init.xavier_uniform_(attention.in_proj_weight, generator=generator)
            nn.init.zeros_(attention.in_proj_bias)
            bound = 1.0 / math.sqrt(attention.out_proj.in_features)
            nn.init.uniform_(attention.out_proj.weight, -bound, bound, generator=generator)
            nn.init.zeros_(attention.out_proj.bias)
            for linear in (block.mlp[0], block.mlp[3]):
                nn.init.xavier_uniform_(linear.weight, generator=generator)
                nn.init.normal_(linear.bias, std=1e-6, generator=generator)
        lecun(self.heads.head.weight)
        nn.init.zeros_(self.heads.head.bias)
