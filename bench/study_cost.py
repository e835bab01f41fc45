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

With `--benchmarks`, a results/tables/benchmarks.csv (one row per job, as Snakemake's `benchmark:`
measured it) replaces the projection where it has rows: a model's training runs cost the measured
seconds per training run of its training jobs on that dataset (a stacked job's time divided among its
tickets, a RigL run at m times the recipe's length counting m runs), and the jobs that train nothing
(pruning, transformations, baselines' scoring, interpolations, FLOPs tables, the data check), which
the FLOPs projection leaves out, cost the measured mean seconds of their rule, model and kind of
ticket. Seconds are used as measured, so the rows should come from the same recipes, data and
device as the study projected: a piece of it (one seed, its first levels) projects the whole. Jobs
of a rule, model and kind with no row count nothing, as without benchmarks; models without training
rows fall back to the FLOPs projection.

Run: .venv/bin/python bench/study_cost.py [--device-csv bench/results/cpu-2threads.csv]
     [--benchmarks results/tables/benchmarks.csv] [config ...]
"""

from __future__ import annotations

import argparse
import csv
import glob
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
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


def other_jobs(config: dict) -> Counter:
    """The jobs of the study's DAG that train nothing, as (rule, model, kind of ticket) as benchmarks.csv
    names them: the data checks (IMP's pruning is part of the training before it, the dense run's
    included), each level's baselines (one job for all methods), each ETT and transfer ticket, each
    interpolation of linear mode connectivity and each FLOPs table."""
    seeds, methods = len(config["seeds"]), config["baselines"]["methods"]
    compared = len(study.compared_levels(config))
    jobs = Counter({("prepare_data", "", ""): 1 + bool(config.get("transfer"))})
    for model in config["models"]:
        if methods:
            jobs["baselines", model, "+".join(methods)] += seeds * compared
    for _, target, _, _ in study.ett_jobs(config):
        jobs["ett", target, "ett"] += seeds * compared
    transfers = study.transfer_jobs(config)
    for _, target, _, _ in transfers:
        jobs["transfer", target, "transfer"] += seeds * compared
    pairs = len(config["lmc"]["noise_seeds"]) if config.get("lmc") else 0
    for model, ticket in study.lmc_tickets(config):
        parts = ticket.split("/")
        jobs["lmc", model, parts[1] if parts[0] == "baselines" else parts[0]] += len(study.lmc_seeds(config)) * pairs
    if config.get("rigl"):  # a table per (source, target) pair
        for _, target in {(s, t) for s, t, _, _ in study.ett_jobs(config)}:
            jobs["flops", target, ""] += 1
    return jobs


# A DAG rule's kind of job in bench/job_cost.py's table (None: no process of its own).
TRAINING_RULES = re.compile(r"dense|rigl|imp_round_\d+|retrain(_together_\w+)?|lmc_cop(y|ies_\w+)")
JOB_KINDS = {"dense": "dense", "rigl": "dense", "ett": "ett", "transfer": "ett",
             "baselines": "baselines", "lmc": "lmc", "prepare_data": "prepare_data", "baseline_settings": None,
             "all": None}


def job_kind(rule: str) -> str | None:
    """The kind of job (a row of bench/job_cost.py's table) whose fixed cost a job of `rule` pays."""
    if rule.startswith("imp_round_"):
        return "imp_round"
    if TRAINING_RULES.fullmatch(rule):
        return JOB_KINDS.get(rule, "retrain")
    return JOB_KINDS.get(rule, "report")


def fixed_costs(job_cost_csv: Path) -> dict[str, float]:
    """Each kind of job's fixed cost from bench/job_cost.py's table, its newest rows (rows are appended):
    `import torch` to exit plus what the kind measured above it (start to first training step for
    training jobs, start to exit with their tiny work for the jobs that make a ticket), and for the
    kinds measured only by `--help`, that command's start to exit."""
    newest = {row["what"]: row for row in csv.DictReader(job_cost_csv.open())}
    floor = float(newest["import torch"]["exit_s"])
    return {what: floor + float(row["above_torch_s"]) if row["above_torch_s"] else float(row["exit_s"])
            for what, row in newest.items() if what != "import torch" and not row["wall_s"]}  # no whole-DAG rows


def dag_jobs(config_path: Path) -> Counter:
    """Jobs per rule of a study's whole DAG: a dry run of the Snakefile with `config_path` in a scratch
    directory, where nothing is done yet."""
    with tempfile.TemporaryDirectory() as scratch:
        run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", scratch, "-n",
                              "--quiet", "rules", f"--configfile={Path(config_path).resolve()}"],
                             capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"the dry run of {config_path} failed:\n{run.stderr[-2000:]}")
    table = run.stdout.split("Job stats:")[1].split("\ntotal")[0]
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)})


