"""The benchmark scripts that need no training: they run on every config they are pointed at."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_study_cost_projects_the_default_and_every_proxy_config() -> None:
    configs = [ROOT / "config.yaml", *sorted((ROOT / "config" / "proxy").glob("*.yaml"))]
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "study_cost.py"), *map(str, configs)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines() if line.partition(" ")[0].endswith(".yaml")}
    for config in configs:
        assert config.name in rows, run.stdout
        assert int(rows[config.name][1]) > 0  # training runs
