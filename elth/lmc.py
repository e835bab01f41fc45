"""Linear mode connectivity (Frankle et al. 2020; the paper's Sec 4.4 and Fig 7).

Two copies of one ticket are trained from the same rewind weights under different SGD noise (data
order and augmentation: `python -m elth.train --ticket ... --data-seed n`). A ticket is stable when
the straight line between the two trained weight vectors, (1 - alpha) theta_a + alpha theta_b,
keeps the endpoints' accuracy; its instability is the largest error along the line minus the mean
of the endpoints' errors.

Along the line the BatchNorm running statistics are interpolated like every other float tensor,
but a mean of two networks' statistics need not be the statistics of the mean network. So each
alpha is measured twice: with the interpolated statistics (what the authors' code measured), and
with statistics recomputed on training batches, a fixed, deterministic set for every alpha. The
masks of the two copies are the ticket's own, so a pruned weight is zero at both ends and stays
exactly zero at every alpha. (A model without BN gets the same numbers in both modes.)
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from elth import data as datasets
from elth import files
from elth.checkpoint import Checkpoint
from elth.errors import CheckpointError, ConfigError, cli_errors
from elth.gpus import pin_gpu
from elth.train import device_name, evaluate, pick_device

BN_MODES = ("interpolated", "recomputed")
# The data order of the batches BN statistics are recomputed on: one fixed seed, so every alpha
# (and every rerun) sees the same images.
BN_SEED = 0
IDENTITY = ["dataset", "model", "seed", "method", "source", "scheme", "level", "sparsity", "noise_a", "noise_b"]
COLUMNS = [*IDENTITY, "alpha", "bn", "test_acc", "test_loss", "train_acc", "train_loss"]


def alphas(count: int) -> list[float]:
    """`count` evenly spaced points of [0, 1], the ends exactly 0.0 and 1.0."""
    if count < 2:
        raise ConfigError(f"linear mode connectivity needs at least 2 alphas (the two ends), not {count}")
    return [i / (count - 1) for i in range(count)]


def check_pair(a: Checkpoint, b: Checkpoint, where_a: str = "a", where_b: str = "b") -> None:
    """Refuse two checkpoints that are not trained copies of one ticket: another model, dataset,
    mask, ticket or tensor layout would make the line between them meaningless."""
    pair = f"{where_a} and {where_b}"
    for field in ("model", "dataset"):
        if getattr(a, field) != getattr(b, field):
            raise CheckpointError(f"{pair} are not copies of one ticket: {field} {getattr(a, field)!r} against "
                                  f"{getattr(b, field)!r}")
    if a.mask is None or b.mask is None:
        raise CheckpointError(f"{pair}: {'neither has' if a.mask is b.mask else 'only one has'} a mask; "
                              "linear mode connectivity compares two retrained copies of one ticket")
    if a.mask != b.mask:
        raise CheckpointError(f"{pair} are not copies of one ticket: their masks differ")
    # The copies differ in their SGD noise (data_seed) by design; everything else names the ticket.
    differ = sorted(k for k in (set(a.meta) | set(b.meta)) - {"data_seed"} if a.meta.get(k) != b.meta.get(k))
    if differ:
        raise CheckpointError(f"{pair} are not copies of one ticket: their tickets differ in "
                              + ", ".join(f"{k} ({a.meta.get(k)!r} against {b.meta.get(k)!r})" for k in differ))
    if set(a.state) != set(b.state):
        raise CheckpointError(f"{pair}: their tensors differ: {sorted(set(a.state) ^ set(b.state))[:3]}")
    for k, v in a.state.items():
        if v.shape != b.state[k].shape or v.dtype != b.state[k].dtype:
            raise CheckpointError(f"{pair}: {k} is {v.dtype} {tuple(v.shape)} against {b.state[k].dtype} "
                                  f"{tuple(b.state[k].shape)}")
    for ckpt, where in ((a, where_a), (b, where_b)):
        for name, keep in ckpt.mask.items():
            if (ckpt.state[name][~keep] != 0).any():
                raise CheckpointError(f"{where}: {name} has nonzero weights outside its mask; it was not trained "
                                      "under the mask it records")


def interpolate(a: dict[str, Tensor], b: dict[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """(1 - alpha) a + alpha b for every floating-point tensor; integer buffers (BN's
    num_batches_tracked) come from `a`. The ends return a's and b's tensors bit for bit."""
    out = {}
    for k, va in a.items():
        if not va.is_floating_point() or alpha == 0.0:
            out[k] = va.clone()
        elif alpha == 1.0:
            out[k] = b[k].clone()
        else:
            out[k] = (1.0 - alpha) * va + alpha * b[k]
    return out


def norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def bn_batches(data, batch_size: int, count: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The first `count` training batches of the fixed seed BN_SEED, continuing into later epochs
    when one epoch has fewer batches: the same batches on every call."""
    epoch = 0
    while count > 0:
        for batch in data.epoch(BN_SEED, epoch, batch_size):
            yield batch
            count -= 1
            if count == 0:
                return
        epoch += 1


