"""python -m elth.dst: train a model with RigL from its seeded initialisation at a given sparsity.

The sparsity is a number (`--sparsity`) or that of a ticket (`--like`: an IMP level's ticket of the
same model, whose prunable layers RigL then uses and whose count of kept weights it matches
exactly), so that RigL runs at every IMP level as the pruning baselines do. The files are those of
`python -m elth.train` (final.pt with the mask RigL ended with, metrics.csv, summary.json), with
method `rigl`, or `rigl5x` for `--multiplier 5`, so the aggregation gets one more row per level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from elth import data as datasets
from elth.checkpoint import Checkpoint, build_for
from elth.dst.distribution import DISTRIBUTIONS, layer_counts, random_mask
from elth.dst.rigl import RigL, Schedule, stretch
from elth.errors import ConfigError, cli_errors
from elth.gpus import pin_gpu
from elth.prune import prunable
from elth.recipe import Recipe
from elth.train import (
    device_name,
    engine_arguments,
    pick_device,
    print_row,
    save_run,
    signature,
    train,
)

# A seed stream apart from the model's init (seed) and the data order, as the baselines keep theirs.
MASK_STREAM = 20_000_003


def method_name(multiplier: int) -> str:
    return "rigl" if multiplier == 1 else f"rigl{multiplier}x"


def kept_weights(shapes: dict[str, torch.Size], like: str | None, sparsity: float | None, model: str, dataset: str,
                 unpruned: list[str]) -> tuple[int, float, int]:
    """(weights to keep, the sparsity matched, the IMP level): a ticket's exact count and level, or
    the nearest whole count to `sparsity` at level 0."""
    if like is None:
        if not 0.0 <= sparsity < 1.0:
            raise ConfigError(f"--sparsity must be in [0, 1), got {sparsity}")
        return round((1.0 - sparsity) * sum(s.numel() for s in shapes.values())), sparsity, 0
    ticket = Checkpoint.load(like, "ticket", model=model, dataset=dataset)
    if set(ticket.mask) != set(shapes):
        raise ConfigError(f"{like}: its mask covers {len(ticket.mask)} layers, --unpruned {unpruned} "
                          f"leaves {len(shapes)}: pass the globs the ticket was pruned with")
    return ticket.mask.remaining, ticket.mask.sparsity, ticket.meta.get("level") or 0


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.dst", description=(
        "Train a model with RigL from its seeded initialisation at a sparsity, or at a ticket's."))
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seed", type=int, required=True, help="seeds the init, the data order and (with the level) the random mask")
    p.add_argument("--recipe", required=True, help="the model's training recipe as JSON (see config.yaml)")
    p.add_argument("--data", default="{}",
                   help="dataset options as JSON: root, download, train_subset, augment, normalize, last_batch")
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--sparsity", type=float, help="the fraction of prunable weights to keep at zero")
    goal.add_argument("--like", help="a ticket of the same model: run at its sparsity, with as many kept weights")
    p.add_argument("--level", type=int, help="the IMP level recorded in the results (default: the --like ticket's, else 0)")
    p.add_argument("--unpruned", nargs="*", default=[], help="globs of weights kept dense, e.g. fc.weight (as for IMP)")
    p.add_argument("--distribution", choices=DISTRIBUTIONS, default="uniform",
                   help="per-layer densities: uniform (RigL's: the first layer dense, the rest at one density), "
                        "uniform-all (every layer at one density) or erk")
    p.add_argument("--delta-t", type=int, default=100, help="steps between mask updates (RigL's ΔT)")
    p.add_argument("--alpha", type=float, default=0.3, help="initial drop fraction, decayed to 0 by a cosine")
    p.add_argument("--stop", type=float, default=0.75, help="fraction of training after which the mask is fixed")
    p.add_argument("--multiplier", type=int, default=1, help="train for this many times the recipe's epochs (RigL's 5x)")
    p.add_argument("--out", required=True, help="directory for final.pt, metrics.csv, summary.json")
    engine_arguments(p)
    args = p.parse_args(argv)
    pin_gpu(args.device)  # before anything starts CUDA: a workstation's jobs each take a free GPU

    torch.set_num_threads(args.threads)
    recipe = stretch(Recipe.from_dict(json.loads(args.recipe)), args.multiplier)
    opts = json.loads(args.data)
    device = pick_device(args.device)
    out = Path(args.out)

    model = build_for(args.model, args.dataset, seed=args.seed)
    params = dict(model.named_parameters())
    shapes = {n: params[n].shape for n in prunable(model, args.unpruned)}
    remaining, reference, level = kept_weights(shapes, args.like, args.sparsity, args.model, args.dataset, args.unpruned)
    level = level if args.level is None else args.level
    counts = layer_counts(shapes, remaining, args.distribution, first=prunable(model)[0])
    mask = random_mask(shapes, counts, torch.Generator().manual_seed(MASK_STREAM + 1000 * args.seed + level))
    model.to(device)

    data = datasets.open_data(args.dataset, opts, device, workers=args.threads)
    spe = data.steps_per_epoch(recipe.batch_size)
    schedule = Schedule(recipe.total_steps(spe), args.delta_t, args.alpha, args.stop)
    print(f"{args.model} on {args.dataset}, seed {args.seed}, {device}: RigL ({args.distribution}) at sparsity "
          f"{mask.sparsity:.2%}, {recipe.epochs} epochs of {spe} steps, {schedule.updates()} mask updates "
          f"every {args.delta_t} steps until step {schedule.end}", flush=True)
    resume = out / "resume.pt"
    settings = {"remaining": remaining, "layers": sorted(shapes), "distribution": args.distribution,
                "delta_t": args.delta_t, "alpha": args.alpha, "stop": args.stop, "level": level}
    fingerprint = signature(args.model, args.dataset, args.seed, recipe.__dict__, opts, settings, args.precision)
    result = train(model, data, recipe, args.seed, mask=mask, rewire=RigL(schedule),
                   log=print_row,
                   resume=resume, fingerprint=fingerprint, precision=args.precision, compile=args.compile)

    meta = {"method": method_name(args.multiplier), "level": level, "seed": args.seed, "multiplier": args.multiplier,
            "distribution": args.distribution, "delta_t": args.delta_t, "alpha": args.alpha, "stop": args.stop,
            "reference_sparsity": reference}
    save_run(out, args.model, args.dataset, args.seed, recipe, spe, 0, meta, model, result, None,
             device_name(device, args.threads))
    resume.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
