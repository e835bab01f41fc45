"""Projected cost of each paper study on a measured device: training runs times seconds per run.

A study's DAG is dominated by its training runs: per model and seed, one dense run and, at every
IMP level, the retraining of the IMP ticket, of every ETT ticket into that model and of every
baseline, and RigL (a run at m times the recipe's length counting m times), plus a copy per
ticket and noise seed that linear mode connectivity asks for (but the run's own seed, which is the
ticket's retraining) and, for a dataset transfer, the source dataset's dense run and IMP rounds
and each transferred ticket's retraining. Each run trains for the
recipe's epochs over its dataset's training images. The seconds per run come from a row of
bench/results/<device>.csv (written by train_throughput.py): the achieved training FLOP/s of the
fastest loop measured there on a model of the same family and width (small models use a device
less well: quarter-width ResNets reach about a fifth of full width's FLOP/s on this CPU), else on any
model, applied to each model's training FLOPs per image (torch's FlopCounterMode, forward and
backward, at the dataset's input shape). Stacked loops are left out, since only the ETT and
baseline tickets can stack. Masks do not make a run cheaper: the engine trains dense tensors.

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
from elth.models.names import parse

ROOT = Path(__file__).resolve().parents[1]
# Training images per epoch of each dataset's full training split.
TRAIN_IMAGES = {"mnist": 60000, "fashion-mnist": 60000, "cifar10": 50000, "svhn": 73257, "imagenet": 1281167,
                "digits": 1437}


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
    """Training runs of each (model, dataset) in the study's DAG, a RigL run at m times the
    recipe's length counting m times."""
    dataset, levels, seeds = config["dataset"]["name"], config["pruning"]["levels"], len(config["seeds"])
    compared = len(study.compared_levels(config))
    into = Counter(target for _, target, _, _ in study.ett_jobs(config))
    rigl = sum(config["rigl"]["multipliers"]) if config.get("rigl") else 0
    runs = Counter()
    for model in config["models"]:
        per_level = into[model] + len(config["baselines"]["methods"]) + rigl
        runs[model, dataset] += seeds * (1 + levels + compared * per_level)
    lmc = config.get("lmc")
    noise = {n for pair in lmc["noise_seeds"] for n in pair} if lmc else set()
    for model, _ in study.lmc_tickets(config):  # a copy per noise seed but the run's own (its retraining)
        runs[model, dataset] += sum(len(noise - {seed}) for seed in study.lmc_seeds(config))
    transfers = study.transfer_jobs(config)
    for source in {s for s, _, _, _ in transfers}:  # the source dataset's dense run and IMP rounds
        runs[source, config["transfer"]["from"]["name"]] += seeds * (1 + levels)
    for _, target, _, _ in transfers:
        runs[target, dataset] += seeds * compared
    return runs


def kind(model: str) -> tuple:
    """What a model's FLOP/s depends on besides its depth: its family and, for a CIFAR ResNet, width."""
    spec = parse(model)
    return (spec.family, spec.args[1]) if spec.family == "cifar-resnet" else (spec.family,)


def achieved_flops(device_csv: Path) -> dict[tuple | None, tuple[float, str]]:
    """The training FLOP/s (per ticket image) of the fastest unstacked loop in a benchmark CSV, for
    each kind of model measured there, and under None for all of them."""
    rows = [r for r in csv.DictReader(device_csv.open()) if "stacked" not in r["loop"]]
    rates = {}
    for key in [None, *{kind(r["model"]) for r in rows}]:
        best = max((r for r in rows if key is None or kind(r["model"]) == key),
                   key=lambda r: float(r["img_s"]) * flops_per_image(r["model"], r["dataset"]))
        rate = float(best["img_s"]) * flops_per_image(best["model"], best["dataset"])
        rates[key] = rate, f"{best['device']}, {best['loop']} (K={best['tickets']}), {best['model']}, {best['date']}"
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", help="study configs (default: config/paper/*.yaml)")
    p.add_argument("--device-csv", type=Path, default=ROOT / "bench" / "results" / "cpu-2threads.csv")
    args = p.parse_args()
    torch.set_num_threads(2)
    rates = achieved_flops(args.device_csv)
    for key, (rate, source) in sorted(rates.items(), key=lambda item: item[0] is None):
        print(f"measured: {rate / 1e9:.1f} training GFLOP/s ({source})" + ("" if key else ", for the other models"))
    print(f"{'config':<34} {'runs':>6} {'PFLOP':>9} {'hours':>9}  runs per model")
    for path in args.configs or sorted(glob.glob(str(ROOT / "config" / "paper" / "*.yaml"))):
        config = yaml.safe_load(Path(path).read_text())
        validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
        sets = {config["dataset"]["name"]: config["dataset"], **({config["transfer"]["from"]["name"]: config["transfer"]["from"]}
                                                               if config.get("transfer") else {})}
        runs = runs_per_model(config)
        flops = {(m, d): n * study.recipe(config, m)["epochs"] * (sets[d].get("train_subset") or TRAIN_IMAGES[d])
                 * flops_per_image(m, d) for (m, d), n in runs.items()}
        seconds = sum(f / rates.get(kind(m), rates[None])[0] for (m, _), f in flops.items())
        per_model = ", ".join(f"{m} {n}" + (f" ({d})" if d != config["dataset"]["name"] else "") for (m, d), n in runs.items())
        print(f"{Path(path).name:<34} {sum(runs.values()):6d} {sum(flops.values()) / 1e15:9.1f} {seconds / 3600:9.1f}  {per_model}")


if __name__ == "__main__":
    main()
