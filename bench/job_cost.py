"""Benchmark: what a job costs before it works (its fixed cost), per kind of rule, and where the demo's
time goes.

Run: .venv/bin/python bench/job_cost.py [--demo] [--csv bench/results/job-cost.csv]

Every job of the DAG is a process that imports torch and elth, reads its inputs and then works. On
real Fashion-MNIST (Debian's package, decoded once by `prepare_data` as the DAG does), for each kind
of rule this measures, in `--repeats` rounds:
- `exit_s`: start to exit of the command with `--help`, a job that does no work (imports only);
- `ready_s`: for a training command, start to its first step (model built, data loaded, ticket read,
  optimizer made): the time its first epoch's row is printed less the epoch's own `seconds` in it; for a
  command that only makes a ticket (an ETT, a level's baselines), start to exit of a real job on a tiny
  model, whose work is milliseconds;
- `above_torch_s`: the median over rounds of `ready_s` less the time `python -c "import torch"` took just
  before it, measured the same way (to a printed line, or to exit), the floor every job pays (`exit_s`
  and `ready_s` are the least of their runs).
With `--demo` it also runs the README's first command (`snakemake --cores 2` on config.yaml) in a
scratch directory and prints its wall time, the sum of its runs' training and evaluation seconds (each
run's metrics.csv), and the share of the cores' time that is neither: start-up, small jobs, waiting.
With `--mlp1` it runs the issue's small chain the same way: LeNet-300-100 (`mlp1`) on Fashion-MNIST
without augmentation (as open_lth trains MNIST), the paper's MLP recipe for 2 epochs, dense and three IMP
levels, through the DAG to the last level's run (`MLP1_CONFIG`; prepare_data included, no report), and
prints its wall time, its four trainings' seconds and the seconds per epoch.
`--csv` appends the rows, with the date and machine, to a table (bench/results/job-cost.csv is
committed): one per kind of job, one for `import torch` and, with `--demo` and `--mlp1`, one each.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
MODEL, DATASET = "resnet14-w0.25", "fashion-mnist"
RECIPE = json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.05})
READY = '{"epoch": 1,'  # elth.train's row of its first epoch, which says how long the epoch took
TORCH = [PY, "-c", "import torch; print('imported', flush=True)"]
COLUMNS = ["exit_s", "ready_s", "above_torch_s", "wall_s", "train_s", "evaluate_s", "neither_share"]


def timed(command: list[str], until: str | None = None, cwd: Path = ROOT) -> float:
    """Seconds from start to exit of `command`, or to the first output line containing `until`; when that
    line is a training row (JSON with the epoch's `seconds`), to the start of that epoch."""
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if until is not None and until in line:
                seconds = time.perf_counter() - start
                proc.kill()
                return seconds - (json.loads(line)["seconds"] if line.startswith("{") else 0.0)
        if proc.wait() != 0 or until is not None:
            raise SystemExit(f"{' '.join(command)} failed or never printed {until!r}")
    return time.perf_counter() - start


def fastest(command: list[str], repeats: int, until: str | None = None) -> float:
    """The least of `repeats` timings: noise (other processes, a cold page cache) only ever adds time."""
    return min(timed(command, until) for _ in range(repeats))


def fixtures(work: Path) -> dict[str, str]:
    """The files the jobs read: decoded Fashion-MNIST, a dense run's rewind point and an IMP ticket."""
    splits = work / "splits.pt"
    subprocess.run([PY, "-m", "elth.data", DATASET, "--root", str(work / "data"), "--splits", str(splits),
                    "-o", str(work / "dataset.json")], check=True, cwd=ROOT, capture_output=True)
    data = json.dumps({"root": str(work / "data"), "augment": [], "splits": str(splits), "train_subset": 256})
    code = (f"from elth.checkpoint import Checkpoint, build_for\n"
            f"m = build_for({MODEL!r}, {DATASET!r}, seed=0)\n"
            f"Checkpoint({MODEL!r}, {DATASET!r}, 0, m.state_dict(), meta={{'seed': 0}}).save({str(work / 'rewind.pt')!r})\n")
    subprocess.run([PY, "-c", code], check=True, cwd=ROOT)
    subprocess.run([PY, "-m", "elth.imp", "--rewind", str(work / "rewind.pt"), "--trained", str(work / "rewind.pt"),
                    "--level", "1", "--fraction", "0.5", "-o", str(work / "imp" / "ticket.pt")],
                   check=True, cwd=ROOT, capture_output=True)
    return {"data": data, "rewind": str(work / "rewind.pt"), "ticket": str(work / "imp" / "ticket.pt")}


def jobs(work: Path, f: dict[str, str]) -> dict[str, tuple[list[str], str | None]]:
    """Per kind of rule: its real command on the fixtures, and the line that ends its start-up (None: exit)."""
    train = [PY, "-m", "elth.train", "--model", MODEL, "--dataset", DATASET, "--seed", "0", "--recipe", RECIPE,
             "--data", f["data"], "--device", "cpu"]
    return {
        "dense": (train + ["--out", str(work / "dense"), "--next-ticket", str(work / "level1" / "ticket.pt"),
                           "--fraction", "0.5"], READY),
        "retrain": (train + ["--ticket", f["ticket"], "--out", str(work / "retrain")], READY),
        "imp_round": (train + ["--ticket", f["ticket"], "--out", str(work / "round"), "--next-ticket",
                               str(work / "next" / "ticket.pt"), "--rewind", f["rewind"], "--fraction", "0.5"], READY),
        "ett": ([PY, "-m", "elth.transform", f["ticket"], "--source", MODEL, "--dataset", DATASET,
                 "--to", "resnet20-w0.25", "--spec", "default", "--scheme", "default", "-o",
                 str(work / "ett" / "ticket.pt")], None),
        "baselines": ([PY, "-m", "elth.baseline", "reinit", "random", "magnitude", "--rewind", f["rewind"],
                       "--reference", f["ticket"], "--data", f["data"], "--device", "cpu",
                       *(f"-o{work / 'b' / m}.pt" for m in ("reinit", "random", "magnitude"))], None),
    }


HELP = {"dense": "elth.train", "retrain": "elth.train", "imp_round": "elth.train",
        "ett": "elth.transform", "baselines": "elth.baseline", "lmc": "elth.lmc", "prepare_data": "elth.data",
        "report": "elth.report.aggregate"}


MLP1_CONFIG = {
    "experiment": "mlp1-chain", "seeds": [0], "models": ["mlp1"],
    "dataset": {"name": "fashion-mnist", "root": "data", "augment": []},
    "recipes": {"mlp": {"epochs": 2, "batch_size": 128, "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}},
    "pruning": {"levels": 3, "fraction": 0.2}, "baselines": {"methods": []}, "ett": [],
    # The chain is sequential (each level trains from the last), so its one job at a time may use
    # both cores: 1.35-1.47 s an epoch on two threads against 1.75-1.94 s on one, the same numbers.
    "resources": {"threads": 2, "device": "auto"},
}
MLP1_TARGET = "results/fashion-mnist/mlp1/seed0/imp/level3/summary.json"


def dag_run(config: Path, cores: int, targets: list[str]) -> dict[str, float]:
    """Snakemake on `config` in a scratch directory, as on a fresh clone (prepare_data unpacks Debian's
    Fashion-MNIST there): the wall time, and its runs' training and evaluation seconds from their
    metrics.csv (`train_seconds`, and `seconds` less it)."""
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        run = subprocess.run([PY, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", scratch,
                              "--cores", str(cores), f"--configfile={config}", *targets],
                             cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if run.returncode != 0:
            raise SystemExit(run.stderr[-3000:])
        train = evaluate = 0.0
        epochs = 0
        for metrics in Path(scratch, "results").rglob("metrics.csv"):
            for row in csv.DictReader(metrics.open()):
                train += float(row["train_seconds"])
                evaluate += float(row["seconds"]) - float(row["train_seconds"])
                epochs += 1
    return {"wall_s": wall, "train_s": train, "evaluate_s": evaluate, "epochs": epochs,
            "neither_share": 1 - (train + evaluate) / (wall * cores)}


def demo(cores: int) -> dict[str, float]:
    """The README's first command in a scratch directory."""
    return dag_run(ROOT / "config.yaml", cores, [])


def mlp1(cores: int) -> dict[str, float]:
    """The mlp1 chain (`MLP1_CONFIG`) to its last level's run."""
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch, "mlp1.yaml")
        config.write_text(json.dumps(MLP1_CONFIG))
        return dag_run(config, cores, [MLP1_TARGET])


def fixed_cost_rows(repeats: int) -> list[dict]:
    """Each kind of job's fixed cost, measured round by round beside `import torch` (printed as a table)."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "data").symlink_to(Path("/usr/share/datasets/fashion-mnist"))
        commands = jobs(work, fixtures(work))
        # Round by round, `import torch` beside every command, so that a machine whose speed drifts (a shared
        # VM's does, by a factor of two within a minute) shifts both sides of each difference alike.
        torch_s, exit_s, ready_s, above_s = [], {k: [] for k in HELP}, {k: [] for k in commands}, {k: [] for k in commands}
        for _ in range(repeats):
            for kind, module in HELP.items():
                torch_s.append(timed(TORCH))
                exit_s[kind].append(timed([PY, "-m", module, "--help"]))
                if kind in commands:
                    command, until = commands[kind]
                    # The floor measured the way the job is: to the same line, or to exit (which adds the
                    # interpreter's teardown, half a second with torch loaded).
                    base = timed(TORCH, "imported") if until else timed(TORCH)
                    ready_s[kind].append(timed(command, until))
                    above_s[kind].append(ready_s[kind][-1] - base)
    rows = [{"what": "import torch", "exit_s": min(torch_s)}]
    for kind in HELP:
        row = {"what": kind, "exit_s": min(exit_s[kind])}
        if kind in commands:
            row |= {"ready_s": min(ready_s[kind]), "above_torch_s": statistics.median(above_s[kind])}
        rows.append(row)
    print(f"{'job':<14} {'exit (--help) s':>16} {'ready s':>9} {'above import torch s':>21}")
    for r in rows:
        cells = [f"{r[k]:.2f}" if k in r else "-" for k in ("exit_s", "ready_s", "above_torch_s")]
        print(f"{r['what']:<14} {cells[0]:>16} {cells[1]:>9} {cells[2]:>21}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="rounds of the fixed-cost measurement (0: skip it)")
    p.add_argument("--demo", action="store_true", help="also run the demo (minutes) and split its time")
    p.add_argument("--mlp1", action="store_true", help="also run the mlp1 chain (dense and three IMP levels)")
    p.add_argument("--cores", type=int, default=2, help="the demo's and the chain's --cores")
    p.add_argument("--csv", type=Path, help="append the rows to this table")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    machine = f"{platform.node()} ({os.cpu_count()} cores)"
    rows = fixed_cost_rows(args.repeats) if args.repeats else []
    if args.demo:
        d = demo(args.cores)
        print(f"demo: {d['wall_s']:.0f} s wall on {args.cores} cores; runs trained {d['train_s']:.0f} s and evaluated "
              f"{d['evaluate_s']:.0f} s; neither: {d['neither_share']:.0%} of the cores' time")
        rows.append({"what": "demo", **d})
    if args.mlp1:
        m = mlp1(args.cores)
        print(f"mlp1 chain: {m['wall_s']:.1f} s wall on {args.cores} cores; its four runs trained {m['train_s']:.1f} s "
              f"({m['train_s'] / m['epochs']:.2f} s per epoch) and evaluated {m['evaluate_s']:.1f} s")
        rows.append({"what": "mlp1", **m})
    if args.csv:
        new = not args.csv.exists()
        with args.csv.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["date", "machine", "what", *COLUMNS])
            if new:
                writer.writeheader()
            day = time.strftime("%Y-%m-%d")
            for r in rows:
                writer.writerow({"date": day, "machine": machine, "what": r["what"],
                                 **{k: f"{r[k]:.3f}" if k in r else "" for k in COLUMNS}})


if __name__ == "__main__":
    main()
