"""Projected cost of each paper study on a measured device: training runs times seconds per run.

A study's DAG is dominated by its training runs: per model and seed, one dense run and, at every
IMP level, the retraining of the IMP ticket, of every ETT ticket into that model and of every
baseline (plus two copies per ticket that linear mode connectivity asks for). Each run trains for
the recipe's epochs over the dataset's training images. The seconds per run come from a row of
bench/results/<device>.csv (written by train_throughput.py): the achieved training FLOP/s of the
fastest loop measured there, applied to each model's training FLOPs per image (torch's
FlopCounterMode, forward and backward, at the dataset's input shape). Masks do not make a run
cheaper: the engine trains dense tensors.

Run: .venv/bin/python bench/study_cost.py [--device-csv bench/results/cpu-2threads.csv] [config ...]
"""

from __future__ import annotations

import argparse
import csv
import glob
from collections import Counter
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from snakemake.utils import validate
from torch.utils.flop_counter import FlopCounterMode

from elth import config as study
from elth.checkpoint import build_for
from elth.data import info

ROOT = Path(__file__).resolve().parents[1]
# Training images per epoch of each dataset's full training split.
TRAIN_IMAGES = {"mnist": 60000, "fashion-mnist": 60000, "cifar10": 50000, "svhn": 73257, "imagenet": 1281167}


@cache
def flops_per_image(model: str, dataset: str) -> float:
    """Training FLOPs (forward and backward) of one image."""
    d = info(dataset)
    net = build_for(model, dataset)
    x = torch.randn(2, d.in_channels, d.image_size, d.image_size)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), torch.zeros(2, dtype=torch.long)).backward()
    return counter.get_total_flops() / 2


def runs_per_model(config: dict) -> Counter:
    """Training runs of each model in the study's DAG."""
    levels = config["pruning"]["levels"]
    into = Counter(target for _, target, _, _ in study.ett_jobs(config))
    runs = Counter()
    for model in config["models"]:
        per_level = 1 + into[model] + len(config["baselines"]["methods"])
        runs[model] += len(config["seeds"]) * (1 + levels * per_level)
    lmc = config.get("lmc")
    for model, _ in study.lmc_tickets(config):
        runs[model] += len(config["seeds"]) * 2 * len(lmc["noise_seeds"])
    return runs


def achieved_flops(device_csv: Path) -> tuple[float, str]:
    """The training FLOP/s of the fastest loop in a benchmark CSV, per ticket image."""
    rows = list(csv.DictReader(device_csv.open()))
    best = max(rows, key=lambda r: float(r["img_s"]) * flops_per_image(r["model"], r["dataset"]))
    rate = float(best["img_s"]) * flops_per_image(best["model"], best["dataset"])
    return rate, f"{best['device']}, {best['loop']} (K={best['tickets']}), {best['model']}, {best['date']}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", help="study configs (default: config/paper/*.yaml)")
    p.add_argument("--device-csv", type=Path, default=ROOT / "bench" / "results" / "cpu-2threads.csv")
    args = p.parse_args()
    torch.set_num_threads(2)
    rate, source = achieved_flops(args.device_csv)
    print(f"measured: {rate / 1e9:.1f} training GFLOP/s ({source})")
    print(f"{'config':<34} {'runs':>6} {'PFLOP':>9} {'hours':>9}  runs per model")
    for path in args.configs or sorted(glob.glob(str(ROOT / "config" / "paper" / "*.yaml"))):
        config = yaml.safe_load(Path(path).read_text())
        validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
        dataset = config["dataset"]["name"]
        images = config["dataset"].get("train_subset") or TRAIN_IMAGES[dataset]
        runs = runs_per_model(config)
        flops = sum(n * study.recipe(config, m)["epochs"] * images * flops_per_image(m, dataset) for m, n in runs.items())
        per_model = ", ".join(f"{m} {n}" for m, n in runs.items())
        print(f"{Path(path).name:<34} {sum(runs.values()):6d} {flops / 1e15:9.1f} {flops / rate / 3600:9.1f}  {per_model}")


if __name__ == "__main__":
    main()
