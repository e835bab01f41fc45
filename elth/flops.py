"""Training FLOPs of IMP, elastic tickets and RigL: the accounting behind the paper's Sec 4.6.

What is counted: the multiply-adds of every Conv2d and Linear weight (and of attention: its
projections and its two matmuls of activations, see `layer_flops`), at 2 FLOPs each, for one
example (a forward pass of a batch of one at the dataset's input size, measured with forward hooks,
so strides, padding and groups are the model's own). Not counted: bias additions, batch and layer
norm, activations (attention's softmax included), pooling and residual additions. They are a
fraction of a percent of a ResNet's or VGG's FLOPs, cost every method the same, and no sparse
method saves any of them.

A sparse layer costs its density times its dense FLOPs (a sparse kernel skips pruned weights); a
layer outside the mask (a config's `unpruned` globs) stays dense. One training example costs three
forward passes (the forward, the gradient with respect to the activations, the gradient with respect
to the weights, each as costly as the forward), as Evci et al. (2020) count it. A RigL update also
needs the dense gradient with respect to the weights: such a step costs 2 f_S + f_D instead of
3 f_S (Evci et al.: (3 f_S ΔT + 2 f_S + f_D) / (ΔT + 1) per iteration when RigL's update is an
iteration of its own; elth's RigL updates inside an ordinary step, so each update step costs that).

The runs, as elth trains them: the dense run trains the whole recipe; every IMP round and every
ticket's retraining trains from the rewind step to the end under its mask. The mask of IMP level L
costs the dense run and the sparse runs of levels 1 to L-1 (level L is pruned from level L-1's
trained weights); an elastic ticket costs that search once on the source, then one sparse run of
the target under the transferred mask.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from elth import data as datasets
from elth import files
from elth.checkpoint import build_for
from elth.datasets import LAST_BATCH, steps_per_epoch
from elth.dst.distribution import DISTRIBUTIONS, densities
from elth.dst.rigl import Schedule
from elth.errors import ConfigError, cli_errors
from elth.prune import imp_sparsity, prunable
from elth.prune.mask import Mask
from elth.recipe import to_steps
from elth.report.html import convert

Densities = Mapping[str, float]


@torch.no_grad()
def layer_flops(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Dense forward FLOPs per example of every Conv2d and Linear layer, keyed by its weight's name
    (the names masks use): 2 x (outputs per example) x (inputs each output sums). An attention layer
    (nn.MultiheadAttention, L tokens of width E) counts its projections under their weights' names,
    `in_proj_weight` 2 L E 3E and `out_proj.weight` 2 L E E, and its two matmuls of activations,
    Q K^T and the weighted sum of V, 2 L L E each, under `<layer>.attention`: no mask sparsifies
    those, so every method pays them dense."""
    counts: dict[str, int] = {}
    attention = {n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}

    def hook(name: str):
        def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            fan_in = (module.weight[0].numel() if isinstance(module, nn.Conv2d) else module.in_features)
            counts[name] = counts.get(name, 0) + 2 * fan_in * output[0].numel()
        return count

    def attend(name: str):
        def count(module: nn.Module, args: tuple, kwargs: dict, output: tuple) -> None:
            query = args[0] if args else kwargs["query"]  # torchvision passes it by keyword
            tokens, width = query.shape[-2:] if module.batch_first else query.shape[::2]
            for key, flops in ((f"{name}.in_proj_weight", 2 * tokens * width * 3 * width),
                               (f"{name}.out_proj.weight", 2 * tokens * width * width),
                               (f"{name}.attention", 2 * 2 * tokens * tokens * width)):
                counts[key] = counts.get(key, 0) + flops
        return count

    # nn.MultiheadAttention applies its out_proj by F.linear, never calling the module: attend counts it.
    handles = [m.register_forward_hook(hook(f"{n}.weight")) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)) and n.rpartition(".")[0] not in attention]
    handles += [model.get_submodule(n).register_forward_hook(attend(n), with_kwargs=True) for n in attention]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros((1, *input_shape), device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return counts


def mask_densities(mask: Mask) -> dict[str, float]:
    """Per-layer densities of a real mask, for accounting a ticket or a RigL run as it was."""
    return {n: int(t.sum()) / t.numel() for n, t in mask.items()}


def uniform(names: Sequence[str], density: float) -> dict[str, float]:
    return {n: density for n in names}


def forward(layers: Mapping[str, int], density: Densities | None = None) -> float:
    """Forward FLOPs per example, each masked layer at its density, every other layer dense."""
    density = density or {}
    return sum(flops * density.get(n, 1.0) for n, flops in layers.items())


def sparse_run(layers: Mapping[str, int], density: Densities | None, examples: float) -> float:
    """One training run over `examples` examples under fixed densities (None: dense)."""
    return 3.0 * forward(layers, density) * examples


def imp(layers: Mapping[str, int], rounds: Sequence[Densities], dense_examples: float,
        retrain_examples: float) -> float:
    """The dense run, then one sparse run under each of `rounds`' masks, in order."""
    return sparse_run(layers, None, dense_examples) + sum(sparse_run(layers, d, retrain_examples) for d in rounds)


def ett(source: Mapping[str, int], source_rounds: Sequence[Densities], target: Mapping[str, int],
        transferred: Densities, dense_examples: float, retrain_examples: float) -> tuple[float, float]:
    """(finding the mask on the source, training the target under the transferred mask)."""
    return imp(source, source_rounds, dense_examples, retrain_examples), sparse_run(target, transferred, retrain_examples)


def rigl(layers: Mapping[str, int], density: Densities, schedule: Schedule, batch_size: float) -> float:
    """A RigL run: every step sparse, but each update step computes the dense weight gradient.
    `batch_size` is the examples per step (their mean when an epoch's partial last batch is a step)."""
    sparse, dense = forward(layers, density), forward(layers)
    updates = schedule.updates()
    return batch_size * ((schedule.total_steps - updates) * 3.0 * sparse + updates * (2.0 * sparse + dense))


def comparison(source: str, target: str, dataset: str, levels: int, fraction: float, epochs: int, examples: int,
               batch_size: int, rewind: str = "0it", unpruned: Sequence[str] = (), distribution: str = "uniform",
               delta_t: int = 100, stop: float = 0.75, multipliers: Sequence[int] = (1, 5),
               last_batch: str = "drop") -> list[tuple[str, float]]:
    """Sec 4.6's rows: (what, training FLOPs) for IMP on the target, an elastic ticket from the
    source, and RigL on the target at the same sparsity; the first row is the dense target run.
    `last_batch` is the dataset's: whether an epoch's partial last batch is a step of its own."""
    if levels < 1:
        raise ConfigError(f"the comparison needs at least one IMP level, got {levels}")
    if examples < batch_size and last_batch == "drop":
        raise ConfigError(f"{examples} examples are fewer than one batch of {batch_size}")
    spe = steps_per_epoch(examples, batch_size, last_batch)
    total = epochs * spe
    start = to_steps(rewind, spe)
    if start >= total:
        raise ConfigError(f"rewind point {rewind} is not before the end of training ({total} steps)")
    d = datasets.info(dataset)
    shape = (d.in_channels, d.image_size, d.image_size)
    with torch.device("meta"):  # shapes are all the accounting needs: no weights drawn, no arithmetic done
        models = {name: build_for(name, dataset) for name in (source, target)}
    flops = {name: layer_flops(m, shape) for name, m in models.items()}
    names = {name: prunable(m, unpruned) for name, m in models.items()}
    rounds = {name: [uniform(names[name], 1.0 - imp_sparsity(k, fraction)) for k in range(1, levels + 1)]
              for name in models}
    # The examples of one step: the batch size, or its mean over an epoch whose partial last batch is a step.
    per_step = (spe * batch_size if last_batch == "drop" else examples) / spe
    dense_examples, retrain_examples = total * per_step, (total - start) * per_step
    sparsity = imp_sparsity(levels, fraction)
    find, train = ett(flops[source], rounds[source][:-1], flops[target], rounds[target][-1], dense_examples, retrain_examples)
    params = dict(models[target].named_parameters())
    shapes = {n: params[n].shape for n in names[target]}
    kept = round((1.0 - sparsity) * sum(s.numel() for s in shapes.values()))
    rigl_density = densities(shapes, kept, distribution, first=prunable(models[target])[0])
    rows = [
        (f"dense training of {target}", sparse_run(flops[target], None, dense_examples)),
        (f"IMP on {target}: find the level-{levels} mask (dense + {levels - 1} sparse rounds)",
         imp(flops[target], rounds[target][:-1], dense_examples, retrain_examples)),
        (f"IMP on {target}: train the level-{levels} ticket", sparse_run(flops[target], rounds[target][-1], retrain_examples)),
        (f"E-LTH: find the level-{levels} mask once on {source} (dense + {levels - 1} sparse rounds)", find),
        (f"E-LTH: train {target} under the transferred mask", train),
    ]
    for m in multipliers:
        schedule = Schedule(m * total, delta_t, stop=stop)
        rows.append((f"RigL {m}x on {target} ({distribution}, {schedule.updates()} updates every {delta_t} steps)",
                     rigl(flops[target], rigl_density, schedule, per_step)))
    return rows


def table(rows: list[tuple[str, float]], header: str) -> str:
    """A markdown table of the rows, FLOPs and the multiple of the first row (the dense target run)."""
    base = rows[0][1]
    lines = [header, "", "| training | FLOPs | x dense target run |", "| --- | ---: | ---: |"]
    lines += [f"| {what} | {flops:.3e} | {flops / base:.2f} |" for what, flops in rows]
    return "\n".join(lines) + "\n"


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.flops", description=(
        "Print the paper's Sec 4.6 comparison of training FLOPs: IMP, an elastic ticket and RigL, "
        "normalised by one dense training run of the target."))
    p.add_argument("--source", required=True, help="the model IMP runs on, e.g. imagenet-resnet26")
    p.add_argument("--target", required=True, help="the model the ticket is transferred to, e.g. imagenet-resnet34")
    p.add_argument("--dataset", required=True, help="sets the input size and the number of classes")
    p.add_argument("--levels", type=int, required=True, help="IMP levels (6 for 73.79%% at fraction 0.2)")
    p.add_argument("--fraction", type=float, default=0.2, help="fraction of the remaining weights each round prunes")
    p.add_argument("--epochs", type=int, required=True, help="epochs of one training run (RigL's runs: times its multiplier)")
    examples = p.add_mutually_exclusive_group(required=True)
    examples.add_argument("--examples", type=int, help="training examples per epoch")
    examples.add_argument("--manifest", help="the dataset.json elth.data wrote: its training split's size")
    p.add_argument("--train-subset", type=int, help="with --manifest: the study's train_subset, if it trains on one")
    p.add_argument("--batch-size", type=int, required=True, help="sets the steps per epoch")
    p.add_argument("--last-batch", choices=LAST_BATCH, default="drop",
                   help="the dataset's last_batch: drop an epoch's partial last batch (default) or keep it as a step")
    p.add_argument("--rewind", default="0it", help="where retraining starts, e.g. 1000it or 5ep")
    p.add_argument("--unpruned", nargs="*", default=[], help="globs of weights kept dense, e.g. fc.weight")
    p.add_argument("--distribution", choices=DISTRIBUTIONS, default="uniform", help="RigL's per-layer densities")
    p.add_argument("--delta-t", type=int, default=100, help="steps between RigL's mask updates")
    p.add_argument("--stop", type=float, default=0.75, help="fraction of training after which RigL stops updating")
    p.add_argument("--multipliers", type=int, nargs="+", default=[1, 5], help="RigL's training lengths (1x, 5x)")
    p.add_argument("-o", "--out", help="also write the table to this markdown file")
    p.add_argument("--html", help="and as a page of its own, for Snakemake's report")
    args = p.parse_args(argv)
    if args.manifest:
        args.examples = min(files.read_json(args.manifest)["train"], args.train_subset or float("inf"))

    rows = comparison(args.source, args.target, args.dataset, args.levels, args.fraction, args.epochs, args.examples,
                      args.batch_size, args.rewind, args.unpruned, args.distribution, args.delta_t, args.stop,
                      args.multipliers, args.last_batch)
    header = (f"Training FLOPs on {args.dataset} at IMP level {args.levels} (sparsity "
              f"{imp_sparsity(args.levels, args.fraction):.2%}): {args.epochs} epochs of {args.examples} examples, "
              f"batch {args.batch_size}, rewind {args.rewind}. Conv, linear and attention multiply-adds only, "
              f"2 FLOPs each; IMP and elastic masks at uniform per-layer density.")
    text = table(rows, header)
    print(text, end="")
    if args.out:
        files.write_text(args.out, text)
    if args.html:
        files.write_text(args.html, convert(text, f"{args.source} to {args.target}"))


if __name__ == "__main__":
    main()
