"""Training: one entry point for dense runs and for retraining every kind of ticket.

The recipe is the paper's (Table 1, from open_lth): SGD with momentum and weight decay, a step
schedule with optional linear warmup, a fixed batch size (or, for families the paper does not
train, AdamW and a cosine decay: elth/recipe.py). Training is counted in steps; epochs,
milestones, warmup and the rewind point convert to steps with the epoch's number of batches
(`DeviceData.steps_per_epoch`).

A ticket's retraining starts at the ticket's step (the rewind point) with fresh momentum, the
learning rate that step has in the schedule, and the data order of that step, as open_lth's
lottery runner does. The mask is applied to the weights before the first step and after every
optimizer step, so a pruned weight is exactly 0.0 whenever the model is evaluated or saved.

Metrics are accumulated on the device and read once per epoch: there is no host sync per step.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io as _io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elth import data as datasets
from elth import files, imp, io, optim
from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError, ConfigError, cli_errors
from elth.gpus import pick_device, pin_gpu
from elth.prune.magnitude import COUNTS
from elth.prune.mask import Mask
from elth.recipe import Recipe
from elth.stack import stack_models, stack_state, unstack_state


@dataclass
class Result:
    history: list[dict]
    snapshot: dict[str, Tensor] | None
    seconds: float
    mask: Mask | None = None


class Rewiring(Protocol):
    """Dynamic sparse training's hook (RigL): called after the backward pass of every step, before
    the optimizer step, with the masked weights (their .grad set), their 0/1 mask factors, which it
    may change in place, and the optimizer (to reset the momentum of regrown weights). The engine
    applies the factors after the optimizer step as always."""

    def __call__(self, step: int, weights: list[Tensor], masks: list[Tensor], optimizer: torch.optim.Optimizer) -> None: ...


PRECISIONS = ("fp32", "bf16")


def _inputs(x: Tensor, k: int) -> Tensor:
    """The input of K stacked copies that all see the batch `x`: K channel blocks."""
    return x if k == 1 else x.repeat(1, k, *([1] * (x.dim() - 2)))


def _per_copy_loss(out: Tensor, y: Tensor, k: int) -> Tensor:
    """Mean cross-entropy of each of the K copies (a vector of K), in fp32 whatever the forward's
    precision. `y` is (B,) when the copies share a batch, else (B, K)."""
    batch = out.shape[0]
    logits = out.float().reshape(batch * k, -1)
    labels = (y.unsqueeze(1).expand(batch, k) if y.dim() == 1 else y).reshape(-1)
    return F.cross_entropy(logits, labels, reduction="none").view(batch, k).mean(0)


def _per_copy_correct(out: Tensor, y: Tensor, k: int) -> Tensor:
    predicted = out.reshape(out.shape[0], k, -1).argmax(2)
    return (predicted == (y.unsqueeze(1) if y.dim() == 1 else y)).sum(0)


@torch.no_grad()
def evaluate_copies(model: nn.Module, k: int, batches, precision: str = "fp32") -> tuple[Tensor, Tensor]:
    """Mean loss and accuracy of each of `k` stacked copies over all `batches`, as device tensors
    of K values (no host sync)."""
    model.eval()
    loss = correct = None
    count = 0
    for x, y in batches:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(_inputs(x, k))
        batch_loss = _per_copy_loss(out, y, k) * len(y)
        batch_correct = _per_copy_correct(out, y, k)
        loss = batch_loss if loss is None else loss + batch_loss
        correct = batch_correct if correct is None else correct + batch_correct
        count += len(y)
    return loss / count, correct.float() / count


def evaluate(model: nn.Module, batches, precision: str = "fp32") -> tuple[Tensor, Tensor]:
    """Mean loss and accuracy of one model over all `batches`, as device tensors (no host sync)."""
    loss, acc = evaluate_copies(model, 1, batches, precision)
    return loss[0], acc[0]


def train(model: nn.Module, data, recipe: Recipe, seed: int, mask: Mask | None = None, start_step: int = 0,
          snapshot_step: int | None = None, log: Callable[[dict], None] | None = None,
          resume: Path | None = None, fingerprint: str = "", rewire: Rewiring | None = None,
          precision: str = "fp32", compile: bool = False) -> Result:
    """Train `model` in place from `start_step` to the end of `recipe`; return per-epoch metrics.

    With `snapshot_step`, the model's state at that step (after that many updates) is returned too:
    the rewind point of a dense run, where a recipe with `momentum_at_rewind: reset` also zeroes
    SGD's momentum (open_lth's restart of level 0 from the rewind weights). With `resume`, the
    state after every epoch (weights, momentum, metrics, snapshot) is written there atomically, and
    a run that finds a resume file with the same `fingerprint` continues from it. Data order and
    augmentation depend on (seed, epoch) alone, so a resumed run ends with the same weights as an
    uninterrupted one. With `rewire` (which needs a `mask`), the mask may change during training;
    the mask the run ends with is `Result.mask`.
    `precision="bf16"` runs forward and backward under bf16 autocast; weights, loss, optimizer and
    mask stay fp32. `compile` wraps the forward in torch.compile.
    """
    histories, snapshot, seconds, factors = _fit(
        model, 1, data, recipe, [seed], mask, start_step, snapshot_step,
        (lambda rows: log(rows[0])) if log is not None else None, resume, fingerprint, rewire, precision, compile)
    final = Mask({n: f.cpu() for n, f in factors.items()}) if mask is not None else None
    return Result(histories[0], snapshot, seconds, final)


def train_together(models: list[nn.Module], data, recipe: Recipe, seeds: list[int], masks: list[Mask | None],
                   start_step: int = 0, snapshot_step: int | None = None,
                   log: Callable[[int, dict], None] | None = None, resume: Path | None = None,
                   fingerprint: str = "", precision: str = "fp32", compile: bool = False) -> list[Result]:
    """Train K models of one architecture at once, stacked into one module (elth.stack), each
    with its own data seed and mask, from one start step; each model ends with the weights it
    would have had trained alone (to floating-point tolerance) and gets its own Result. Copies
    with one seed share each batch; otherwise each copy reads its own."""
    k = len(models)
    if len({m is None for m in masks}) > 1 or len(masks) != k or len(seeds) != k:
        raise ConfigError("training together needs one seed and one mask per model, and all or none masked")
    stacked = stack_models(models)
    one = models[0].state_dict()
    mask = None
    if masks[0] is not None:
        like = {n: p for n, p in stacked.named_parameters() if n in masks[0]}
        mask = Mask(stack_state([{n: m[n] for n in m} for m in masks], like))
    histories, snapshot, seconds, factors = _fit(
        stacked, k, data, recipe, seeds, mask, start_step, snapshot_step,
        (lambda rows: [log(i, row) for i, row in enumerate(rows)]) if log is not None else None,
        resume, fingerprint, None, precision, compile)
    states = unstack_state(stacked.state_dict(), one, k)
    snapshots = unstack_state(snapshot, one, k) if snapshot is not None else [None] * k
    finals = unstack_state(factors, {n: one[n] for n in factors}, k) if mask is not None else [None] * k
    results = []
    for model, state, history, snap, final in zip(models, states, histories, snapshots, finals):
        model.load_state_dict(state)
        results.append(Result(history, snap, seconds, Mask(final) if final is not None else None))
    return results


def _batches(data, seeds: list[int], epoch: int, batch_size: int, start: int):
    """One epoch's batches for K copies: shared when they have one seed, else K channel blocks."""
    if len(set(seeds)) == 1:
        for x, y in data.epoch(seeds[0], epoch, batch_size, start=start):
            yield _inputs(x, len(seeds)), y
        return
    for parts in zip(*(data.epoch(s, epoch, batch_size, start=start) for s in seeds)):
        yield torch.cat([x for x, _ in parts], dim=1), torch.stack([y for _, y in parts], dim=1)


