"""Snakemake's report (`snakemake --report`) of a micro study, the per-job benchmarks it holds, and the
pages and rows they are made of."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from elth.report import benchmarks, html
from test_dag import job_counts, micro_config, snakemake

# Every result the report of a study with ETTs and an `lmc` section holds, by category.
REPORTED = {
    "Figures": ["fig3.png", "fig9-13.png"],
    "Tables": ["table2.html", "table3.html", "runs.csv", "summary.csv"],
    "Claims": ["claims.html"],
    "Linear mode connectivity": ["fig7.png", "lmc.html", "lmc_runs.csv"],
    "Costs": ["benchmarks.csv", "benchmarks.html"],
}
# The rules with a `benchmark:` file that the micro study runs.
BENCHMARKED = {"prepare_data", "dense", "ett", "retrain", "lmc_copy", "lmc"}


def test_the_report_of_a_micro_study_holds_every_figure_and_table_captioned_and_the_jobs_costs(
        fashion_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    study = yaml.safe_load(micro_config(fashion_root, work).read_text())
    study["pruning"]["levels"] = 1
    study["ett"] = study["ett"][:1]
    study["lmc"] = {"models": ["resnet8-w0.25"], "methods": ["imp"], "alphas": 3, "bn_batches": 1,
                    "noise_seeds": [[0, 1]]}
    config = work / "report.yaml"
    config.write_text(yaml.safe_dump(study))
    run = snakemake(work, f"--configfile={config}", "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    ran = {rule: n for rule, n in job_counts(run.stdout + run.stderr).items() if rule in BENCHMARKED}
    assert set(ran) == BENCHMARKED

    # One row per job of a rule that trains, scores or transforms, each with what it measured.
    rows = pd.read_csv(work / "results" / "tables" / "benchmarks.csv")
    assert list(rows.columns) == benchmarks.COLUMNS
    assert rows["rule"].value_counts().to_dict() == ran
    assert (rows["seconds"] > 0).all() and (rows["cpu_seconds"] >= 0).all()
    retrain = rows[rows["rule"] == "retrain"]
    assert sorted(retrain["kind"]) == ["ett", "imp", "imp"] and set(retrain["runs"]) == {1}
    assert rows.loc[rows["rule"] == "ett", ["model", "level", "kind", "runs"]].values.tolist() == [
        ["resnet8-w0.25", 1, "ett", 0]]
    assert "benchmarks" in (work / "results" / "tables" / "benchmarks.html").read_text()

    for name in ("report.zip", "report.html"):
        made = snakemake(work, f"--configfile={config}", "--report", str(work / name))
        assert made.returncode == 0, made.stderr[-3000:]
    with zipfile.ZipFile(work / "report.zip") as archive:
        held = {Path(n).name for n in archive.namelist() if "/data/raw/" in n}
        page = archive.read("report/report.html").decode()
    assert held == {f for files in REPORTED.values() for f in files}
    single = (work / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", single, re.S)[1])
    by_name = {Path(path).name: entry for path, entry in results.items()}
    assert set(by_name) == held
    categories = json.loads(re.search(r"var categories = (\{.*?\});\n", single, re.S)[1])
    assert set(categories) == set(REPORTED)
    for category, files in REPORTED.items():
        listed = {Path(p).name for sub in categories[category].values() for p in sub}
        assert listed == set(files), category
    # Every result has a caption saying what it shows, with the study's own settings filled in.
    captions = {name: re.sub(r"<[^>]+>", "", entry["caption"]) for name, entry in by_name.items()}
    assert all(len(caption) > 200 for caption in captions.values())
    assert "Accuracy against sparsity" in captions["fig3.png"] and "seeds (1 here)" in captions["fig3.png"]
    assert "Every ETT scheme" in captions["fig9-13.png"]
    assert "lmc.noise_seeds: [0, 1]" in captions["fig7.png"]
    assert "Table 2 shape" in captions["table2.html"]
    assert by_name["benchmarks.html"]["data_uri"].startswith("data:text/html")
    # The global description names the study, and Snakemake's run statistics list the rules that ran.
    assert "micro" in single and "fashion-mnist" in single
    runtimes = re.search(r"var runtimes_spec = (\{.*?\});\n", single, re.S)[1]
    assert all(f'"rule": "{rule}"' in runtimes for rule in BENCHMARKED)
    assert "var runtimes_spec" in page


def test_the_benchmarks_rule_reads_the_benchmark_file_of_every_job_of_the_dag(tmp_path: Path) -> None:
    """Stacked groups (the proxy), copies of linear mode connectivity alone and in groups, a dataset
    transfer, and RigL with its FLOPs tables: the files the `benchmarks` job is given are exactly
    those the other jobs' `benchmark:` directives write, so no job is missing from benchmarks.csv."""
    demo = yaml.safe_load((ROOT / "config.yaml").read_text()) | {"rigl": {"multipliers": [1, 5]}}
    (tmp_path / "rigl.yaml").write_text(yaml.safe_dump(demo))
    for config in (ROOT / "config" / "proxy" / "fashion-mnist.yaml", ROOT / "config" / "proxy" /
                   "transfer-fashion-digits.yaml", tmp_path / "rigl.yaml"):
        work = tmp_path / config.stem
        run = snakemake(work, f"--configfile={config}", "-n", "-p")
        assert run.returncode == 0, run.stderr[-3000:]
        written = set(re.findall(r"^\s+benchmark: (\S+)$", run.stdout, re.M))
        command = next(line for line in run.stdout.splitlines() if "-m elth.report.benchmarks" in line)
        read = {word for word in command.split() if word.endswith(".tsv")}
        assert read == written, config.name
        assert {benchmarks.describe(p, json.loads(re.search(r"--groups '([^']*)'", command)[1]))["rule"]
                for p in read} >= {"dense", "retrain"}


