"""python -m elth.baseline METHOD...: the tickets pruning baselines make, matched to an IMP ticket.

One process makes every method's ticket of a level (the model, the rewind weights and the data are
loaded once), each written to its own file, as the workflow's `baselines` rule runs it.

The baseline's mask keeps exactly as many weights as the IMP ticket of the same model, level and
seed (the paper matches sparsities), over the same prunable layers; its weights are the dense
run's rewind weights (re-drawn for `reinit`). The ticket is retrained by the shared rule, with the
same recipe as every other ticket.

Settings that only some methods read, each recorded in the ticket's meta:
- `--random-start` (random): `rewind` starts every weight the permuted mask keeps at its rewind
  value, as the paper words it; `pruned` starts from the rewind weights times the IMP mask, as
  open_lth's randomly_prune does, so the positions the permutation newly keeps start at 0.
- `--batches` (SNIP, GraSP): how many of the run's first mini-batches they score on, or `epoch`
  for the whole first epoch in the run's data order (the authors' ports), read as it is needed.
- `--mode` (SNIP, GraSP): the model's mode while scoring, `train` or `eval` (the authors' ports).
- `--grasp` (GraSP): `wang` ranks as Wang et al. do, `elasticlth` as the authors' port does.
- `--iterations` (SynFlow): its pruning rounds.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator

import torch
from torch import Tensor

from elth import data as datasets
from elth.checkpoint import Checkpoint
from elth.errors import CheckpointError, ConfigError, cli_errors
from elth.gpus import pick_device, pin_gpu
from elth.prune.baselines import GRASP_RANKINGS, METHODS, MODES, Batches
from elth.prune.mask import RANDOM_STARTS

# Seed streams apart from the model's init (seed) and the data order, so that `reinit` draws
# weights no other run of the study uses.
REINIT_STREAM = 10_000_019


class EpochBatches:
    """The first `count` mini-batches of the run's first epoch, in its data order (`count` None:
    the whole epoch). Every iteration re-creates the epoch from its seed, so GraSP's two passes read
    the same batches and not even a whole epoch is held in memory."""

    def __init__(self, data: datasets.DeviceData | datasets.StreamingData, seed: int, batch_size: int,
                 count: int | None) -> None:
        self.data, self.seed, self.batch_size, self.count = data, seed, batch_size, count

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return itertools.islice(self.data.epoch(self.seed, 0, self.batch_size), self.count)


# The methods that compute scores: they run on the job's device (a GPU where there is one, so that
# SNIP and GraSP over a whole epoch, as the authors ran them, take minutes and not CPU-hours).
SCORED = ("snip", "grasp", "synflow")


def make(method: str, rewind: Checkpoint, reference: Checkpoint, batches: Batches, seed: int, iterations: int = 100,
         random_start: str = "rewind", mode: str = "train", ranking: str = "wang",
         device: torch.device = torch.device("cpu")) -> Checkpoint:
    """The `method` ticket matched to `reference`; the settings a method does not read are ignored,
    the ones it reads are recorded in the ticket's meta. `batches` must be on `device`."""
    if (reference.model, reference.dataset) != (rewind.model, rewind.dataset):
        raise CheckpointError(f"the IMP ticket is a {reference.model} on {reference.dataset}, "
                              f"the rewind point a {rewind.model} on {rewind.dataset}")
    if random_start not in RANDOM_STARTS:
        raise ConfigError(f"random start {random_start!r}: expected one of {RANDOM_STARTS}")
    model = rewind.build_model()
    if method in SCORED:
        model.to(device)
    stream = REINIT_STREAM + seed if method == "reinit" else seed
    options = {"synflow": {"iterations": iterations}, "snip": {"mode": mode},
               "grasp": {"mode": mode, "ranking": ranking}}.get(method, {})
    mask = METHODS[method](model, reference.mask, batches, torch.Generator().manual_seed(stream), **options)
    if method == "reinit":
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    elif method == "random" and random_start == "pruned":
        state = reference.mask.applied(rewind.state)
    else:
        state = rewind.state
    settings = {"random_start": random_start} if method == "random" else options
    meta = {"method": method, "level": reference.meta.get("level"), "seed": reference.meta.get("seed"),
            "reference_sparsity": reference.mask.sparsity, **settings}
    return Checkpoint(rewind.model, rewind.dataset, rewind.step, state, mask, meta)


