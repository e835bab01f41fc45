"""Benchmark: seconds for `snakemake -n` to build each paper config's DAG, without its data, beside
Snakemake's own floor for a DAG of as many jobs.

Run: .venv/bin/python bench/dag_build.py [--only cifar10-resnet.yaml]

For each paper config: its job count, and the seconds of a plain dry run (which lists every job) and
of one with `-q` (which does not). The floor is a Snakefile of one rule with one wildcard whose
target asks for as many jobs, one input and one output each, and no params or resources: what
Snakemake alone takes to build and list a DAG of that size. The rest is the workflow's rules: their
outputs, logs and benchmark files, the params and resources Snakemake evaluates for every job (the
conda environment's spec evaluates each job's params), and elth's input functions.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = """
rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))

rule one:
    input: "in.txt"
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
"""


def dry_run(snakefile: Path, *args: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "in.txt").touch()
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", work, "-n", *args],
                             capture_output=True, text=True, cwd=ROOT)
        return time.perf_counter() - start, run.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="one config file name under config/paper, e.g. cifar10-resnet.yaml")
    args = p.parse_args()
    print(f"{'config':<34} {'jobs':>6} {'plain s':>8} {'-q s':>6} {'floor s':>8} {'floor -q s':>10}")
    for config in sorted((ROOT / "config" / "paper").glob(args.only or "*.yaml")):
        plain, listing = dry_run(ROOT / "Snakefile", f"--configfile={config}")
        quiet, _ = dry_run(ROOT / "Snakefile", "-q", f"--configfile={config}")
        total = re.search(r"^total\s+(\d+)$", listing, re.MULTILINE)
        if total is None:
            print(f"{config.name:<34} {'error':>6}")
            continue
        with tempfile.TemporaryDirectory() as scratch:
            floor = Path(scratch) / "Snakefile"
            floor.write_text(FLOOR.format(jobs=int(total[1]) - 1))
            bare, _ = dry_run(floor)
            bare_quiet, _ = dry_run(floor, "-q")
        print(f"{config.name:<34} {total[1]:>6} {plain:8.1f} {quiet:6.1f} {bare:8.1f} {bare_quiet:10.1f}")


if __name__ == "__main__":
    main()
