"""python -m elth.transfer SOURCE_TICKET --from-dataset SOURCE --dataset TARGET [--to MODEL --spec SPEC] -o OUT

Dataset transfer (Sec 4.7, Table 4): an IMP ticket found on one dataset becomes a ticket on
another, either as it is (same model) or after an Elastic Ticket Transformation (another depth).
The mask and rewind weights are not touched; only the dataset the ticket belongs to changes, so
retraining builds the model with the target's input and output shape.

That is only sound where the shapes agree. CIFAR ResNets and VGGs end in global average pooling,
so another image size (28 against 32) keeps every tensor's shape and is allowed. Another number of
input channels or classes changes the first conv or the last linear, and no mapping of those
between datasets is sensible (which input channel is SVHN's red in Fashion-MNIST?): the transfer
is refused, naming both datasets and the tensor.
"""

from __future__ import annotations

import argparse

from elth import data as datasets
from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError, ConfigError, cli_errors
from elth.transform.__main__ import describe
from elth.transform.apply import transform
from elth.transform.spec import Plan, WidthPlan


def _shape(dataset: str) -> str:
    d = datasets.info(dataset)
    return f"{d.in_channels} channels, {d.num_classes} classes, {d.image_size}x{d.image_size}"


def check_shapes(ticket: Checkpoint, target_dataset: str) -> None:
    """Refuse a ticket whose tensors do not fit its model built for `target_dataset`."""
    expected = build_for(ticket.model, target_dataset).state_dict()
    for name, tensor in ticket.state.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise ConfigError(
                f"cannot transfer a {ticket.model} ticket from {ticket.dataset} ({_shape(ticket.dataset)}) to "
                f"{target_dataset} ({_shape(target_dataset)}): tensor {name!r} has shape {tuple(tensor.shape)} on "
                f"{ticket.dataset} but {tuple(expected[name].shape)} on {target_dataset}, and no mapping of it "
                "between the two datasets is sensible; transfer between datasets of the same channels and classes")


def transfer(ticket: Checkpoint, target_dataset: str, target_model: str | None = None, spec: str = "default",
             seed: int = 0) -> tuple[Checkpoint, dict[str, str] | None, Plan | WidthPlan | None]:
    """The ticket on `target_dataset` (as `target_model` by the ETT of `spec` when given and not the
    ticket's model), with the ETT's key mapping and plan (None for a direct transfer). The ETT runs
    on the source dataset, where the ticket's shapes are valid, and the result is then re-labelled."""
    if ticket.mask is None:
        raise CheckpointError(f"a {ticket.model} checkpoint on {ticket.dataset} without a mask is not a ticket")
    if target_dataset == ticket.dataset:
        raise ConfigError(f"the ticket is already on {target_dataset}; a transfer needs another dataset")
    mapping = plan = None
    moved = ticket
    if target_model is not None and target_model != ticket.model:
        moved, mapping, plan = transform(ticket, target_model, spec, seed)
    check_shapes(moved, target_dataset)
    out = Checkpoint(moved.model, target_dataset, moved.step, dict(moved.state), moved.mask, dict(moved.meta))
    return out, mapping, plan


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.transfer", description=__doc__.splitlines()[0])
    p.add_argument("ticket", help="the source ticket (e.g. results/svhn/resnet20/seed0/imp/level10/ticket.pt)")
    p.add_argument("--from-dataset", required=True, help="refuse the ticket unless it was made on this dataset")
    p.add_argument("--dataset", required=True, help="the target dataset")
    p.add_argument("--source", help="refuse the ticket unless it is of this model")
    p.add_argument("--to", dest="target", help="the target model (default: the ticket's own, a direct transfer)")
    p.add_argument("--spec", default="default", help="the ETT spec when --to names another model")
    p.add_argument("--scheme", help="a name for the transfer in results (default: direct, or the spec)")
    p.add_argument("--seed", type=int, default=0, help="the run's seed: with --level, seeds an ETT's randomness")
    p.add_argument("--level", type=int, help="the IMP level (default: the ticket's)")
    p.add_argument("-o", "--out", required=True, help="the target ticket; its JSON goes beside it")
    args = p.parse_args(argv)

    source = Checkpoint.load(args.ticket, "ticket", model=args.source, dataset=args.from_dataset)
    level = args.level if args.level is not None else int(source.meta.get("level", 0))
    ticket, mapping, plan = transfer(source, args.dataset, args.target, args.spec, 1000 * args.seed + level)
    direct = plan is None
    ticket.meta.update({"method": "transfer", "source": f"{source.dataset}/{source.model}",
                        "scheme": args.scheme or ("direct" if direct else args.spec), "level": level,
                        "seed": args.seed, "source_dataset": source.dataset, "source_model": source.model,
                        "source_sparsity": source.mask.sparsity, **({} if direct else {"spec": args.spec})})
    extra = {} if direct else {"plan": plan.explicit(),
                               "mapping": mapping}
    ticket.save_ticket(args.out, **extra)
    how = "directly" if direct else f"by {args.spec!r}"
    print(f"{source.model} on {source.dataset} -> {ticket.model} on {args.dataset} {how}")
    if not direct:
        print(describe(plan, mapping))
    print(f"sparsity {ticket.mask.sparsity:.4%} ({ticket.mask.remaining} of {ticket.mask.total} weights kept)")


if __name__ == "__main__":
    main()