def _fit(model: nn.Module, k: int, data, recipe: Recipe, seeds: list[int], mask: Mask | None, start_step: int,
         snapshot_step: int | None, log: Callable[[list[dict]], None] | None, resume: Path | None,
         fingerprint: str, rewire: Rewiring | None, precision: str, compile: bool):
    """The training loop of `train` for K stacked copies (K=1: a plain model); returns the copies'
    histories, the snapshot, the seconds taken and the final mask factors by name."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {PRECISIONS}")
    device = next(model.parameters()).device
    model.to(memory_format=torch.channels_last)  # matches the batches' layout; a no-op for an MLP
    forward = torch.compile(model) if compile else model
    spe = data.steps_per_epoch(recipe.batch_size)
    total = recipe.total_steps(spe)
    if not 0 <= start_step < total:
        raise ConfigError(f"start step {start_step} is outside the {total} steps of this recipe")
    lr_of = recipe.schedule(spe)
    if recipe.optimizer == "adamw":
        opt: torch.optim.Optimizer = optim.AdamW(model.parameters(), lr=recipe.lr, betas=(recipe.momentum, 0.999),
                                                 weight_decay=recipe.weight_decay, foreach=True)
    else:
        opt = optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                        foreach=True)
    params = dict(model.named_parameters())
    masked = [params[n] for n in mask] if mask is not None else []
    factors = [mask[n].to(device=device, dtype=params[n].dtype) for n in mask] if mask is not None else []
    if masked:
        with torch.no_grad():
            torch._foreach_mul_(masked, factors)
    bf16 = precision == "bf16"

    snapshot = None
    histories: list[list[dict]] = [[] for _ in range(k)]
    begin = time.perf_counter()
    step = start_step
    saved = _resume_point(resume, fingerprint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        step, histories, snapshot = saved["step"], saved["histories"], saved.get("snapshot")
        for factor, saved_factor in zip(factors, saved.get("factors", [])):
            factor.copy_(saved_factor)
        begin -= saved["seconds"]
        print(f"resuming from {resume} at step {step} (epoch {step // spe})", flush=True)
    for epoch in range(step // spe, recipe.epochs):
        tic = time.perf_counter()
        model.train()
        loss_sum = torch.zeros(k, device=device)
        correct = torch.zeros(k, device=device, dtype=torch.int64)
        seen = 0
        for x, y in _batches(data, seeds, epoch, recipe.batch_size, start=step - epoch * spe):
            if step == snapshot_step:
                snapshot = {name: v.detach().clone().cpu() for name, v in model.state_dict().items()}
                if recipe.momentum_at_rewind == "reset":
                    opt.state.clear()  # open_lth's level 0: on from the rewind weights with a fresh optimizer
            for group in opt.param_groups:
                group["lr"] = lr_of(step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = forward(x)
            losses = _per_copy_loss(out, y, k)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            if rewire is not None:
                rewire(step, masked, factors, opt)
            opt.step()
            if masked:
                with torch.no_grad():
                    torch._foreach_mul_(masked, factors)
            loss_sum += losses.detach() * len(y)
            correct += _per_copy_correct(out.detach(), y, k)
            seen += len(y)
            step += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # once per epoch, so train_seconds is the training's alone
        trained = time.perf_counter() - tic
        test_loss, test_acc = evaluate_copies(forward, k, data.test_batches(), precision)
        rows = [{"epoch": epoch + 1, "step": step, "lr": lr_of(step - 1), "train_loss": tl, "train_acc": ta,
                 "test_loss": vl, "test_acc": va, "train_seconds": trained, "seconds": time.perf_counter() - tic}
                for tl, ta, vl, va in zip((loss_sum / seen).tolist(), (correct.float() / seen).tolist(),
                                          test_loss.tolist(), test_acc.tolist())]
        for history, row in zip(histories, rows):
            history.append(row)
        if log is not None:
            log(rows)
        if resume is not None and step < total:
            state = {"fingerprint": fingerprint, "step": step, "histories": histories, "seconds": time.perf_counter() - begin,
                     "model": model.state_dict(), "optimizer": opt.state_dict()}
            if rewire is not None:
                state["factors"] = [f.cpu() for f in factors]
            io.save(resume, "resume", state | ({"snapshot": snapshot} if snapshot is not None else {}))
    return histories, snapshot, time.perf_counter() - begin, dict(zip(mask or {}, factors))


def _resume_point(path: Path | None, fingerprint: str) -> dict | None:
    """The saved state of an interrupted run of the same job, or None to start afresh."""
    if path is None or not path.is_file():
        return None
    try:
        saved = io.load(path, "resume")
    except CheckpointError as err:
        print(f"ignoring resume file: {err}", flush=True)
        return None
    if saved.get("fingerprint") != fingerprint or "histories" not in saved:
        print(f"ignoring {path}: it belongs to another configuration of this job", flush=True)
        return None
    return saved


def signature(*parts: object) -> str:
    """A fingerprint of everything a run depends on, so a resume file is used only by the same run."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(Path(part).read_bytes() if isinstance(part, Path) else json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()