GROUPS = {"baselines": ["random", "snip"], "together": {"resnet20": [["ett/from-resnet14/default", "baselines/snip"], ["baselines/random"]]},
          "lmc": {"resnet20/level3": [["imp/level3", "ett/from-resnet14/default/level3"]]}}


@pytest.mark.parametrize("path,rule,level,kind,runs", [
    ("benchmarks/cifar10/prepare_data.tsv", "prepare_data", None, "", 0),
    ("benchmarks/cifar10/resnet20/seed0/dense.tsv", "dense", 0, "dense", 1),
    ("benchmarks/cifar10/resnet20/seed0/imp/level2/imp_round.tsv", "imp_round", 2, "imp", 1),
    ("benchmarks/cifar10/resnet20/seed0/imp/level3/retrain.tsv", "retrain", 3, "imp", 1),
    ("benchmarks/cifar10/resnet20/seed0/ett/from-resnet14/default/level3/ett.tsv", "ett", 3, "ett", 0),
    ("benchmarks/cifar10/resnet20/seed0/baselines/level3/baselines.tsv", "baselines", 3, "random+snip", 0),
    ("benchmarks/cifar10/resnet20/seed0/transfer/from-svhn/resnet20/direct/level3/transfer.tsv", "transfer", 3,
     "transfer", 0),
    ("benchmarks/cifar10/resnet20/seed0/dst/rigl5x/level3/rigl.tsv", "rigl", 3, "rigl5x", 1),
    ("benchmarks/cifar10/resnet20/seed0/together/level3-group0.tsv", "retrain_together", 3, "ett+snip", 2),
    ("benchmarks/cifar10/resnet20/seed0/together/level3-group1.tsv", "retrain_together", 3, "random", 1),
    ("benchmarks/cifar10/resnet20/seed0/ett/from-resnet14/default/level3/lmc/noise1/lmc_copy.tsv", "lmc_copy", 3,
     "ett", 1),
    ("benchmarks/cifar10/resnet20/seed0/lmc/level3-group0-noise2.tsv", "lmc_copies", 3, "imp+ett", 2),
    ("benchmarks/cifar10/resnet20/seed0/imp/level3/lmc/noise1-2/lmc.tsv", "lmc", 3, "imp", 0),
    ("benchmarks/tables/flops/resnet14-to-resnet20-w0.5.tsv", "flops", None, "", 0),
])
def test_a_benchmark_path_says_the_rule_model_level_and_kind_of_its_job(path: str, rule: str, level: int | None,
                                                                       kind: str, runs: int) -> None:
    row = benchmarks.describe(path, GROUPS)
    assert (row["rule"], row["level"], row["kind"], row["runs"]) == (rule, level, kind, runs)
    assert row["model"] == (None if rule == "prepare_data" else "resnet20-w0.5" if rule == "flops" else "resnet20")


def test_a_missing_benchmark_file_is_counted_not_an_error_and_an_unknown_group_is(tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture) -> None:
    present = tmp_path / "benchmarks" / "mnist" / "mlp2" / "seed0" / "dense.tsv"
    present.parent.mkdir(parents=True)
    present.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                       "12.5\t0:00:12\tNA\tNA\tNA\tNA\tNA\tNA\t0.00\t0.00\n")
    out = tmp_path / "benchmarks.csv"
    benchmarks.main([str(present), str(tmp_path / "benchmarks" / "mnist" / "mlp2" / "seed1" / "dense.tsv"),
                     "-o", str(out), "--html", str(tmp_path / "benchmarks.html")])
    rows = pd.read_csv(out)
    assert rows[["rule", "model", "seconds"]].values.tolist() == [["dense", "mlp2", 12.5]]
    assert pd.isna(rows["max_rss_mb"][0])  # too short to sample
    assert "1 jobs without a benchmark file" in capsys.readouterr().out
    assert "1 jobs have no benchmark file" in (tmp_path / "benchmarks.html").read_text()
    with pytest.raises(SystemExit):
        benchmarks.main([str(tmp_path / "benchmarks" / "mnist" / "mlp2" / "seed0" / "together" / "level1-group0.tsv"),
                         "-o", str(out)])
    assert "--groups does not say" in capsys.readouterr().err


def test_a_markdown_table_becomes_an_html_page() -> None:
    page = html.convert("### Title `x`\n\nSome <text>.\n\n| a | b |\n| --- | ---: |\n| ResNet-8 | 1.50 |\n\n"
                        "- one\n- two\n", "t")
    assert "<h3>Title <code>x</code></h3>" in page and "<p>Some &lt;text&gt;.</p>" in page
    assert "<th>a</th><th class='right'>b</th>" in page and "<td>ResNet-8</td><td class='right'>1.50</td>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page