def matched(method: str, rewind: Checkpoint, reference: Checkpoint, data: dict, seed: int = 0, level: int = 0,
            batch_size: int = 128, batches: int | None = 1, iterations: int = 100, random_start: str = "rewind",
            mode: str = "train", ranking: str = "wang", device: torch.device = torch.device("cpu"),
            workers: int = 1, train: datasets.DeviceData | datasets.StreamingData | None = None) -> Checkpoint:
    """The `method` ticket matched to `reference`, as the command makes it: SNIP and GraSP score the first
    `batches` mini-batches of the run's first epoch (None: all of it) of the dataset `data` describes (the
    config's `dataset` options), SynFlow one all-ones input of the dataset's shape; each level of each seed
    draws from a stream of its own (1000 x seed + level). `train`, that dataset already open on `device`,
    saves opening it again for each method of one job."""
    scored: Batches = []
    if method in ("snip", "grasp"):
        if train is None:
            train = datasets.open_data(rewind.dataset, data, device, workers=workers)
        scored = EpochBatches(train, seed, batch_size, batches)
    elif method == "synflow":
        d = datasets.info(rewind.dataset)
        scored = [(torch.zeros(1, d.in_channels, d.image_size, d.image_size), torch.zeros(1, dtype=torch.long))]
    ticket = make(method, rewind, reference, scored, 1000 * seed + level, iterations, random_start, mode, ranking,
                  device)
    if method in ("snip", "grasp"):
        ticket.meta["batches"] = "epoch" if batches is None else batches
    return ticket


def batch_count(text: str) -> int | None:
    """`--batches`: a positive number of mini-batches, or `epoch` (None: the whole first epoch)."""
    if text == "epoch":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of mini-batches or 'epoch'")
    return int(text)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.baseline", description=__doc__.splitlines()[0])
    p.add_argument("methods", nargs="+", choices=sorted(METHODS), metavar="METHOD",
                   help=f"one or more of {', '.join(sorted(METHODS))}: a level's baselines share one process")
    p.add_argument("--rewind", required=True, help="the dense run's rewind checkpoint")
    p.add_argument("--reference", required=True, help="the IMP ticket whose sparsity the baseline matches")
    p.add_argument("--data", default="{}", help="dataset options as JSON (SNIP and GraSP read mini-batches)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=batch_count, default=1,
                   help="mini-batches SNIP and GraSP score on, or 'epoch' for the run's whole first epoch")
    p.add_argument("--mode", choices=MODES, default="train", help="the model's mode while SNIP and GraSP score")
    p.add_argument("--grasp", choices=GRASP_RANKINGS, default="wang",
                   help="GraSP's ranking: Wang et al.'s, or the authors' port's |score|")
    p.add_argument("--random-start", choices=RANDOM_STARTS, default="rewind",
                   help="random's weights: the rewind weights, or the rewind weights times the IMP mask")
    p.add_argument("--iterations", type=int, default=100, help="SynFlow's pruning rounds")
    p.add_argument("--seed", type=int, default=0, help="the run's seed")
    p.add_argument("--level", type=int, default=0, help="the IMP level, so each level draws its own randomness")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="where SNIP, GraSP and SynFlow score: auto (CUDA when present), "
                                                    "cpu or cuda[:n]; the other methods need no device")
    p.add_argument("-o", "--out", action="append", required=True, help="the ticket file of each method, in order")
    args = p.parse_args(argv)
    if len(args.out) != len(args.methods) or len(set(args.methods)) != len(args.methods):
        p.error(f"give each method once and one -o per method ({len(args.methods)} methods, {len(args.out)} -o)")

    torch.set_num_threads(args.threads)
    scores = bool(set(args.methods) & set(SCORED))
    if scores:
        pin_gpu(args.device)  # before anything starts CUDA, as training jobs do
    device = pick_device(args.device) if scores else torch.device("cpu")
    rewind = Checkpoint.load(args.rewind)
    reference = Checkpoint.load(args.reference, "ticket", model=rewind.model, dataset=rewind.dataset)
    options = json.loads(args.data)
    train = (datasets.open_data(rewind.dataset, options, device, workers=args.threads)
             if {"snip", "grasp"} & set(args.methods) else None)
    for method, out in zip(args.methods, args.out):
        ticket = matched(method, rewind, reference, options, args.seed, args.level, args.batch_size, args.batches,
                         args.iterations, args.random_start, args.mode, args.grasp,
                         device if method in SCORED else torch.device("cpu"), args.threads, train)
        ticket.save_ticket(out)
        print(f"{method} on {ticket.model}: sparsity {ticket.mask.sparsity:.4%} (IMP ticket "
              f"{reference.mask.sparsity:.4%}), {ticket.mask.remaining} of {ticket.mask.total} weights kept -> {out}",
              flush=True)


if __name__ == "__main__":
    main()