def measured(benchmarks_csv: Path) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str, str], float]]:
    """From a benchmarks.csv: the seconds per training run of each (model, dataset) over its training
    jobs (a RigL run at m times the recipe's length counting m runs), and the mean seconds per job of
    each (rule, model, kind) that trains nothing."""
    train, other = defaultdict(lambda: [0.0, 0.0]), defaultdict(list)
    for row in csv.DictReader(benchmarks_csv.open()):
        if int(row["runs"]):
            stretched = re.fullmatch(r"rigl(\d+)x", row["kind"])
            total = train[row["model"], row["dataset"]]
            total[0] += float(row["seconds"])
            total[1] += int(row["runs"]) * (int(stretched[1]) if stretched else 1)
        else:
            other[row["rule"], row["model"], row["kind"]].append(float(row["seconds"]))
    return ({key: seconds / runs for key, (seconds, runs) in train.items()},
            {key: sum(s) / len(s) for key, s in other.items()})


def project(config: dict, rates: dict, benchmarks: Path | None = None, dag: Counter | None = None,
            fixed: dict[str, float] | None = None) -> dict:
    """A study's training runs per (model, dataset), their training FLOPs, and its projected seconds:
    `rates` (achieved FLOP/s by kind of model) applied to the FLOPs, or with `benchmarks` the measured
    seconds where it has them (see the module's docstring). `measured` and `flops_models` say which
    models' training came from which; `other_jobs` and `unmeasured` count the jobs that train nothing.
    With the DAG's jobs per rule (`dag`) and the fixed cost of each kind of job (`fixed`), each job whose
    seconds are projected pays its fixed cost too (`fixed_seconds`, part of `seconds`)."""
    sets = {config["dataset"]["name"]: config["dataset"]}
    if config.get("transfer"):
        sets[config["transfer"]["from"]["name"]] = config["transfer"]["from"]
    runs = runs_per_model(config)
    flops = {(m, d): n * study.recipe(config, m)["epochs"] * (sets[d].get("train_subset") or TRAIN_IMAGES[d])
             * flops_per_image(m, d) for (m, d), n in runs.items()}
    per_run, per_job = measured(benchmarks) if benchmarks else ({}, {})
    seconds, from_rows, from_flops = 0.0, [], []
    for (m, d), f in flops.items():
        if (m, d) in per_run:
            seconds += runs[m, d] * per_run[m, d]
            from_rows.append(m)
        else:
            seconds += f / rates.get(kind(m), rates[None])[0]
            from_flops.append(m)
    others = other_jobs(config) if benchmarks else Counter()
    seconds += sum(n * per_job[key] for key, n in others.items() if key in per_job)
    fixed_seconds = 0.0
    if dag is not None and fixed is not None:
        projected_share = sum(runs[m, d] for m, d in runs if m in from_flops) / sum(runs.values())
        measured_jobs = Counter()
        for key, n in others.items():
            if key in per_job:
                measured_jobs[key[0]] += n
        for rule, n in dag.items():
            what = job_kind(rule)
            if what is None:
                continue
            projected = n * projected_share if TRAINING_RULES.fullmatch(rule) else n - measured_jobs[rule]
            fixed_seconds += projected * fixed[what]
    return {"runs": runs, "flops": flops, "seconds": seconds + fixed_seconds, "fixed_seconds": fixed_seconds,
            "jobs": sum(n for rule, n in (dag or {}).items() if rule != "all"), "measured": from_rows,
            "flops_models": from_flops, "other_jobs": sum(others.values()),
            "unmeasured": sum(n for key, n in others.items() if key not in per_job)}


