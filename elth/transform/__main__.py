"""python -m elth.transform SOURCE_TICKET --to MODEL --spec SPEC -o OUT

Transform a ticket onto another model of its family, print the block mapping and the sparsity
before and after, and write the target ticket with a JSON beside it (mapping and sparsities).
"""

from __future__ import annotations

import argparse

from elth.checkpoint import Checkpoint
from elth.errors import CheckpointError, cli_errors
from elth.prune.mask import RANDOM_STARTS
from elth.transform.apply import transform
from elth.transform.spec import Plan, WidthPlan


def describe(plan, mapping: dict[str, str]) -> str:
    if isinstance(plan, Plan):
        lines = [f"stage {s}: " + " ".join(f"{j}<-{i}" for j, i in enumerate(stage)) for s, stage in enumerate(plan.stages)]
        lines.append(f"explicit map: {plan.explicit()}")
        return "\n".join(lines)
    changed = sum(1 for k, v in mapping.items() if k != v)
    return f"width {plan.mode}" + (f" (std {plan.std})" if plan.mode == "gaussian" else "") + f": {changed} tensors resized"


def ett(source: Checkpoint, target: str, spec: str, scheme: str | None = None, seed: int = 0, level: int = 0,
        random_start: str = "rewind") -> tuple[Checkpoint, dict[str, str], Plan | WidthPlan]:
    """The ETT ticket `spec` makes of `source` on `target`, as the command makes it: its randomness (the random
    control, width noise) drawn from the stream of (seed, level), and its meta naming the source and the
    scheme (default: the spec); with the key mapping and the plan."""
    ticket, mapping, plan = transform(source, target, spec, 1000 * seed + level, random_start)
    ticket.meta.update({"method": "ett", "source": source.model, "scheme": scheme or spec, "spec": spec,
                        "source_sparsity": source.mask.sparsity})
    return ticket, mapping, plan


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.transform", description=__doc__.splitlines()[0])
    p.add_argument("ticket", help="the source ticket (e.g. results/.../imp/level6/ticket.pt)")
    p.add_argument("--to", required=True, dest="target", help="the target model, e.g. resnet56")
    p.add_argument("--spec", default="default", help="e.g. 'Inter 1234', 'Append 12', 'Drop 34', 'widen gaussian 0.01'")
    p.add_argument("--scheme", help="a name for the scheme in results (default: the spec)")
    p.add_argument("--seed", type=int, default=0, help="the run's seed: with --level, seeds the random control and width noise")
    p.add_argument("--level", type=int, default=0, help="the IMP level, so each level draws its own randomness")
    p.add_argument("--random-start", choices=RANDOM_STARTS, default="rewind",
                   help="a ' - Random' spec's weights: the rewind weights, or them times the source's IMP mask "
                        "(the authors' code), so the replicas' newly kept weights start at 0")
    p.add_argument("--source", help="refuse the ticket unless it is of this model")
    p.add_argument("--dataset", help="refuse the ticket unless it was made on this dataset")
    p.add_argument("-o", "--out", required=True, help="the target ticket; its JSON goes beside it")
    args = p.parse_args(argv)

    source = Checkpoint.load(args.ticket, "ticket", model=args.source, dataset=args.dataset)
    if source.mask is None:
        raise CheckpointError(f"{args.ticket}: has no mask")
    ticket, mapping, plan = ett(source, args.target, args.spec, args.scheme, args.seed, args.level, args.random_start)
    ticket.save_ticket(args.out, plan=plan.explicit(), mapping=mapping)
    print(f"{source.model} -> {args.target} by {args.spec!r}")
    print(describe(plan, mapping))
    print(f"sparsity: {source.mask.sparsity:.4%} before, {ticket.mask.sparsity:.4%} after "
          f"({ticket.mask.remaining} of {ticket.mask.total} weights kept)")


if __name__ == "__main__":
    main()
