"""Training: one entry point for dense runs and for retraining every kind of ticket.

The recipe is the paper's (Table 1, from open_lth): SGD with momentum and weight decay, a step
schedule with optional linear warmup, a fixed batch size. Training is counted in steps; epochs,
milestones, warmup and the rewind point convert to steps with the epoch's number of full batches.

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
from elth import io
from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError, ConfigError, cli_errors
from elth.prune.mask import Mask
from elth.recipe import Recipe

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


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(model: nn.Module, batches) -> tuple[Tensor, Tensor]:
    """Mean loss and accuracy over all `batches`, as device tensors (no host sync)."""
    model.eval()
    loss = correct = count = None
    for x, y in batches:
        out = model(x)
        batch_loss = F.cross_entropy(out, y, reduction="sum")
        batch_correct = (out.argmax(1) == y).sum()
        loss = batch_loss if loss is None else loss + batch_loss
        correct = batch_correct if correct is None else correct + batch_correct
        count = len(y) if count is None else count + len(y)
    return loss / count, correct.float() / count


def train(model: nn.Module, data, recipe: Recipe, seed: int, mask: Mask | None = None, start_step: int = 0,
          snapshot_step: int | None = None, log: Callable[[dict], None] | None = None,
          resume: Path | None = None, fingerprint: str = "", rewire: Rewiring | None = None) -> Result:
    """Train `model` in place from `start_step` to the end of `recipe`; return per-epoch metrics.

    With `snapshot_step`, the model's state at that step (after that many updates) is returned too:
    the rewind point of a dense run. With `resume`, the state after every epoch (weights, momentum,
    metrics, snapshot) is written there atomically, and a run that finds a resume file with the
    same `fingerprint` continues from it. Data order and augmentation depend on (seed, epoch) alone,
    so a resumed run ends with the same weights as an uninterrupted one. With `rewire` (which needs
    a `mask`), the mask may change during training; the mask the run ends with is `Result.mask`.
    """
    device = next(model.parameters()).device
    model.to(memory_format=torch.channels_last)  # matches the batches' layout; a no-op for an MLP
    spe = data.steps_per_epoch(recipe.batch_size)
    total = recipe.total_steps(spe)
    if not 0 <= start_step < total:
        raise ConfigError(f"start step {start_step} is outside the {total} steps of this recipe")
    lr_of = recipe.schedule(spe)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay, foreach=True)
    params = dict(model.named_parameters())
    masked = [params[n] for n in mask] if mask is not None else []
    factors = [mask[n].to(device=device, dtype=params[n].dtype) for n in mask] if mask is not None else []
    if masked:
        with torch.no_grad():
            torch._foreach_mul_(masked, factors)

    snapshot = None
    history: list[dict] = []
    begin = time.perf_counter()
    step = start_step
    saved = _resume_point(resume, fingerprint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        step, history, snapshot = saved["step"], saved["history"], saved.get("snapshot")
        for factor, saved_factor in zip(factors, saved.get("factors", [])):
            factor.copy_(saved_factor)
        begin -= saved["seconds"]
        print(f"resuming from {resume} at step {step} (epoch {step // spe})", flush=True)
    for epoch in range(step // spe, recipe.epochs):
        tic = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        for x, y in data.epoch(seed, epoch, recipe.batch_size, start=step - epoch * spe):
            if step == snapshot_step:
                snapshot = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
            for group in opt.param_groups:
                group["lr"] = lr_of(step)
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if rewire is not None:
                rewire(step, masked, factors, opt)
            opt.step()
            if masked:
                with torch.no_grad():
                    torch._foreach_mul_(masked, factors)
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            seen += len(y)
            step += 1
        test_loss, test_acc = evaluate(model, data.test_batches())
        row = {"epoch": epoch + 1, "step": step, "lr": lr_of(step - 1),
               "train_loss": (loss_sum / seen).item(), "train_acc": (correct.float() / seen).item(),
               "test_loss": test_loss.item(), "test_acc": test_acc.item(), "seconds": time.perf_counter() - tic}
        history.append(row)
        if log is not None:
            log(row)
        if resume is not None and step < total:
            state = {"fingerprint": fingerprint, "step": step, "history": history, "seconds": time.perf_counter() - begin,
                     "model": model.state_dict(), "optimizer": opt.state_dict()}
            if rewire is not None:
                state["factors"] = [f.cpu() for f in factors]
            io.save(resume, "resume", state | ({"snapshot": snapshot} if snapshot is not None else {}))
    final_mask = Mask({n: f.cpu() for n, f in zip(mask, factors)}) if mask is not None else None
    return Result(history, snapshot, time.perf_counter() - begin, final_mask)


def _resume_point(path: Path | None, fingerprint: str) -> dict | None:
    """The saved state of an interrupted run of the same job, or None to start afresh."""
    if path is None or not path.is_file():
        return None
    try:
        saved = io.load(path, "resume")
    except CheckpointError as err:
        print(f"ignoring resume file: {err}", flush=True)
        return None
    if saved.get("fingerprint") != fingerprint:
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


def save_run(out: Path, model_name: str, dataset: str, seed: int, recipe: Recipe, spe: int, start: int, meta: dict,
             model: nn.Module, result: Result, rewind: int | None, device: str) -> None:
    """Write a finished run's files: rewind.pt (dense runs), final.pt with the mask it ended with,
    metrics.csv, and summary.json, the row the aggregation reads."""
    if rewind is not None:
        Checkpoint(model_name, dataset, rewind, result.snapshot, meta={"seed": seed}).save(out / "rewind.pt")
    mask = result.mask
    Checkpoint(model_name, dataset, recipe.total_steps(spe), model.state_dict(), mask, meta).save(out / "final.pt")
    io.write_text(out / "metrics.csv", metrics_csv(result.history))
    last = result.history[-1]
    io.write_json(out / "summary.json", {
        "model": model_name, "dataset": dataset, "seed": seed,
        "method": meta.get("method", "dense"), "source": meta.get("source", ""), "scheme": meta.get("scheme", ""),
        "level": meta.get("level", 0), "sparsity": mask.sparsity if mask is not None else 0.0,
        "test_acc": last["test_acc"], "best_acc": max(r["test_acc"] for r in result.history),
        "test_loss": last["test_loss"], "epochs": recipe.epochs, "steps": recipe.total_steps(spe) - start,
        "wall_s": result.seconds, "device": device,
    })


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.train", description=(
        "Train a model densely from its seeded initialisation (saving the rewind point), or retrain a ticket."))
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--recipe", required=True, help="the training recipe as JSON (see config.yaml)")
    p.add_argument("--data", default="{}", help="dataset options as JSON: root, download, train_subset, augment")
    p.add_argument("--ticket", help="retrain this ticket; without it, train densely from the seeded init")
    p.add_argument("--out", required=True, help="directory for final.pt, metrics.csv, summary.json (and rewind.pt)")
    p.add_argument("--data-seed", type=int, help=(
        "seed of the data order and augmentation (the SGD noise), if not --seed: linear mode "
        "connectivity trains copies of one ticket under different noise"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:n]")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    recipe = Recipe.from_dict(json.loads(args.recipe))
    opts = json.loads(args.data)
    device = pick_device(args.device)
    out = Path(args.out)

    if args.ticket:
        ticket = Checkpoint.load(args.ticket, "ticket", model=args.model, dataset=args.dataset)
        model = ticket.build_model()
        mask, start, meta = ticket.mask, ticket.step, dict(ticket.meta)
    else:
        model = build_for(args.model, args.dataset, seed=args.seed)
        mask, start, meta = None, 0, {"method": "dense", "level": 0}
    model.to(device)

    data = datasets.open_data(args.dataset, opts, device, workers=args.threads)
    spe = data.steps_per_epoch(recipe.batch_size)
    rewind = None if args.ticket else recipe.rewind_step(spe)
    if args.ticket and start >= recipe.total_steps(spe):
        raise CheckpointError(f"{args.ticket}: its step {start} is past the end of this recipe ({recipe.total_steps(spe)} steps)")

    print(f"{args.model} on {args.dataset}, seed {args.seed}, {device}: {recipe.epochs} epochs of {spe} steps, "
          f"from step {start}" + (f", mask sparsity {mask.sparsity:.2%}" if mask is not None else ""), flush=True)
    # An interrupted run (preemption, SIGKILL) leaves resume.pt; rerunning the job continues from it.
    resume = out / "resume.pt"
    noise = args.seed if args.data_seed is None else args.data_seed
    fingerprint = signature(args.model, args.dataset, args.seed, noise, recipe.__dict__, opts,
                            *([Path(args.ticket)] if args.ticket else []))
    result = train(model, data, recipe, noise, mask=mask, start_step=start, snapshot_step=rewind,
                   log=lambda r: print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True),
                   resume=resume, fingerprint=fingerprint)

    save_run(out, args.model, args.dataset, args.seed, recipe, spe, start, meta, model, result, rewind,
             device_name(device, args.threads))
    resume.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