def metrics_csv(history: list[dict]) -> str:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def device_name(device: torch.device, threads: int) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({threads} threads)"


def rewind_point(model_name: str, dataset: str, seed: int, step: int, result: Result) -> Checkpoint:
    """A dense run's rewind checkpoint: its weights at `step`, the rewind.pt every ticket restarts from."""
    return Checkpoint(model_name, dataset, step, result.snapshot, meta={"seed": seed})


def save_run(out: Path, model_name: str, dataset: str, seed: int, recipe: Recipe, spe: int, start: int, meta: dict,
             model: nn.Module, result: Result, rewind: int | None, device: str) -> None:
    """Write a finished run's files: rewind.pt (dense runs), final.pt with the mask it ended with,
    metrics.csv, and summary.json, the row the aggregation reads, its sparsity in both conventions
    (`elth.prune.mask.SPARSITY_CONVENTIONS`)."""
    if rewind is not None:
        rewind_point(model_name, dataset, seed, rewind, result).save(out / "rewind.pt")
    mask = result.mask
    Checkpoint(model_name, dataset, recipe.total_steps(spe), model.state_dict(), mask, meta).save(out / "final.pt")
    files.write_text(out / "metrics.csv", metrics_csv(result.history))
    last = result.history[-1]
    files.write_json(out / "summary.json", {
        "model": model_name, "dataset": dataset, "seed": seed,
        "method": meta.get("method", "dense"), "source": meta.get("source", ""), "scheme": meta.get("scheme", ""),
        "level": meta.get("level", 0), "sparsity": mask.sparsity if mask is not None else 0.0,
        "sparsity_all": mask.sparsity_all(model) if mask is not None else 0.0,
        "test_acc": last["test_acc"], "best_acc": max(r["test_acc"] for r in result.history),
        "test_loss": last["test_loss"], "epochs": recipe.epochs, "steps": recipe.total_steps(spe) - start,
        "wall_s": result.seconds, "device": device,
    })


