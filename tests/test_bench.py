"""The benchmark scripts that need no training: they run on every config they are pointed at."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import yaml
from conftest import ROOT
from snakemake.utils import validate


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
    spec = importlib.util.spec_from_file_location("study_cost", ROOT / "bench" / "study_cost.py")
    study_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study_cost)
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
