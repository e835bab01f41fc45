"""Benchmark: training throughput of the elth engine against an open_lth-style reference loop.

One process, one invocation, the same model, data subset, batch size, step count and schedule:
(a) the reference: a torchvision dataset with per-sample PIL transforms through a DataLoader,
fp32, `.item()` every step (as open_lth and ElasticLTH train); (b) the elth engine (data and
augmentation on the device, channels_last, foreach masks, no per-step sync), in fp32 and, with
`--bf16`, under bf16 autocast; (c) K tickets at once, both ways elth can: stacked into one module in
one process (`train_together`, K = `--copies`), and K engine processes running concurrently
(`--concurrent`), each with its share of the threads. It prints images/s (counting every ticket's
images), the ratio to (a), test accuracy after the fixed schedule (so a speedup that costs accuracy
shows), and the achieved FLOP/s as a fraction of this machine's measured matmul FLOP/s; then it
appends one row per loop to bench/results/<device>.csv.

Run: .venv/bin/python bench/train_throughput.py [--model resnet20] [--epochs 3] [--steps 50] [--threads 2]
     [--copies 1,4,8,16] [--concurrent 2] [--bf16]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from elth import data as datasets
from elth.checkpoint import build_for
from elth.recipe import Recipe
from elth.train import evaluate, pick_device, train, train_together

ROOT = Path(__file__).resolve().parents[1]


def reference(model, dataset: str, root: str, indices: list[int], recipe: Recipe, device) -> float:
    """The open_lth-style loop with the same recipe; returns its training seconds."""
    from torchvision import transforms
    from torchvision.datasets import FashionMNIST

    d = datasets.info(dataset)
    tf = transforms.Compose([transforms.RandomCrop(d.image_size, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(d.mean, d.std)])
    train_set = torch.utils.data.Subset(FashionMNIST(root, train=True, transform=tf), indices)
    loader = torch.utils.data.DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, drop_last=True, num_workers=0)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    model.train()
    lr_of = recipe.schedule(len(loader))
    start = time.perf_counter()
    step = 0
    for _ in range(recipe.epochs):
        for x, y in loader:
            for group in opt.param_groups:
                group["lr"] = lr_of(step)
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the per-step host sync of the reference loops
            step += 1
    return time.perf_counter() - start


def matmul_flops(device, n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def train_flops_per_image(model, shape: tuple[int, ...]) -> float:
    x = torch.randn(8, *shape)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(8, dtype=torch.long)).backward()
    return counter.get_total_flops() / 8


def engine(args, device, data, recipe, copies: int, precision: str = "fp32") -> tuple[float, float]:
    """Train `copies` tickets (one: `train`; more: stacked by `train_together`); return the
    training seconds (the engine's train_seconds: test evaluations excluded) and the first copy's
    final test accuracy."""
    models = [build_for(args.model, args.dataset, seed=s).to(device) for s in range(copies)]
    if copies == 1:
        results = [train(models[0], data, recipe, seed=0, precision=precision, compile=args.compile)]
    else:
        results = train_together(models, data, recipe, [0] * copies, [None] * copies, precision=precision,
                                 compile=args.compile)
    seconds = sum(r["train_seconds"] for r in results[0].history)
    return seconds, results[0].history[-1]["test_acc"]


def concurrent(args, k: int) -> tuple[float, float]:
    """K engine processes at once, each with threads/K threads: the images/s of all of them
    together (each process times its own training) and the first one's accuracy."""
    command = [sys.executable, __file__, "--worker", "--model", args.model, "--root", args.root, "--batch", str(args.batch),
               "--steps", str(args.steps), "--epochs", str(args.epochs), "--threads", str(max(1, args.threads // k)),
               "--device", args.device]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    outs = [json.loads(p.communicate()[0].splitlines()[-1]) for p in procs]
    return max(o["seconds"] for o in outs), outs[0]["acc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist"])
    p.add_argument("--root", default=str(ROOT / "data"))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50, help="steps per epoch")
    p.add_argument("--epochs", type=int, default=3, help="the rate drops x0.1 for the last epoch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--copies", default="1", help="comma-separated K for (c): tickets stacked in one process")
    p.add_argument("--concurrent", default="", help="comma-separated K for (c): concurrent engine processes")
    p.add_argument("--bf16", action="store_true", help="also run the engine under bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the engine's forward")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    n = args.steps * args.batch
    engine_data = datasets.load(args.dataset, args.root, device, train_subset=n, augment=("crop", "flip"))
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch, lr=0.05, milestones=(args.epochs - 1,) if args.epochs > 1 else ())
    if args.worker:
        seconds, acc = engine(args, device, engine_data, recipe, 1)
        print(json.dumps({"seconds": seconds, "acc": acc}))
        return
    indices = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:n].tolist()

    ref_model = build_for(args.model, args.dataset, seed=0).to(device)
    ref_seconds = reference(ref_model, args.dataset, args.root, indices, recipe, device)
    rows = [("(a) reference (open_lth)", 1, n * args.epochs / ref_seconds, evaluate(ref_model, engine_data.test_batches())[1].item())]
    for k in [int(c) for c in args.copies.split(",")]:
        seconds, acc = engine(args, device, engine_data, recipe, k)
        rows.append(("(b) elth engine" if k == 1 else "(c) stacked in one process", k, k * n * args.epochs / seconds, acc))
    if args.bf16:
        seconds, acc = engine(args, device, engine_data, recipe, 1, "bf16")
        rows.append(("(b) elth engine, bf16", 1, n * args.epochs / seconds, acc))
    for k in [int(c) for c in args.concurrent.split(",") if c]:
        seconds, acc = concurrent(args, k)
        rows.append(("(c) concurrent processes", k, k * n * args.epochs / seconds, acc))

    flops = train_flops_per_image(build_for(args.model, args.dataset), (1, 28, 28))
    peak = matmul_flops(device)
    ref_rate = rows[0][2]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{args.threads}threads"
    print(f"{args.model} on {args.dataset}, {args.epochs} epochs of {args.steps} steps of {args.batch}, {name}, "
          f"torch {torch.__version__}" + (", torch.compile" if args.compile else ""))
    print(f"{'loop':<28} {'K':>3} {'img/s':>9} {'x ref':>7} {'test acc':>9} {'GFLOP/s':>9} {'of matmul':>10}")
    for label, k, rate, acc in rows:
        print(f"{label:<28} {k:3d} {rate:9.0f} {rate / ref_rate:7.2f} {acc:9.4f} {rate * flops / 1e9:9.1f} {rate * flops / peak:10.1%}")
    print(f"matmul: {peak / 1e9:.1f} GFLOP/s; training: {flops / 1e6:.1f} MFLOP per image")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    out = ROOT / "bench" / "results" / f"{name.replace(' ', '-')}.csv"
    new = not out.exists()
    with open(out, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["date", "device", "host", "torch", "commit", "model", "dataset", "steps", "batch",
                             "loop", "tickets", "img_s", "x_reference", "test_acc", "of_matmul", "compile"])
        for label, k, rate, acc in rows:
            writer.writerow([datetime.date.today().isoformat(), name, platform.node(), torch.__version__, commit,
                             args.model, args.dataset, args.steps * args.epochs, args.batch, label, k, round(rate),
                             round(rate / ref_rate, 2), round(acc, 4), round(rate * flops / peak, 3), args.compile])
    print(f"appended to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
