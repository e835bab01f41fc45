"""results/tables/benchmarks.csv: what each job of a study cost, one row per job, from the files that
Snakemake's `benchmark:` directive writes for every rule that trains, scores or transforms.

A row is (rule, dataset, model, seed, level, kind, runs) and what the job measured: its wall
`seconds`, the CPU seconds of its whole process tree (`cpu_seconds`) and that tree's peak resident
memory in MB (`max_rss_mb`, empty for a job too short to sample). `kind` is the ticket's kind as
runs.csv names its method (dense, imp, ett, transfer, a baseline's name, rigl or rigl5x), joined by
`+` for a job that trains a stacked group; `runs` is the training runs the job made (the group's
size for a stacked job, 0 for one that only prunes, transforms, scores or interpolates; an IMP round
trains one and prunes the next level), so that
seconds per run can be compared between stacked and single jobs (bench/study_cost.py projects a
study from them). Everything but the measurements is read from the file's path, which mirrors the
job's log path under benchmarks/ and ends in the rule's name; what a stacked job trains, which its
path does not say, comes from `--groups` (a `baselines` job's kind joins its methods). Grouped rules are named by their family
(`retrain_together`, `lmc_copies`): the model is a column of its own.

A job that ran before its rule recorded benchmarks, or whose file was deleted, has no row: the
command names how many, rather than making the workflow rerun the job to measure it. `--html` also
writes a page for Snakemake's report: the jobs summed per rule and model, the costliest first.
"""

from __future__ import annotations

import argparse
import json
import os
import re

import pandas as pd

from elth import files
from elth.errors import ElthError, cli_errors
from elth.report.html import convert

COLUMNS = ["rule", "dataset", "model", "seed", "level", "kind", "runs", "seconds", "cpu_seconds", "max_rss_mb"]
# The rules whose benchmark file sits in a ticket's directory, and the training runs each job makes.
TICKET_RULES = {"imp_round": 1, "ett": 0, "transfer": 0, "retrain": 1, "rigl": 1, "lmc_copy": 1,
                "lmc": 0}
RUN = re.compile(r"(?:.*/)?benchmarks/(?P<dataset>[^/]+)/(?P<model>[^/]+)/seed(?P<seed>\d+)/(?P<rest>.+)\.tsv")
DATASET = re.compile(r"(?:.*/)?benchmarks/(?P<dataset>[^/]+)/prepare_data\.tsv")
FLOPS = re.compile(r"(?:.*/)?benchmarks/tables/flops/(?P<source>.+)-to-(?P<model>.+)\.tsv")
BASELINES = re.compile(r"baselines/level(?P<level>\d+)/baselines")
TOGETHER = re.compile(r"together/level(?P<level>\d+)-group(?P<group>\d+)")
LMC_GROUP = re.compile(r"lmc/level(?P<level>\d+)-group(?P<group>\d+)-noise\d+")
IN_TICKET = re.compile(rf"(?P<ticket>.+?)(?:/lmc/noise\d+(?:-\d+)?)?/(?P<rule>{'|'.join(TICKET_RULES)})")


def kind(ticket: str) -> str:
    """A ticket directory under a run ('ett/from-resnet14/default/level2', or a group's kind without
    its level) -> its kind as runs.csv names the method: 'ett', 'snip', 'rigl5x', ..."""
    parts = ticket.split("/")
    return parts[1] if parts[0] in ("baselines", "dst") else parts[0]


def level(ticket: str) -> int | None:
    found = re.search(r"(?:^|/)level(\d+)(?:/|$)", ticket)
    return int(found[1]) if found else None


def describe(path: str, groups: dict) -> dict:
    """Everything a benchmark file's path says of its job (all of `COLUMNS` but the measurements)."""
    row = {"dataset": None, "model": None, "seed": None, "level": None, "kind": "", "runs": 0}
    if m := DATASET.fullmatch(path):
        return row | {"rule": "prepare_data", "dataset": m["dataset"]}
    if m := FLOPS.fullmatch(path):
        return row | {"rule": "flops", "model": m["model"]}
    if not (m := RUN.fullmatch(path)):
        raise ElthError(f"{path}: not a benchmark path of the workflow's rules")
    row |= {"dataset": m["dataset"], "model": m["model"], "seed": int(m["seed"])}
    rest = m["rest"]
    if rest == "dense":
        return row | {"rule": "dense", "level": 0, "kind": "dense", "runs": 1}
    for rule, pattern, section, key in (("retrain_together", TOGETHER, "together", "{model}"),
                                        ("lmc_copies", LMC_GROUP, "lmc", "{model}/level{level}")):
        if g := pattern.fullmatch(rest):
            try:
                tickets = groups[section][key.format(model=m["model"], level=g["level"])][int(g["group"])]
            except (KeyError, IndexError):
                raise ElthError(f"{path}: --groups does not say what group {g['group']} trains") from None
            return row | {"rule": rule, "level": int(g["level"]), "kind": "+".join(map(kind, tickets)),
                          "runs": len(tickets)}
    if b := BASELINES.fullmatch(rest):
        return row | {"rule": "baselines", "level": int(b["level"]), "kind": "+".join(groups.get("baselines", []))}
    if not (t := IN_TICKET.fullmatch(rest)):
        raise ElthError(f"{path}: not a benchmark path of the workflow's rules")
    return row | {"rule": t["rule"], "level": level(t["ticket"]), "kind": kind(t["ticket"]),
                  "runs": TICKET_RULES[t["rule"]]}


