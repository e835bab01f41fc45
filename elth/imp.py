"""One IMP round: prune the trained weights of the previous level and rewind to make a ticket.

Level k's ticket is (mask k, rewind weights): mask k removes `fraction` of the weights that mask
k-1 kept, ranked by the magnitude they reached when level k-1 (level 0: the dense run) finished
training; the weights are the dense run's rewind checkpoint. How many weights a round removes is
the `count` rule (`elth.prune.magnitude.prune_count`): elth's `nearest` or the authors' `open_lth`.
The ticket records its sparsity (in both conventions, `elth.prune.mask.SPARSITY_CONVENTIONS`), its
per-layer sparsities, the count rule and where it came from in a JSON file beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError, ConfigError, cli_errors
from elth.prune import Mask, global_magnitude, imp_sparsity, prunable
from elth.prune.magnitude import COUNTS


def next_ticket(rewind: Checkpoint, trained: Checkpoint, previous: Checkpoint | None, level: int,
                fraction: float, unpruned: list[str], count: str = "nearest") -> Checkpoint:
    """The IMP ticket of `level`, from the rewind point, the trained weights of level-1 and its mask,
    pruned by the `count` rule; every level of one IMP run takes the same rule, so a previous ticket
    made by another is refused (tickets that predate the rule were made by `nearest`)."""
    if level < 1:
        raise ConfigError(f"IMP level must be at least 1 (level 0 is the dense run), got {level}")
    for other in (trained, previous):
        if other is not None and (other.model, other.dataset) != (rewind.model, rewind.dataset):
            raise CheckpointError(f"IMP level {level}: mixes {rewind.model} on {rewind.dataset} with "
                                  f"{other.model} on {other.dataset}")
    model = build_for(rewind.model, rewind.dataset)
    if previous is None:
        mask = Mask.ones(model, prunable(model, unpruned))
    else:
        mask = previous.mask
        mask.check(model, "previous ticket")
        if previous.meta.get("count", "nearest") != count:
            raise ConfigError(f"IMP level {level}: the previous ticket was pruned with the "
                              f"{previous.meta.get('count', 'nearest')!r} count, not {count!r}; "
                              "remake every level with one")
    new = global_magnitude(trained.state, mask, fraction, count, mask.unmasked(model))
    # The nominal sparsity is that of the prunable weights under `nearest`, of all conv and linear
    # weights (`sparsity_all`) under `open_lth`: what each rule makes follow 1 - (1 - fraction)^level.
    meta = {"method": "imp", "level": level, "seed": rewind.meta.get("seed"), "fraction": fraction, "count": count,
            "nominal_sparsity": imp_sparsity(level, fraction)}
    return Checkpoint(rewind.model, rewind.dataset, rewind.step, rewind.state, new, meta)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.imp", description="Make the ticket of one IMP level.")
    p.add_argument("--rewind", required=True, help="the dense run's rewind checkpoint")
    p.add_argument("--trained", required=True, help="final checkpoint of the previous level (level 1: the dense run)")
    p.add_argument("--previous", help="the previous level's ticket (absent for level 1)")
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--fraction", type=float, default=0.2, help="fraction of the remaining weights to prune")
    p.add_argument("--unpruned", nargs="*", default=[], help="globs of weights never pruned, e.g. fc.weight")
    p.add_argument("--count", choices=COUNTS, default="nearest",
                   help="weights a round removes: nearest, round(fraction x remaining prunable weights); open_lth, "
                        "the authors' ceil(fraction x remaining conv and linear weights, unpruned layers included) + 1")
    p.add_argument("-o", "--out", required=True, help="the ticket file; its JSON summary goes beside it")
    args = p.parse_args(argv)

    rewind = Checkpoint.load(args.rewind)
    trained = Checkpoint.load(args.trained)
    previous = Checkpoint.load(args.previous, "ticket") if args.previous else None
    save(next_ticket(rewind, trained, previous, args.level, args.fraction, args.unpruned, args.count), args.out)


def save(ticket: Checkpoint, out: str | Path) -> None:
    """Write an IMP ticket (and its JSON beside it) and say what it keeps: the command's output, and
    that of a retraining that makes the next level's ticket in the same process (`elth.train --next-ticket`)."""
    ticket.save_ticket(out)
    mask, model = ticket.mask, build_for(ticket.model, ticket.dataset)
    level, fraction, count = ticket.meta["level"], ticket.meta["fraction"], ticket.meta["count"]
    print(f"{ticket.model} IMP level {level} ({count} count): sparsity {mask.sparsity:.4%} of the prunable "
          f"weights, {mask.sparsity_all(model):.4%} of all conv and linear weights (nominal "
          f"{imp_sparsity(level, fraction):.4%}), {mask.remaining} of {mask.total} prunable weights kept -> {out}")


if __name__ == "__main__":
    main()