@torch.no_grad()
def recompute_bn(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> int:
    """Replace every BN layer's running statistics by their plain average over `batches` (reset,
    momentum None, forward in train mode); return the number of batches seen. The layers'
    momentum is restored and the model left in eval mode."""
    layers = norm_layers(model)
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    seen = 0
    try:
        for x, _ in batches:
            model(x)
            seen += 1
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.eval()
    return seen


def train_batches(data, size: int, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """The first `size` training images in their stored order, unaugmented, in the test set's batches (the
    device's `eval_batch_size`): the training error."""
    if not hasattr(data, "train"):
        raise ConfigError("measuring the training error needs an in-memory dataset; set lmc.train_eval to 0")
    size = min(size, len(data.train))
    batch_size = batch_size or datasets.eval_batch_size(data.device)
    for i in range(0, size, batch_size):
        j = min(i + batch_size, size)
        yield data.normalize(data.train.images[i:j]), data.train.labels[i:j]


def identity(ckpt: Checkpoint, noise: tuple[int, int]) -> dict:
    """The columns that say which ticket a row belongs to, as runs.csv names them."""
    meta = ckpt.meta
    return {"dataset": ckpt.dataset, "model": ckpt.model, "seed": meta.get("seed"), "method": meta.get("method", ""),
            "source": meta.get("source", ""), "scheme": meta.get("scheme", ""), "level": meta.get("level", 0),
            "sparsity": ckpt.mask.sparsity if ckpt.mask is not None else 0.0, "noise_a": noise[0], "noise_b": noise[1]}


def measure(a: Checkpoint, b: Checkpoint, data, points: Sequence[float], bn_count: int, batch_size: int,
            train_size: int = 0, noise: tuple[int, int] = (0, 0)) -> list[dict]:
    """One row per (alpha, BN mode): test (and with `train_size`, training) accuracy and loss of the
    interpolated weights, with interpolated and with recomputed BN statistics."""
    check_pair(a, b)
    device = data.device
    model = a.build_model().to(device).to(memory_format=torch.channels_last)
    ids = identity(a, noise)
    has_bn = bool(norm_layers(model))
    rows = []
    for alpha in points:
        model.load_state_dict(interpolate(a.state, b.state, alpha))
        for mode in BN_MODES:
            if mode == "recomputed" and has_bn:
                recompute_bn(model, bn_batches(data, batch_size, bn_count))
            test_loss, test_acc = evaluate(model, data.test_batches())
            row = {**ids, "alpha": alpha, "bn": mode, "test_acc": test_acc.item(), "test_loss": test_loss.item(),
                   "train_acc": None, "train_loss": None}
            if train_size:
                train_loss, train_acc = evaluate(model, train_batches(data, train_size))
                row.update(train_acc=train_acc.item(), train_loss=train_loss.item())
            rows.append(row)
    return rows


def instability(points: Sequence[float], errors: Sequence[float]) -> float:
    """Frankle et al. (2020): the largest error along the line minus the mean of the two ends'
    errors (the ends are the points at alpha 0 and 1)."""
    ends = [e for p, e in zip(points, errors) if p in (0.0, 1.0)]
    if len(ends) != 2:
        raise ConfigError("instability needs the errors at alpha 0 and alpha 1")
    return max(errors) - sum(ends) / 2


def summarize(rows: list[dict], **settings: object) -> dict:
    """Per BN mode: the instability of the test (and training) error, the worst alpha, the ends."""
    out = {k: rows[0][k] for k in IDENTITY} | dict(settings) | {"instability": {}}
    for mode in BN_MODES:
        here = [r for r in rows if r["bn"] == mode]
        points = [r["alpha"] for r in here]
        result = {}
        for split in ("test", "train"):
            if here[0][f"{split}_acc"] is None:
                continue
            errors = [1.0 - r[f"{split}_acc"] for r in here]
            worst = max(range(len(errors)), key=errors.__getitem__)
            result[split] = {"instability": instability(points, errors), "max_error": errors[worst],
                             "at_alpha": points[worst], "error_a": errors[points.index(0.0)],
                             "error_b": errors[points.index(1.0)]}
        out["instability"][mode] = result
    return out


def rows_csv(rows: list[dict]) -> str:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.lmc", description=(
        "Linear mode connectivity of two trained copies of one ticket: test accuracy along the line "
        "between them, with interpolated and with recomputed BN statistics, and the instability."))
    p.add_argument("a", help="final.pt of the first copy")
    p.add_argument("b", help="final.pt of the second copy (same ticket, other data seed)")
    p.add_argument("--noise-seeds", type=int, nargs=2, required=True, metavar=("A", "B"),
                   help="the data seeds the copies were trained with (recorded in every row)")
    p.add_argument("--data", default="{}",
                   help="dataset options as JSON: root, download, train_subset, augment, normalize, last_batch")
    p.add_argument("--alphas", type=int, default=21, help="evenly spaced points of [0, 1], ends included (default 21)")
    p.add_argument("--bn-batches", type=int, default=40, help="training batches the BN statistics are recomputed on")
    p.add_argument("--batch-size", type=int, default=128, help="size of those batches (the recipe's)")
    p.add_argument("--train-eval", type=int, default=0, help="also measure the error on this many training images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:n]")
    p.add_argument("--csv", required=True, help="one row per alpha and BN mode")
    p.add_argument("--json", required=True, help="the instability per BN mode")
    args = p.parse_args(argv)
    pin_gpu(args.device)  # before anything starts CUDA: a workstation's jobs each take a free GPU
    if args.noise_seeds[0] == args.noise_seeds[1]:
        raise ConfigError(f"the two copies need different data seeds, not {args.noise_seeds[0]} twice")
    if args.bn_batches < 1:
        raise ConfigError("--bn-batches must be at least 1")

    torch.set_num_threads(args.threads)
    a = Checkpoint.load(args.a)
    b = Checkpoint.load(args.b)
    check_pair(a, b, args.a, args.b)  # before the data loads, and naming the files
    device = pick_device(args.device)
    data = datasets.open_data(a.dataset, json.loads(args.data), device, workers=args.threads)
    points = alphas(args.alphas)
    noise = (args.noise_seeds[0], args.noise_seeds[1])
    rows = measure(a, b, data, points, args.bn_batches, args.batch_size, args.train_eval, noise)
    summary = summarize(rows, alphas=len(points), bn_batches=args.bn_batches, batch_size=args.batch_size,
                        train_eval=args.train_eval, device=device_name(device, args.threads))
    files.write_text(Path(args.csv), rows_csv(rows))
    files.write_json(Path(args.json), summary)
    for mode, result in summary["instability"].items():
        test = result["test"]
        print(f"{mode} BN: test error {test['error_a']:.2%} and {test['error_b']:.2%} at the ends, "
              f"{test['max_error']:.2%} at alpha {test['at_alpha']:.2f}: instability {test['instability']:.2%}")


if __name__ == "__main__":
    main()
