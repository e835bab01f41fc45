"""Benchmark: seconds to transform one ticket, per (source, target, spec), on this machine.

Prints a table; the ETT issue's budget is under 1 s for a ResNet-56 ticket on a 2-core CPU.
Run: .venv/bin/python bench/ett_transform.py
"""

from __future__ import annotations

import time

import torch

from elth.checkpoint import Checkpoint, build_for
from elth.prune import Mask, prunable
from elth.transform.apply import transform

CASES = [("resnet20", "resnet56", "default"), ("resnet56", "resnet20", "default"), ("resnet32", "resnet56", "Inter 1234"),
         ("resnet56", "resnet32", "Drop 1357"), ("resnet20", "resnet20-w2", "widen gaussian 0.01"),
         ("vgg16", "vgg19", "default"), ("imagenet-resnet18", "imagenet-resnet34", "default")]


def ticket(model: str) -> Checkpoint:
    dataset = "imagenet" if model.startswith("imagenet") else "cifar10"
    net = build_for(model, dataset, seed=0)
    g = torch.Generator().manual_seed(0)
    params = dict(net.named_parameters())
    mask = Mask({n: torch.rand(params[n].shape, generator=g) < 0.2 for n in prunable(net)})
    return Checkpoint(model, dataset, 1000, net.state_dict(), mask)


def main() -> None:
    torch.set_num_threads(2)
    print(f"{'source':>18} -> {'target':<18} {'spec':<22} {'seconds (best of 3)':>20}")
    for source, target, spec in CASES:
        t = ticket(source)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            transform(t, target, spec)
            times.append(time.perf_counter() - start)
        print(f"{source:>18} -> {target:<18} {spec:<22} {min(times):20.3f}")


if __name__ == "__main__":
    main()