def kind(model: str) -> tuple:
    """What a model's FLOP/s depends on besides its depth: its family and, for a CIFAR ResNet, width."""
    spec = parse(model)
    return (spec.family, spec.args[1]) if spec.family == "cifar-resnet" else (spec.family,)


def achieved_flops(device_csv: Path, precision: str = "fp32") -> dict[tuple | None, tuple[float, str]]:
    """The training FLOP/s (per ticket image) of the fastest unstacked loop in a benchmark CSV at the
    study's `precision` (a bf16 loop's speed is no fp32 study's), for each kind of model measured
    there, and under None for all of them."""
    rows = [r for r in csv.DictReader(device_csv.open())
            if "stacked" not in r["loop"] and ("bf16" in r["loop"]) == (precision == "bf16")]
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
    p.add_argument("--job-cost", type=Path, default=ROOT / "bench" / "results" / "job-cost.csv",
                   help="bench/job_cost.py's table: each kind of job's fixed cost")
    p.add_argument("--benchmarks", type=Path, help="a study's results/tables/benchmarks.csv: measured seconds per "
                   "job of each rule and model where it has rows, the FLOPs projection elsewhere")
    args = p.parse_args()
    torch.set_num_threads(2)
    fixed = fixed_costs(args.job_cost)
    configs = {}
    for path in args.configs or sorted(glob.glob(str(ROOT / "config" / "paper" / "*.yaml"))):
        configs[path] = yaml.safe_load(Path(path).read_text())
        validate(configs[path], str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    rates = {precision: achieved_flops(args.device_csv, precision)
             for precision in sorted({c["engine"]["precision"] for c in configs.values()})}
    for precision, kinds in rates.items():
        for key, (rate, source) in sorted(kinds.items(), key=lambda item: item[0] is None):
            print(f"measured ({precision}): {rate / 1e9:.1f} training GFLOP/s ({source})"
                  + ("" if key else ", for the other models"))
    print(f"fixed cost per job: {', '.join(f'{k} {v:.1f} s' for k, v in fixed.items())} ({args.job_cost.name})")
    print(f"{'config':<34} {'runs':>6} {'PFLOP':>9} {'hours':>9} {'jobs':>6} {'fixed h':>8}  runs per model")
    for path, config in configs.items():
        cost = project(config, rates[config["engine"]["precision"]], args.benchmarks, dag_jobs(Path(path)), fixed)
        runs = cost["runs"]
        per_model = ", ".join(f"{m} {n}" + (f" ({d})" if d != config["dataset"]["name"] else "")
                              for (m, d), n in runs.items())
        print(f"{Path(path).name:<34} {sum(runs.values()):6d} {sum(cost['flops'].values()) / 1e15:9.1f} "
              f"{cost['seconds'] / 3600:9.1f} {cost['jobs']:6d} {cost['fixed_seconds'] / 3600:8.2f}  {per_model}")
        if args.benchmarks:
            print(f"  training measured: {', '.join(cost['measured']) or 'none'}; from FLOPs: "
                  f"{', '.join(cost['flops_models']) or 'none'}; jobs that train nothing: {cost['other_jobs']}, "
                  f"{cost['unmeasured']} of them without a row (their fixed cost alone)")


if __name__ == "__main__":
    main()