def engine_arguments(p: argparse.ArgumentParser) -> None:
    """The options of every CLI that trains: where and how the engine runs."""
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16: forward and backward under bf16 autocast (loss, optimizer, weights and masks in fp32)")
    p.add_argument("--compile", action="store_true", help="wrap the forward pass in torch.compile")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:n]")


def print_row(row: dict, prefix: str = "") -> None:
    print(prefix + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.train", description=(
        "Train a model densely from its seeded initialisation (saving the rewind point), or retrain "
        "tickets: one, or several of one model at once (each --ticket with its --out, in order)."))
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--recipe", required=True, help="the training recipe as JSON (see config.yaml)")
    p.add_argument("--data", default="{}",
                   help="dataset options as JSON: root, download, train_subset, augment, normalize, last_batch")
    p.add_argument("--ticket", action="append", default=[],
                   help="retrain this ticket (repeat to train several together); without it, train densely from the seeded init")
    p.add_argument("--out", action="append", required=True,
                   help="directory for final.pt, metrics.csv, summary.json (and rewind.pt); one per --ticket")
    p.add_argument("--data-seed", type=int, help=(
        "seed of the data order and augmentation (the SGD noise), if not --seed: linear mode "
        "connectivity trains copies of one ticket under different noise"))
    engine_arguments(p)
    nxt = p.add_argument_group("the next IMP round, in the same process: after retraining an IMP ticket of level k "
                               "(or the dense run, level 0), prune its trained weights into the ticket of level k+1")
    nxt.add_argument("--next-ticket", help="where the ticket of level k+1 goes (its JSON beside it)")
    nxt.add_argument("--rewind", help="the dense run's rewind checkpoint, the next ticket's weights (after a dense run: "
                                      "its own, so not given)")
    nxt.add_argument("--fraction", type=float, help="fraction of the remaining weights to prune")
    nxt.add_argument("--count", choices=COUNTS, default="nearest", help="the count rule (python -m elth.imp --help)")
    nxt.add_argument("--unpruned", nargs="*", default=[], help="globs of weights never pruned, e.g. fc.weight")
    args = p.parse_args(argv)
    if args.next_ticket and (args.fraction is None or len(args.ticket) > 1 or bool(args.ticket) != (args.rewind is not None)):
        p.error("--next-ticket needs --fraction, and after retraining one --ticket (an IMP ticket) also --rewind; "
                "a dense run prunes its own weights into level 1's ticket, from its own rewind point")
    pin_gpu(args.device)  # before anything starts CUDA: a workstation's jobs each take a free GPU
    if len(args.out) != max(1, len(args.ticket)):
        p.error(f"give one --out per --ticket ({len(args.ticket)} tickets, {len(args.out)} --out)")

    torch.set_num_threads(args.threads)
    recipe = Recipe.from_dict(json.loads(args.recipe))
    opts = json.loads(args.data)
    device = pick_device(args.device)
    outs = [Path(o) for o in args.out]

    if args.ticket:
        tickets = [Checkpoint.load(t, "ticket", model=args.model, dataset=args.dataset) for t in args.ticket]
        models = [t.build_model() for t in tickets]
        masks, metas = [t.mask for t in tickets], [dict(t.meta) for t in tickets]
        starts = {t.step for t in tickets}
        if len(starts) > 1:
            raise CheckpointError(f"tickets trained together must start at one step; {args.ticket} start at {sorted(starts)}")
        start = starts.pop()
    else:
        models, masks, metas, start = [build_for(args.model, args.dataset, seed=args.seed)], [None], [{"method": "dense", "level": 0}], 0
    for model in models:
        model.to(device)

    data = datasets.open_data(args.dataset, opts, device, workers=args.threads)
    spe = data.steps_per_epoch(recipe.batch_size)
    rewind = None if args.ticket else recipe.rewind_step(spe)
    if start >= recipe.total_steps(spe):
        raise CheckpointError(f"{args.ticket[0]}: its step {start} is past the end of this recipe ({recipe.total_steps(spe)} steps)")

    print(f"{args.model} on {args.dataset}, seed {args.seed}, {device}, {args.precision}: {len(models)} run(s) of "
          f"{recipe.epochs} epochs of {spe} steps, from step {start}", flush=True)
    # An interrupted run (preemption, SIGKILL) leaves resume.pt; rerunning the job continues from it.
    resume = outs[0] / "resume.pt"
    noise = args.seed if args.data_seed is None else args.data_seed
    if args.data_seed is not None:
        for meta in metas:
            meta["data_seed"] = noise  # kept in final.pt: which SGD noise trained this copy
    fingerprint = signature(args.model, args.dataset, args.seed, noise, recipe.__dict__, opts, args.precision,
                            *(Path(t) for t in args.ticket))
    if len(models) == 1:
        results = [train(models[0], data, recipe, noise, mask=masks[0], start_step=start, snapshot_step=rewind,
                         log=print_row, resume=resume, fingerprint=fingerprint, precision=args.precision,
                         compile=args.compile)]
    else:
        results = train_together(models, data, recipe, [noise] * len(models), masks, start_step=start,
                                 log=lambda i, row: print_row(row, f"{outs[i]}: "), resume=resume,
                                 fingerprint=fingerprint, precision=args.precision, compile=args.compile)
    for out, model, meta, result in zip(outs, models, metas, results):
        save_run(out, args.model, args.dataset, args.seed, recipe, spe, start, meta, model, result, rewind,
                 device_name(device, args.threads))
    if args.next_ticket:
        trained = Checkpoint(args.model, args.dataset, recipe.total_steps(spe),
                             {k: v.cpu() for k, v in models[0].state_dict().items()}, results[0].mask)
        if args.ticket:
            previous, rewound = tickets[0], Checkpoint.load(args.rewind)
            if previous.meta.get("method") != "imp":
                raise CheckpointError(f"{args.ticket[0]}: --next-ticket prunes an IMP ticket's retraining, not a "
                                      f"{previous.meta.get('method')} ticket's")
        else:  # the dense run: level 1 from its own rewind point, the rewind.pt it just wrote
            previous, rewound = None, rewind_point(args.model, args.dataset, args.seed, rewind, results[0])
        level = previous.meta["level"] + 1 if previous is not None else 1
        imp.save(imp.next_ticket(rewound, trained, previous, level, args.fraction, args.unpruned, args.count),
                 args.next_ticket)
    resume.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
