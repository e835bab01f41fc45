"""Depth transformations: every tensor of the target ticket copied from a named source tensor.

Given a plan (target unit j of stage s copies source unit plan[s][j]), the target's state and
mask are built key by key: a key inside a unit is renamed from the source unit's prefix, a key
outside every unit (stem, head) is taken as it is. Weights, biases, BN affine parameters, BN
running statistics and `num_batches_tracked` all travel; nothing is initialised at random. The
returned mapping lists every (target key, source key) pair, so the transformation is printable
and is saved beside the ticket.

A ` - Random` plan permutes the masks of the replicated copies; `random_start` says where their
weights start (elth/prune/mask.py's RANDOM_STARTS): `rewind` copies the source's rewind weights
as they are; `pruned` copies them times the source's IMP mask, as the authors' random-mask branch
loads the level's pruned model, so the positions a permuted mask newly keeps start at 0.
"""

from __future__ import annotations

import torch

from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError, ConfigError
from elth.prune.mask import RANDOM_STARTS, Mask
from elth.transform.spec import Plan


def key_map(source_model, target_model, plan: Plan) -> dict[str, str]:
    """target state_dict key -> source state_dict key, for every key of the target."""
    src, tgt = source_model.structure, target_model.structure
    if len(plan.stages) != len(tgt.stages) or any(len(p) != len(s.units) for p, s in zip(plan.stages, tgt.stages)):
        raise CheckpointError(f"plan {plan.explicit()!r} does not fit {target_model.name}'s stages {tgt.depths}")
    mapping = {}
    for key in target_model.state_dict():
        where = tgt.locate(key)
        if where is None:
            mapping[key] = key
        else:
            s, j = where
            prefix = tgt.stages[s].units[j].prefix
            mapping[key] = src.stages[s].units[plan.stages[s][j]].prefix + key[len(prefix):]
    return mapping


def stretch_or_squeeze(ticket: Checkpoint, target: str, plan: Plan, seed: int = 0,
                       random_start: str = "rewind") -> tuple[Checkpoint, dict[str, str]]:
    """Map a source ticket onto `target` by `plan`; return the target ticket and its key mapping."""
    if random_start not in RANDOM_STARTS:
        raise ConfigError(f"random start {random_start!r}: expected one of {RANDOM_STARTS}")
    pruned = plan.random and random_start == "pruned" and ticket.mask is not None
    source = ticket.mask.applied(ticket.state) if pruned else ticket.state
    source_model = build_for(ticket.model, ticket.dataset)
    target_model = build_for(target, ticket.dataset)
    mapping = key_map(source_model, target_model, plan)
    expected = target_model.state_dict()
    state = {}
    for key, src_key in mapping.items():
        if src_key not in source:
            raise CheckpointError(f"{ticket.model} ticket has no {src_key!r}, which {target}'s {key!r} needs")
        value = source[src_key]
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{target}'s {key} has shape {tuple(expected[key].shape)} but its source {src_key} in "
                                  f"{ticket.model} has {tuple(value.shape)}: the channels do not match")
        state[key] = value.clone()
    mask = None
    if ticket.mask is not None:
        masked = {k: v for k, v in mapping.items() if v in ticket.mask}
        mask = Mask({k: ticket.mask[v].clone() for k, v in masked.items()})
        if plan.random:
            mask = _shuffle_replicas(mask, target_model, plan, seed)
    meta = {**ticket.meta, "random_start": random_start} if plan.random else dict(ticket.meta)
    return Checkpoint(target, ticket.dataset, ticket.step, state, mask, meta), mapping


def _shuffle_replicas(mask: Mask, target_model, plan: Plan, seed: int) -> Mask:
    """Fig 4's control: permute, within each layer, the masks of the replicated copies only."""
    structure = target_model.structure
    g = torch.Generator().manual_seed(seed)
    out = mask.to_dict()
    for s in range(len(structure.stages)):
        for j in plan.replicas(s):
            for key in structure.unit_keys(out, s, j):
                flat = out[key].flatten()
                out[key] = flat[torch.randperm(flat.numel(), generator=g)].view_as(out[key])
    return Mask(out)
