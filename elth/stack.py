"""K models of one architecture as one module, so one process trains K tickets at once.

A GPU of the H100 class is mostly idle for one CIFAR ResNet at batch 128: each kernel is too small
to fill it, and launches dominate. Stacking K copies into one module gives kernels K times the
size. Every conv becomes a grouped conv with K groups (the K weight tensors concatenated along
the output channels), every BatchNorm one BatchNorm over K times the channels (its statistics are
per channel, so per copy), and every linear layer one batched matmul. Copy k reads channel
block k of the input and writes channel block k of every activation, so the copies never mix:
the stacked forward is the K forwards side by side, and the sum of the K losses has, for copy k's
weights, exactly copy k's gradient. SGD with momentum and weight decay acts elementwise, so a
stacked step is the K separate steps.

Parameter names are those of the single model; a stacked tensor is the K tensors stacked along a
new first axis and, for convs and BatchNorm, flattened into the channel axis. `stack_state` and
`unstack_state` convert state dicts (and masks) both ways by exactly that reshape.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from elth.errors import ConfigError


class StackedLinear(nn.Module):
    """K linear layers applied to K feature blocks: input (B, K*in), output (B, K*out)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers])) if layers[0].bias is not None else None

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        x = x.reshape(batch, self.k, -1).transpose(0, 1)
        out = torch.bmm(x, self.weight.transpose(1, 2))
        if self.bias is not None:
            out = out + self.bias.unsqueeze(1)
        return out.transpose(0, 1).reshape(batch, -1)


def _stack_conv(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    c = convs[0]
    k = len(convs)
    out = nn.Conv2d(c.in_channels * k, c.out_channels * k, c.kernel_size, c.stride, c.padding, c.dilation,
                    groups=c.groups * k, bias=c.bias is not None, padding_mode=c.padding_mode)
    return out.to(c.weight.device)


def _stack_bn(norms: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    b = norms[0]
    out = nn.BatchNorm2d(b.num_features * len(norms), b.eps, b.momentum, b.affine, b.track_running_stats)
    return out.to(b.running_mean.device if b.running_mean is not None else b.weight.device)


def stack_models(models: Sequence[nn.Module]) -> nn.Module:
    """One module computing `models` side by side (see the module docstring). The models must
    share one architecture; their parameters and buffers are copied into the stacked module."""
    if not models:
        raise ConfigError("stacking needs at least one model")
    names = [name for name, _ in models[0].named_modules()]
    for other in models[1:]:
        shapes = {k: v.shape for k, v in other.state_dict().items()}
        if [n for n, _ in other.named_modules()] != names or shapes != {k: v.shape for k, v in models[0].state_dict().items()}:
            raise ConfigError("only models of one architecture can be trained together")
    stacked = copy.deepcopy(models[0])
    for name, module in models[0].named_modules():
        parts = [m.get_submodule(name) for m in models]
        if isinstance(module, nn.Conv2d):
            replacement = _stack_conv(parts)
        elif isinstance(module, nn.BatchNorm2d):
            replacement = _stack_bn(parts)
        elif isinstance(module, nn.Linear):
            replacement = StackedLinear(parts)
        elif next(module.parameters(recurse=False), None) is not None:
            raise ConfigError(f"cannot stack {name} ({type(module).__name__}): elth stacks Conv2d, BatchNorm2d and Linear")
        else:
            continue
        stacked.set_submodule(name, replacement)
    stacked.load_state_dict(stack_state([m.state_dict() for m in models], stacked.state_dict()))
    return stacked


def stack_state(states: Sequence[Mapping[str, Tensor]], like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The K states as one state with the shapes of `like` (a stacked module's state or mask).
    Scalars (BatchNorm's batch counter) are taken from the first copy."""
    out = {}
    for name, target in like.items():
        if target.dim() == 0:
            out[name] = states[0][name]
        else:
            out[name] = torch.stack([s[name] for s in states]).reshape(target.shape)
    return out


def unstack_state(state: Mapping[str, Tensor], like: Mapping[str, Tensor], k: int) -> list[dict[str, Tensor]]:
    """Copy-wise states of a stacked state, with the shapes of `like` (one copy's state or mask)."""
    return [{name: state[name] if t.dim() == 0 else state[name].reshape(k, *t.shape)[i] for name, t in like.items()}
            for i in range(k)]
