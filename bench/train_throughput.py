"""Benchmark: training throughput of the elth engine against an open_lth-style reference loop.

One process, one invocation, the same model, data subset, batch size, step count and schedule:
(a) the reference: a torchvision dataset with per-sample PIL transforms through a DataLoader,
fp32, `.item()` every step (as open_lth and ElasticLTH train); (b) the elth engine (data and
augmentation on the device, channels_last, foreach masks, no per-step sync). It prints images/s,
the ratio to (a), test accuracy after the fixed schedule (so a speedup that costs accuracy shows),
and the achieved FLOP/s as a fraction of this machine's measured matmul FLOP/s; then it appends a
row to bench/results/<device>.csv. Concurrent tickets (issue 6's part c) are not built yet.

Run: .venv/bin/python bench/train_throughput.py [--model resnet20] [--epochs 3] [--steps 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from elth import data as datasets
from elth.checkpoint import build_for
from elth.recipe import Recipe
from elth.train import evaluate, pick_device, train

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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    n = args.steps * args.batch
    engine_data = datasets.load(args.dataset, args.root, device, train_subset=n, augment=("crop", "flip"))
    indices = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:n].tolist()
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch, lr=0.05, milestones=(args.epochs - 1,) if args.epochs > 1 else ())

    ref_model = build_for(args.model, args.dataset, seed=0).to(device)
    ref_seconds = reference(ref_model, args.dataset, args.root, indices, recipe, device)
    ref_acc = evaluate(ref_model, engine_data.test_batches())[1].item()

    model = build_for(args.model, args.dataset, seed=0).to(device)
    result = train(model, engine_data, recipe, seed=0)
    engine_seconds = sum(r["seconds"] for r in result.history)
    engine_acc = result.history[-1]["test_acc"]
    # The engine's epoch times include a test evaluation each; subtract them to compare training alone.
    tic = time.perf_counter()
    evaluate(model, engine_data.test_batches())[1].item()
    engine_seconds -= args.epochs * (time.perf_counter() - tic)

    flops = train_flops_per_image(build_for(args.model, args.dataset), (1, 28, 28))
    peak = matmul_flops(device)
    ref_rate, engine_rate = n * args.epochs / ref_seconds, n * args.epochs / engine_seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{args.threads}threads"
    print(f"{args.model} on {args.dataset}, {args.epochs} epochs of {args.steps} steps of {args.batch}, {name}, "
          f"torch {torch.__version__}")
    print(f"{'loop':<28} {'img/s':>9} {'x ref':>7} {'test acc':>9} {'GFLOP/s':>9} {'of matmul':>10}")
    for label, rate, acc in (("(a) reference (open_lth)", ref_rate, ref_acc), ("(b) elth engine", engine_rate, engine_acc)):
        print(f"{label:<28} {rate:9.0f} {rate / ref_rate:7.2f} {acc:9.4f} {rate * flops / 1e9:9.1f} {rate * flops / peak:10.1%}")
    print(f"matmul: {peak / 1e9:.1f} GFLOP/s; training: {flops / 1e6:.1f} MFLOP per image")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    out = ROOT / "bench" / "results" / f"{name.replace(' ', '-')}.csv"
    new = not out.exists()
    with open(out, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["date", "device", "host", "torch", "commit", "model", "dataset", "steps", "batch",
                             "reference_img_s", "engine_img_s", "speedup", "reference_acc", "engine_acc", "engine_of_matmul"])
        writer.writerow([datetime.date.today().isoformat(), name, platform.node(), torch.__version__, commit, args.model,
                         args.dataset, args.steps * args.epochs, args.batch, round(ref_rate), round(engine_rate),
                         round(engine_rate / ref_rate, 2), round(ref_acc, 4), round(engine_acc, 4),
                         round(engine_rate * flops / peak, 3)])
    print(f"appended to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
