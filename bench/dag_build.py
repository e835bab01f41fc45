"""Benchmark: seconds for `snakemake -n` to build each paper config's DAG, without its data.

Run: .venv/bin/python bench/dag_build.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    print(f"{'config':<34} {'jobs':>6} {'seconds':>8}")
    for config in sorted((ROOT / "config" / "paper").glob("*.yaml")):
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", work, "-n",
                                  "--configfile", str(config)], capture_output=True, text=True)
            seconds = time.perf_counter() - start
        total = re.search(r"^total\s+(\d+)$", run.stdout, re.MULTILINE)
        print(f"{config.name:<34} {total[1] if total else 'error':>6} {seconds:8.1f}")


if __name__ == "__main__":
    main()
