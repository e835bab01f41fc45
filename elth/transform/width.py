"""Width transformations (App. B): binary splitting to twice the width, and its inverse.

Splitting (Fig 8, after Liu et al. 2019 and Wu et al. 2020) duplicates every channel and neuron:
a dimension that doubles is tiled (new index k copies old index k mod n), and a weight whose input
dimension doubles is halved, so each layer sums the same inputs as before. The dense function is
therefore kept exactly (BN statistics and affine parameters are duplicated too), and a mask is
tiled the same way. Three ways to break the resulting symmetry:

- `replicate`: none;
- `gaussian`: add N(0, std^2) noise to the conv and linear weights (not to the masks);
- `permute`: in every prunable layer, permute the split-off elements (all but the original block)
  with their mask entries, keeping each weight with its mask entry and the layer's sparsity.

`shrink` is the inverse: keep the first half of every halved dimension (weights and masks) and
double the weights whose input dimension halves, so shrinking a split ticket returns it exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError
from elth.prune.mask import Mask
from elth.transform.spec import WidthPlan


def _resize(value: Tensor, shape: torch.Size, key: str, scale: bool) -> Tensor:
    out = value
    for d, (n, t) in enumerate(zip(value.shape, shape)):
        if t == 2 * n:
            out = out.index_select(d, torch.arange(t) % n)
            if scale and d == 1:
                out = out / 2
        elif 2 * t == n:
            out = out.narrow(d, 0, t)
            if scale and d == 1:
                out = out * 2
        elif t != n:
            raise CheckpointError(f"{key}: shape {tuple(value.shape)} cannot become {tuple(shape)} by halving or doubling")
    return out.clone()


def _original_block(shape: torch.Size, source_shape: torch.Size) -> Tensor:
    """Boolean tensor of `shape`: True on the elements that existed before the split."""
    keep = torch.ones(shape, dtype=torch.bool)
    for d, n in enumerate(source_shape):
        index = [slice(None)] * len(shape)
        index[d] = slice(n, None)
        keep[tuple(index)] = False
    return keep


def widen_or_shrink(ticket: Checkpoint, target: str, plan: WidthPlan, seed: int = 0) -> tuple[Checkpoint, dict[str, str]]:
    target_model = build_for(target, ticket.dataset)
    expected = target_model.state_dict()
    if set(expected) != set(ticket.state):
        raise CheckpointError(f"{ticket.model} and {target} do not share tensor names: a width transformation keeps the depth")
    state = {k: _resize(ticket.state[k], expected[k].shape, k, scale=ticket.state[k].ndim >= 2) for k in expected}
    mask = None
    if ticket.mask is not None:
        mask = {k: _resize(v, expected[k].shape, k, scale=False) for k, v in ticket.mask.items()}
    g = torch.Generator().manual_seed(seed)
    weights = list(mask) if mask is not None else [k for k, v in state.items() if v.ndim >= 2]
    if plan.mode == "gaussian":
        for k in weights:
            state[k] += plan.std * torch.randn(state[k].shape, generator=g)
    elif plan.mode == "permute":
        for k in weights:
            new = ~_original_block(state[k].shape, ticket.state[k].shape)
            perm = torch.randperm(int(new.sum()), generator=g)
            state[k][new] = state[k][new][perm]
            if mask is not None:
                mask[k][new] = mask[k][new][perm]
    how = {"replicate": "split", "gaussian": f"split + N(0, {plan.std}^2)", "permute": "split + permute",
           "shrink": "first half"}[plan.mode]
    mapping = {k: f"{k} ({how})" if state[k].shape != ticket.state[k].shape else k for k in expected}
    return Checkpoint(target, ticket.dataset, ticket.step, state, Mask(mask) if mask is not None else None,
                      dict(ticket.meta)), mapping
