"""The benchmark scripts that need no training: they run on every config they are pointed at."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import Counter

import pytest
import yaml
from conftest import ROOT
from snakemake.utils import validate


def load_study_cost():
    """bench/study_cost.py as a module (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location("study_cost", ROOT / "bench" / "study_cost.py")
    study_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study_cost)
    return study_cost


def test_study_cost_projects_the_default_and_every_proxy_config() -> None:
    configs = [ROOT / "config.yaml", *sorted((ROOT / "config" / "proxy").glob("*.yaml"))]
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "study_cost.py"), *map(str, configs)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines() if line.partition(" ")[0].endswith(".yaml")}
    for config in configs:
        assert config.name in rows, run.stdout
        assert int(rows[config.name][1]) > 0  # training runs


def test_study_cost_counts_an_lmc_copy_per_ticket_and_noise_seed_but_the_runs_own() -> None:
    study_cost = load_study_cost()
    config = yaml.safe_load((ROOT / "config" / "proxy" / "fashion-mnist.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)

    def runs(noise_seeds: list[list[int]]) -> int:
        lmc = config["lmc"] | {"seeds": [0], "noise_seeds": noise_seeds}
        return sum(study_cost.runs_per_model(config | {"lmc": lmc}).values())

    without = sum(study_cost.runs_per_model({k: v for k, v in config.items() if k != "lmc"}).values())
    # ResNet-32's IMP ticket and its two ETTs, on seed 0, whose own data seed needs no copy.
    assert runs([[0, 1]]) == without + 3
    assert runs([[1, 2]]) == without + 3 * 2
    assert runs([[1, 2], [2, 3]]) == without + 3 * 3
    assert runs([[0, 1], [0, 2]]) == without + 3 * 2


BENCHMARKS = """rule,dataset,model,seed,level,kind,runs,seconds,cpu_seconds,max_rss_mb
prepare_data,fashion-mnist,,,,,0,30.0,1.0,100
dense,fashion-mnist,resnet14-w0.5,0,0,dense,1,90.0,170.0,900
retrain_together,fashion-mnist,resnet14-w0.5,0,1,ett+snip,2,120.0,230.0,1200
rigl,fashion-mnist,resnet14-w0.5,0,1,rigl5x,1,450.0,890.0,950
baselines,fashion-mnist,resnet14-w0.5,0,1,reinit+random+magnitude+snip+grasp+synflow,0,12.0,20.0,800
ett,fashion-mnist,resnet20-w0.5,0,1,ett,0,3.0,2.0,700
ett,fashion-mnist,resnet56,0,1,ett,0,99.0,99.0,700
"""


def test_study_cost_projects_from_measured_benchmarks_where_it_has_rows_and_from_flops_elsewhere(tmp_path) -> None:
    study_cost = load_study_cost()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    benchmarks = tmp_path / "benchmarks.csv"
    benchmarks.write_text(BENCHMARKS)
    rates = study_cost.achieved_flops(ROOT / "bench" / "results" / "cpu-2threads.csv")
    plain = study_cost.project(config, rates)
    cost = study_cost.project(config, rates, benchmarks)
    # ResNet-14's training: 660 s over 8 runs (a stacked job's 2 tickets, RigL 5x as 5 runs); ResNet-20
    # has no training row and keeps its FLOPs projection.
    big = ("resnet20-w0.5", "fashion-mnist")
    flops_seconds = plain["flops"][big] / rates.get(study_cost.kind(big[0]), rates[None])[0]
    # Jobs that train nothing, by their measured mean: the data check, the baselines at 2 levels (12 s),
    # the ETT into ResNet-20 at 2 levels (3 s); ResNet-56's row is no job of the demo. (IMP's pruning is
    # part of the training jobs.)
    others = 30 + 2 * 12 + 2 * 3
    expected = plain["runs"]["resnet14-w0.5", "fashion-mnist"] * 660 / 8 + flops_seconds + others
    assert cost["seconds"] == pytest.approx(expected)
    assert cost["measured"] == ["resnet14-w0.5"] and cost["flops_models"] == ["resnet20-w0.5"]
    assert cost["unmeasured"] == cost["other_jobs"] - 5
    assert plain["seconds"] == pytest.approx(sum(f / rates.get(study_cost.kind(m), rates[None])[0]
                                                 for (m, _), f in plain["flops"].items()))

    run = subprocess.run([sys.executable, str(ROOT / "bench" / "study_cost.py"), "--benchmarks", str(benchmarks),
                          str(ROOT / "config.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    hours = next(line.split()[3] for line in run.stdout.splitlines() if line.startswith("config.yaml"))
    assert float(hours) == pytest.approx(expected / 3600, abs=0.05)
    assert "training measured: resnet14-w0.5; from FLOPs: resnet20-w0.5" in run.stdout


@pytest.mark.parametrize("name", ["config.yaml", "config/proxy/fashion-mnist.yaml",
                                  "config/proxy/transfer-fashion-digits.yaml"])
def test_study_cost_counts_the_jobs_that_train_nothing_as_the_dag_has_them(tmp_path, name: str) -> None:
    study_cost = load_study_cost()
    config = yaml.safe_load((ROOT / name).read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    counted = Counter()
    for (rule, _, _), n in study_cost.other_jobs(config).items():
        counted[rule] += n
    run = subprocess.run([sys.executable, "-m", "snakemake", "-d", str(tmp_path), f"--configfile={ROOT / name}", "-n"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    table = run.stdout.split("Job stats:")[1].split("total")[0]
    dag = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] in counted}
    assert dag == dict(counted)


def test_study_cost_charges_each_projected_job_the_fixed_cost_of_its_kind(tmp_path) -> None:
    study_cost = load_study_cost()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    dag = study_cost.dag_jobs(ROOT / "config.yaml")
    fixed = dict.fromkeys(study_cost.fixed_costs(ROOT / "bench" / "results" / "job-cost.csv"), 1.0)
    rates = study_cost.achieved_flops(ROOT / "bench" / "results" / "cpu-2threads.csv")
    processes = sum(n for rule, n in dag.items() if rule not in ("all", "baseline_settings"))
    training = sum(n for rule, n in dag.items() if study_cost.TRAINING_RULES.fullmatch(rule))
    # Projected from FLOPs, every job that is a process of its own pays its fixed cost (1 s here).
    plain = study_cost.project(config, rates, dag=dag, fixed=fixed)
    assert plain["fixed_seconds"] == pytest.approx(processes)
    assert plain["seconds"] == pytest.approx(study_cost.project(config, rates)["seconds"] + processes)
    # Measured, a job's row holds its start-up already: only ResNet-20's training (from FLOPs, its share of
    # the runs) and the jobs that train nothing without a row pay it (the rows cover the data check, ResNet-14's
    # baselines at 2 levels and the ETT into ResNet-20 at 2 levels: 5 jobs).
    benchmarks = tmp_path / "benchmarks.csv"
    benchmarks.write_text(BENCHMARKS)
    cost = study_cost.project(config, rates, benchmarks, dag, fixed)
    share = plain["runs"]["resnet20-w0.5", "fashion-mnist"] / sum(plain["runs"].values())
    assert cost["fixed_seconds"] == pytest.approx(share * training + processes - training - 5)


def test_study_cost_knows_the_kind_of_every_rule_of_a_stacked_study() -> None:
    study_cost = load_study_cost()
    kinds = study_cost.fixed_costs(ROOT / "bench" / "results" / "job-cost.csv")
    dag = study_cost.dag_jobs(ROOT / "config" / "proxy" / "fashion-mnist.yaml")
    assert any(rule.startswith("retrain_together_") for rule in dag) and any(r.startswith("lmc_copies_") for r in dag)
    for rule in dag:
        assert study_cost.job_kind(rule) in {*kinds, None}, rule
    assert study_cost.job_kind("retrain_together_resnet14_w0_25_0") == "retrain"
    assert study_cost.job_kind("imp_round_3") == "imp_round" and study_cost.job_kind("figure") == "report"


def test_study_cost_reads_the_newest_fixed_cost_of_each_kind_above_import_torch(tmp_path) -> None:
    study_cost = load_study_cost()
    table = tmp_path / "job-cost.csv"
    table.write_text("date,machine,what,exit_s,ready_s,above_torch_s,wall_s,train_s,evaluate_s,neither_share\n"
                     "d1,m,import torch,3.0,,,,,,\nd1,m,dense,5.0,4.0,2.5,,,,\nd1,m,report,4.0,,,,,,\n"
                     "d2,m,import torch,2.0,,,,,,\nd2,m,dense,2.4,1.8,0.1,,,,\nd2,m,demo,,,,600,500,100,0.1\n")
    assert study_cost.fixed_costs(table) == pytest.approx({"dense": 2.1, "report": 4.0})