def measure(path: str) -> dict:
    """The last record of a benchmark file (a rule run once writes one)."""
    record = pd.read_csv(path, sep="\t", na_values=["NA", "-"]).iloc[-1]
    return {"seconds": float(record["s"]), "cpu_seconds": float(record["cpu_time"]),
            "max_rss_mb": float(record["max_rss"])}


def collect(paths: list[str], groups: dict) -> tuple[pd.DataFrame, list[str]]:
    """One row per benchmark file that exists, and the paths of those that do not. Every path is read
    as a job's, present or not, so a path of no rule's layout fails here rather than going unnoticed."""
    jobs = {p: describe(p, groups) for p in paths}
    rows = [job | measure(p) for p, job in jobs.items() if os.path.exists(p)]
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"seed": "Int64", "level": "Int64"})
    return table, [p for p in paths if not os.path.exists(p)]


def summary(table: pd.DataFrame, missing: int) -> str:
    """Markdown: per rule and model, the jobs, their hours, seconds per job and per training run, and
    the largest peak memory; the rule and model of most hours first."""
    lines = ["### What the jobs cost, per rule and model", "",
             f"{len(table)} jobs, {table['seconds'].sum() / 3600:.2f} hours of wall time in all (the sum over jobs)"
             + (f"; {missing} jobs have no benchmark file and are left out." if missing else "."), "",
             "| rule | model | jobs | hours | seconds per job | seconds per training run | peak memory (MB) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    groups = table.fillna({"model": ""}).groupby(["rule", "model"])
    totals = groups.agg(jobs=("seconds", "size"), seconds=("seconds", "sum"), runs=("runs", "sum"),
                        rss=("max_rss_mb", "max")).sort_values("seconds", ascending=False)
    for (rule, model), r in totals.iterrows():
        per_run = f"{r['seconds'] / r['runs']:.1f}" if r["runs"] else "-"
        rss = f"{r['rss']:.0f}" if pd.notna(r["rss"]) else "-"
        lines.append(f"| {rule} | {model or '-'} | {int(r['jobs'])} | {r['seconds'] / 3600:.2f} | "
                     f"{r['seconds'] / r['jobs']:.1f} | {per_run} | {rss} |")
    lines += ["", "Wall seconds as Snakemake's `benchmark:` measured each job; a stacked job's seconds per training "
              "run divide its time by the tickets it trained. Every job's row is in `benchmarks.csv`."]
    return "\n".join(lines) + "\n"


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("benchmarks", nargs="*", help="the study's benchmark files (a missing one is named, not read)")
    p.add_argument("--groups", default="{}", help='JSON: {"baselines": [method, ...], "together": {model: '
                   '[[ticket kind, ...], ...]}, "lmc": {"model/level<k>": [[ticket, ...], ...]}}, what each job of '
                   'several tickets makes')
    p.add_argument("-o", "--out", required=True, help="results/tables/benchmarks.csv")
    p.add_argument("--html", help="the summary per rule and model as a page, e.g. results/tables/benchmarks.html")
    args = p.parse_args(argv)
    table, missing = collect(args.benchmarks, json.loads(args.groups))
    files.write_text(args.out, table.to_csv(index=False))
    if args.html:
        files.write_text(args.html, convert(summary(table, len(missing)), "benchmarks"))
    print(f"{len(table)} jobs, {table['seconds'].sum() / 3600:.2f} hours of wall time -> {args.out}")
    if missing:
        print(f"{len(missing)} jobs without a benchmark file (run before benchmarks were recorded, or the file "
              f"deleted), left out: {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")


if __name__ == "__main__":
    main()
