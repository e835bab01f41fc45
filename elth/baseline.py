"""python -m elth.baseline METHOD: the ticket a pruning baseline makes, matched to an IMP ticket.

The baseline's mask keeps exactly as many weights as the IMP ticket of the same model, level and
seed (the paper matches sparsities), over the same prunable layers; its weights are the dense
run's rewind weights (re-drawn for `reinit`). The ticket is retrained by the shared rule, with the
same recipe as every other ticket.
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch

from elth import data as datasets
from elth.checkpoint import Checkpoint
from elth.errors import CheckpointError, cli_errors
from elth.prune.baselines import METHODS

# Seed streams apart from the model's init (seed) and the data order, so that `reinit` draws
# weights no other run of the study uses.
REINIT_STREAM = 10_000_019


def make(method: str, rewind: Checkpoint, reference: Checkpoint, batches, seed: int, iterations: int) -> Checkpoint:
    if (reference.model, reference.dataset) != (rewind.model, rewind.dataset):
        raise CheckpointError(f"the IMP ticket is a {reference.model} on {reference.dataset}, "
                              f"the rewind point a {rewind.model} on {rewind.dataset}")
    model = rewind.build_model()
    stream = REINIT_STREAM + seed if method == "reinit" else seed
    extra = {"iterations": iterations, "input_shape": None} if method == "synflow" else {}
    mask = METHODS[method](model, reference.mask, batches, torch.Generator().manual_seed(stream), **extra)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()} if method == "reinit" else rewind.state
    meta = {"method": method, "level": reference.meta.get("level"), "seed": reference.meta.get("seed"),
            "reference_sparsity": reference.mask.sparsity}
    return Checkpoint(rewind.model, rewind.dataset, rewind.step, state, mask, meta)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.baseline", description=__doc__.splitlines()[0])
    p.add_argument("method", choices=sorted(METHODS))
    p.add_argument("--rewind", required=True, help="the dense run's rewind checkpoint")
    p.add_argument("--reference", required=True, help="the IMP ticket whose sparsity the baseline matches")
    p.add_argument("--data", default="{}", help="dataset options as JSON (SNIP and GraSP read mini-batches)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=1, help="mini-batches SNIP and GraSP score on")
    p.add_argument("--iterations", type=int, default=100, help="SynFlow's pruning rounds")
    p.add_argument("--seed", type=int, default=0, help="the run's seed")
    p.add_argument("--level", type=int, default=0, help="the IMP level, so each level draws its own randomness")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    rewind = Checkpoint.load(args.rewind)
    reference = Checkpoint.load(args.reference, "ticket", model=rewind.model, dataset=rewind.dataset)
    batches: list = []
    d = datasets.info(rewind.dataset)
    if args.method in ("snip", "grasp"):
        train = datasets.open_data(rewind.dataset, json.loads(args.data), torch.device("cpu"), workers=args.threads)
        batches = list(itertools.islice(train.epoch(args.seed, 0, args.batch_size), args.batches))  # the run's first batches
    elif args.method == "synflow":
        batches = [(torch.zeros(1, d.in_channels, d.image_size, d.image_size), torch.zeros(1, dtype=torch.long))]
    ticket = make(args.method, rewind, reference, batches, 1000 * args.seed + args.level, args.iterations)
    ticket.save_ticket(args.out)
    print(f"{args.method} on {ticket.model}: sparsity {ticket.mask.sparsity:.4%} "
          f"(IMP ticket {reference.mask.sparsity:.4%}), {ticket.mask.remaining} of {ticket.mask.total} weights kept")


if __name__ == "__main__":
    main()
