"""Collect every run's summary.json into results/tables/runs.csv: one row per run.

A row is (experiment, dataset, model, method, source, scheme, level, sparsity, seed) and what the
run measured. Figures and tables read this file alone, so every number they show comes from a
run that happened.
"""

from __future__ import annotations

import argparse

import pandas as pd

from elth import io
from elth.errors import cli_errors

COLUMNS = ["experiment", "dataset", "model", "method", "source", "scheme", "level", "sparsity", "seed",
           "test_acc", "best_acc", "test_loss", "epochs", "steps", "wall_s", "device"]
KEYS = ["experiment", "dataset", "model", "method", "source", "scheme", "level", "seed"]


GROUP = ["experiment", "dataset", "model", "method", "source", "scheme", "level"]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every (model, method, source, scheme, level)."""
    summary = (runs.groupby(GROUP, sort=True)
               .agg(sparsity=("sparsity", "mean"), seeds=("seed", "nunique"), test_acc_mean=("test_acc", "mean"),
                    test_acc_std=("test_acc", lambda a: a.std(ddof=0)), best_acc_mean=("best_acc", "mean"),
                    wall_s_mean=("wall_s", "mean"))
               .reset_index())
    return summary


def collect(paths: list[str], experiment: str) -> pd.DataFrame:
    rows = [{**io.read_json(p), "experiment": experiment} for p in paths]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table[["source", "scheme"]] = table[["source", "scheme"]].fillna("")
    return table.sort_values(KEYS, kind="stable").reset_index(drop=True)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.aggregate", description=__doc__.splitlines()[0])
    p.add_argument("summaries", nargs="+", help="summary.json files of finished runs")
    p.add_argument("--experiment", required=True)
    p.add_argument("-o", "--out", required=True, help="runs.csv: one row per run")
    p.add_argument("--summary", required=True, help="summary.csv: mean and std over seeds")
    args = p.parse_args(argv)
    table = collect(args.summaries, args.experiment)
    io.write_text(args.out, table.to_csv(index=False))
    io.write_text(args.summary, summarize(table).to_csv(index=False))
    print(f"{len(table)} runs -> {args.out}, {args.summary}")


if __name__ == "__main__":
    main()
