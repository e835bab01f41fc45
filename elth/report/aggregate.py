"""Collect every run's summary.json into results/tables/runs.csv: one row per run.

A row is (experiment, dataset, model, method, source, scheme, level, sparsity, sparsity_all, seed)
and what the run measured. `sparsity` is the pruned share of the prunable weights (those the mask
covers), `sparsity_all` that of all conv and linear weights, the layers left unpruned counted as
kept (open_lth's convention; `elth.prune.mask.SPARSITY_CONVENTIONS`); they are equal for a model
with nothing left unpruned. Figures and tables read this file alone, so every number they show
comes from a run that happened. A study that ran in pieces (its seeds on different machines, say)
joins the runs.csv of the other pieces with `--include`; a run found twice is refused rather than
averaged. A runs.csv of the format before `sparsity_all` (`OLD_COLUMNS`) is read too, the column
filled where it needs no config (`fill_sparsity_all`) and left empty elsewhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from elth import files
from elth.errors import ConfigError, cli_errors
from elth.models.names import family_of

COLUMNS = ["experiment", "dataset", "model", "method", "source", "scheme", "level", "sparsity", "sparsity_all", "seed",
           "test_acc", "best_acc", "test_loss", "epochs", "steps", "wall_s", "device"]
OLD_COLUMNS = [c for c in COLUMNS if c != "sparsity_all"]
# Families the authors prune whole and no shipped elth config leaves a layer of unpruned, so an old
# table's runs of them have sparsity_all = sparsity (a study that did unprune a ResNet layer must
# aggregate its summary.json files again instead).
WHOLLY_PRUNED = ("cifar-resnet", "imagenet-resnet")
KEYS = ["experiment", "dataset", "model", "method", "source", "scheme", "level", "seed"]


GROUP = ["experiment", "dataset", "model", "method", "source", "scheme", "level"]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every (model, method, source, scheme, level)."""
    summary = (runs.groupby(GROUP, sort=True)
               .agg(sparsity=("sparsity", "mean"), sparsity_all=("sparsity_all", "mean"), seeds=("seed", "nunique"),
                    test_acc_mean=("test_acc", "mean"),
                    test_acc_std=("test_acc", lambda a: a.std(ddof=0)), best_acc_mean=("best_acc", "mean"),
                    wall_s_mean=("wall_s", "mean"))
               .reset_index())
    return summary


def collect(paths: list[str], experiment: str) -> pd.DataFrame:
    rows = [{**files.read_json(p), "experiment": experiment} for p in paths]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table[["source", "scheme"]] = table[["source", "scheme"]].fillna("")
    return table.sort_values(KEYS, kind="stable").reset_index(drop=True)


def fill_sparsity_all(old: pd.DataFrame) -> pd.DataFrame:
    """A runs.csv of the format before `sparsity_all`, with that column: equal to `sparsity` for the
    dense runs and for the ResNets (`WHOLLY_PRUNED`: nothing left unpruned, so the two conventions
    agree), empty (NaN) for the others, whose unpruned layers only their study's config names."""
    derivable = (old["sparsity"] == 0) | old["model"].map(lambda m: family_of(m) in WHOLLY_PRUNED)
    return old.assign(sparsity_all=old["sparsity"].where(derivable))[COLUMNS]


def include(table: pd.DataFrame, paths: list[str], experiment: str) -> pd.DataFrame:
    """`table` joined with the runs.csv files at `paths`, runs of the same experiment made elsewhere."""
    parts = [table] if len(table) else []
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"--include {path}: no such file; give the runs.csv of one of the study's pieces")
        # Only an empty sparsity_all is missing (an old table's VGG or MLP row); empty source/scheme are "".
        other = pd.read_csv(path, keep_default_na=False, na_values={"sparsity_all": [""]})
        if list(other.columns) == OLD_COLUMNS:
            other = fill_sparsity_all(other)
            empty = int(other["sparsity_all"].isna().sum())
            print(f"{path}: a runs.csv without sparsity_all; filled it from sparsity for its dense and ResNet runs"
                  + (f", left it empty for {empty} runs of models that may have layers left unpruned" if empty else ""))
        elif list(other.columns) != COLUMNS:
            raise ConfigError(f"{path} is not a runs.csv of this version: its columns are {list(other.columns)}, "
                              f"not {COLUMNS}; aggregate its summary.json files again")
        strangers = sorted(set(other["experiment"]) - {experiment})
        if strangers:
            raise ConfigError(f"{path} holds runs of experiment {strangers[0]!r}, not {experiment!r}: "
                              "--include joins pieces of one study")
        parts.append(other)
    joined = pd.concat(parts, ignore_index=True)
    twice = joined[joined.duplicated(KEYS)]
    if len(twice):
        first = twice.iloc[0]
        raise ConfigError(f"{len(twice)} run(s) are in more than one place, the first "
                          + ", ".join(f"{k}={first[k]!r}" for k in KEYS[1:])
                          + "; keep each run in one piece (drop it from the --include table or its summary.json)")
    return joined.sort_values(KEYS, kind="stable").reset_index(drop=True)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.aggregate", description=__doc__.splitlines()[0])
    p.add_argument("summaries", nargs="*", help="summary.json files of finished runs")
    p.add_argument("--include", action="append", default=[], metavar="RUNS_CSV",
                   help="runs.csv of the same study's runs made elsewhere (repeat for several), joined in; one "
                        "without sparsity_all gets it from sparsity for dense and ResNet runs, empty otherwise")
    p.add_argument("--experiment", required=True)
    p.add_argument("-o", "--out", required=True, help="runs.csv: one row per run")
    p.add_argument("--summary", required=True, help="summary.csv: mean and std over seeds")
    args = p.parse_args(argv)
    if not args.summaries and not args.include:
        p.error("give summary.json files, --include runs.csv files, or both")
    table = include(collect(args.summaries, args.experiment), args.include, args.experiment)
    files.write_text(args.out, table.to_csv(index=False))
    files.write_text(args.summary, summarize(table).to_csv(index=False))
    print(f"{len(table)} runs -> {args.out}, {args.summary}")


if __name__ == "__main__":
    main()
