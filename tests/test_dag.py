"""The DAG end to end through snakemake's CLI on a micro study, its caching, and the paper DAGs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT

def micro_config(data_root: Path, workdir: Path) -> Path:
    config = {
        "experiment": "micro",
        "dataset": {"name": "fashion-mnist", "root": str(data_root), "augment": []},
        "seeds": [0],
        "models": ["resnet8-w0.25", "resnet14-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 2, "fraction": 0.5},
        "ett": [{"scheme": "default", "spec": "default", "pairs": ["resnet14-w0.25->resnet8-w0.25"]},
                {"scheme": "drop-1", "spec": "Drop 1", "pairs": ["resnet14-w0.25->resnet8-w0.25"]}],
    }
    path = workdir / "micro.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, snakefile: Path = ROOT / "Snakefile") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def workflow_copy(tmp_path: Path) -> Path:
    """The workflow and the package sources in a scratch directory, so a test may edit the code."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("Snakefile", "config.yaml", "environment.yml", "workflow", "elth"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, repo / item)
    return repo / "Snakefile"


def job_counts(output: str) -> dict[str, int]:
    """Jobs per rule from Snakemake's job stats; the rules imp.smk makes per level (`imp_round_<k>`) count
    as one, `imp_round`."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:")[1].split("total")[0]
    counts: dict[str, int] = {}
    for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M):
        rule = re.sub(r"^imp_round_\d+$", "imp_round", m[1])
        counts[rule] = counts.get(rule, 0) + int(m[2])
    return counts


def test_micro_study_runs_end_to_end_caches_and_reruns_only_what_is_stale(fashion_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = micro_config(fashion_root, work)
    snakefile = workflow_copy(tmp_path)
    run = snakemake(work, "--configfile", str(config), "--cores", "2", snakefile=snakefile)
    assert run.returncode == 0, run.stderr[-3000:]

    runs = pd.read_csv(work / "results" / "tables" / "runs.csv", keep_default_na=False)
    big = runs[runs["model"] == "resnet14-w0.25"]
    assert list(big["method"]) == ["dense", "imp", "imp"] and list(big["level"]) == [0, 1, 2]
    assert big["sparsity"].tolist() == pytest.approx([0.0, 0.5, 0.75], abs=1e-3)
    assert big["sparsity_all"].tolist() == big["sparsity"].tolist()  # a ResNet leaves no layer unpruned
    ett = runs[runs["method"] == "ett"]
    assert sorted(zip(ett["scheme"], ett["level"])) == [("default", 1), ("default", 2), ("drop-1", 1), ("drop-1", 2)]
    assert set(ett["model"]) == {"resnet8-w0.25"} and set(ett["source"]) == {"resnet14-w0.25"}
    assert set(runs["experiment"]) == {"micro"} and runs["test_acc"].between(0, 1).all() and len(runs) == 10
    ett_dir = work / "results" / "fashion-mnist" / "resnet8-w0.25" / "seed0" / "ett" / "from-resnet14-w0.25"
    info = json.loads((ett_dir / "drop-1" / "level2" / "ticket.json").read_text())
    assert info["plan"] == "0:0 | 0:0 | 0:0" and info["spec"] == "Drop 1" and 0 < info["sparsity"] < 1
    for f in ["figures/fig3.pdf", "figures/fig9-13.png", "tables/summary.csv", "tables/table2.md", "tables/table3.md"]:
        assert (work / "results" / f).stat().st_size > 100, f
    report = (work / "results" / "report.md").read_text()
    assert "Runs: 10 (dense 2, ett 4, imp 4)" in report and "![fig3](figures/fig3.png)" in report
    assert "| ETT near IMP: an ETT ticket at most 1 pp below the target's IMP ticket |" in report
    run_dir = work / "results" / "fashion-mnist" / "resnet14-w0.25" / "seed0"
    for f in ["dense/rewind.pt", "dense/final.pt", "dense/metrics.csv", "imp/level2/ticket.json", "imp/level2/final.pt"]:
        assert (run_dir / f).is_file(), f
    assert (work / "logs" / "fashion-mnist" / "resnet14-w0.25" / "seed0" / "dense.log").is_file()

    for target in ([], ["results/figures/fig3.pdf"]):
        again = snakemake(work, "--configfile", str(config), "-n", *target, snakefile=snakefile)
        assert "Nothing to be done" in again.stdout + again.stderr

    # Editing the ETT code makes the transformations and what follows them stale, nothing upstream;
    # an edit of the spec parser that reads no spec differently makes nothing stale.
    depth = snakefile.parent / "elth" / "transform" / "depth.py"
    spec = snakefile.parent / "elth" / "transform" / "spec.py"
    for module, stale in ((depth, {"ett": 4, "retrain": 4, "aggregate": 1, "figure": 2, "table": 2, "claims": 1,
                                   "report": 1, "benchmarks": 1, "all": 1}), (spec, {})):
        original = module.read_text()
        module.write_text(original + "\n# an edit\n")
        edited = snakemake(work, "--configfile", str(config), "-n", snakefile=snakefile)
        assert job_counts(edited.stdout) == stale, module
        module.write_text(original)

    # An edit of a rule's shell text alone reruns nothing under the profiles' rerun triggers (no `code`: the
    # params' fingerprints cover the code); Snakemake's default, with `code`, makes those jobs stale.
    rules = snakefile.parent / "workflow" / "rules" / "ett.smk"
    original = rules.read_text()
    rules.write_text(original.replace('"exec > {log} 2>&1; slurm_job; "', '"exec > {log} 2>&1; slurm_job; true; "'))
    assert rules.read_text() != original
    profile = yaml.safe_load((ROOT / "workflow" / "profiles" / "local" / "config.yaml").read_text())["rerun-triggers"]
    chosen = snakemake(work, "--configfile", str(config), "-n", "--rerun-triggers", *profile, snakefile=snakefile)
    assert job_counts(chosen.stdout) == {}
    coded = snakemake(work, "--configfile", str(config), "-n", snakefile=snakefile)
    assert job_counts(coded.stdout)["ett"] == 4
    rules.write_text(original)

    # Config edits: one scheme's spec (the same plan, written as an explicit map) reruns that
    # scheme's transformations only; a new seed or a new target model adds its own runs and
    # touches no finished one.
    def dry_run_after(edit) -> str:
        study = yaml.safe_load(config.read_text())
        edit(study)
        edited = work / "edited.yaml"
        edited.write_text(yaml.safe_dump(study))
        return snakemake(work, "--configfile", str(edited), "-n", snakefile=snakefile).stdout

    respecced = dry_run_after(lambda study: study["ett"][1].update(spec="0:0"))
    assert job_counts(respecced) == {"ett": 2, "retrain": 2, "aggregate": 1, "figure": 2, "table": 2,
                                     "claims": 1, "report": 1, "benchmarks": 1, "all": 1}
    assert set(re.findall(r"output: \S+/ett/from-[^/]+/([^/]+)/level", respecced)) == {"drop-1"}
    recounted = dry_run_after(lambda study: study["pruning"].update(count="open_lth"))
    assert job_counts(recounted) == {"dense": 2, "imp_round": 2, "ett": 4, "retrain": 6, "aggregate": 1, "figure": 2, "table": 2,
                                     "claims": 1, "report": 1, "benchmarks": 1, "all": 1}
    more = dry_run_after(lambda study: study.update(seeds=[0, 1]))
    assert job_counts(more) == {"dense": 2, "imp_round": 2, "ett": 4, "retrain": 6, "aggregate": 1,
                                "figure": 2, "table": 2, "claims": 1, "report": 1, "benchmarks": 1, "all": 1}
    assert set(re.findall(r"output: \S+/seed(\d+)/dense/rewind.pt", more)) == {"1"}
    # A new target model with a transfer into it: its own runs and that pair's, nothing finished.
    added = dry_run_after(lambda study: (study["models"].append("resnet20-w0.25"), study["ett"].append(
        {"scheme": "default", "spec": "default", "pairs": ["resnet14-w0.25->resnet20-w0.25"]})))
    assert job_counts(added) == {"dense": 1, "imp_round": 1, "ett": 2, "retrain": 3, "aggregate": 1,
                                 "figure": 2, "table": 2, "claims": 1, "report": 1, "benchmarks": 1, "all": 1}
    assert set(re.findall(r"output: results/fashion-mnist/([^/]+)/seed0/(?:dense|imp|ett)", added)) == {"resnet20-w0.25"}

    shutil.rmtree(run_dir / "imp" / "level2")
    stale = snakemake(work, "--configfile", str(config), "-n", snakefile=snakefile)
    # The job that pruned level 2's ticket (level 1's round, which retrains level 1 first), level 2's
    # retraining, the ETTs made from level 2 and theirs, and the reports; not the data check, not the
    # dense runs, not level 1's ETTs.
    assert job_counts(stale.stdout) == {"imp_round": 1, "ett": 2, "retrain": 3, "aggregate": 1, "figure": 2,
                                        "table": 2, "claims": 1, "report": 1, "benchmarks": 1, "all": 1}
    assert set(re.findall(r"output: \S+/ett/from-[^/]+/[^/]+/level(\d)/ticket.pt", stale.stdout)) == {"2"}


def test_one_methods_new_setting_reruns_the_levels_baselines_job_and_that_methods_retraining_alone(
        fashion_root: Path, tmp_path: Path) -> None:
    """A level's baselines are one job (one process): its rerun rewrites every method's ticket, but only
    the method whose settings changed is retrained; a new IMP ticket still retrains every baseline."""
    work = tmp_path / "work"
    work.mkdir()
    study = yaml.safe_load(micro_config(fashion_root, work).read_text())
    study.update(models=["resnet8-w0.25"], ett=[], baselines={"methods": ["random", "magnitude"]})
    config = work / "baselines.yaml"
    config.write_text(yaml.safe_dump(study))
    run = snakemake(work, f"--configfile={config}", "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert job_counts(run.stdout + run.stderr) == {"prepare_data": 1, "dense": 1, "imp_round": 1,
                                                   "baseline_settings": 2, "baselines": 2, "retrain": 1 + 2 * 2, "aggregate": 1, "figure": 1,
                                                   "table": 2, "claims": 1, "report": 1, "benchmarks": 1, "all": 1}
    run_dir = work / "results" / "fashion-mnist" / "resnet8-w0.25" / "seed0"
    assert (run_dir / "imp" / "level2" / "ticket.json").is_file() and (run_dir / "imp" / "level1" / "final.pt").is_file()
    reports = {"aggregate": 1, "figure": 1, "table": 2, "claims": 1, "report": 1, "benchmarks": 1, "all": 1}

    study["random_start"] = "pruned"  # read by the random baseline alone
    config.write_text(yaml.safe_dump(study))
    edited = snakemake(work, f"--configfile={config}", "-n")
    assert job_counts(edited.stdout) == {"baseline_settings": 1, "baselines": 2, "retrain": 2, **reports}
    assert set(re.findall(r"output: \S+/baselines/(\w+)/level\d/final.pt", edited.stdout)) == {"random"}
    rerun = snakemake(work, f"--configfile={config}", "--cores", "2")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Nothing to be done" in snakemake(work, f"--configfile={config}", "-n").stdout
    assert json.loads((run_dir / "baselines" / "random" / "level1" / "ticket.json").read_text())["random_start"] == "pruned"

    shutil.rmtree(run_dir / "imp" / "level2")  # a new IMP ticket: both methods retrain at its level
    stale = snakemake(work, f"--configfile={config}", "-n")
    assert job_counts(stale.stdout) == {"imp_round": 1, "baselines": 1, "retrain": 1 + 2, **reports}


def test_a_new_reading_of_a_spec_reruns_only_the_transformations_whose_plan_changed(fashion_root: Path,
                                                                                  tmp_path: Path) -> None:
    """The ETT rule carries its resolved plan: when the parser reads a spec differently, exactly the
    transformations whose plan changed are stale (and what follows them), not every one."""
    work = tmp_path / "work"
    work.mkdir()
    config = work / "plans.yaml"
    config.write_text(yaml.safe_dump({
        "experiment": "plans", "dataset": {"name": "fashion-mnist", "root": str(fashion_root), "augment": []},
        "seeds": [0], "models": ["resnet14-w0.25", "resnet20-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 1, "fraction": 0.5},
        "ett": [{"scheme": "default", "spec": "default", "pairs": "all"},
                {"scheme": "drop-1", "spec": "Drop 1", "pairs": ["resnet20-w0.25->resnet14-w0.25"]}]}))
    snakefile = workflow_copy(tmp_path)
    ett = "results/fashion-mnist/{}/seed0/ett/from-{}/{}/level1/ticket.pt"
    tickets = [ett.format("resnet20-w0.25", "resnet14-w0.25", "default"),
               ett.format("resnet14-w0.25", "resnet20-w0.25", "default"),
               ett.format("resnet14-w0.25", "resnet20-w0.25", "drop-1")]
    run = snakemake(work, "--configfile", str(config), "--cores", "2", *tickets, snakefile=snakefile)
    assert run.returncode == 0, run.stderr[-3000:]
    plans = {t: json.loads((work / t).with_suffix(".json").read_text())["plan"] for t in tickets}
    assert plans[tickets[1]] == "0:0;1:1 | 0:0;1:1 | 0:0;1:1" and plans[tickets[2]] == "0:0;2:1 | 0:0;2:1 | 0:0;2:1"

    # A second reading of `default`: squeeze by dropping the earliest elastic blocks, not the latest.
    # It changes the plan of ResNet-20 -> 14 `default` alone (now that of `Drop 1`).
    spec = snakefile.parent / "elth" / "transform" / "spec.py"
    text = spec.read_text()
    assert text.count("        return list(range(n_target))\n") == 1
    spec.write_text(text.replace("        return list(range(n_target))\n",
                                 "        return [0] + list(range(n_source - n_target + 1, n_source))\n"))
    dry = snakemake(work, "--configfile", str(config), "-n", *tickets, snakefile=snakefile)
    assert job_counts(dry.stdout) == {"ett": 1}, dry.stdout[-2000:]
    assert re.findall(r"output: (\S+/ticket.pt)", dry.stdout) == [tickets[1]]


def test_running_without_the_dataset_stops_at_the_data_rule_with_the_message(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = micro_config(tmp_path / "empty", work)
    config.write_text(config.read_text().replace("name: fashion-mnist", "name: mnist"))
    run = snakemake(work, "--configfile", str(config), "--cores", "1", "results/figures/fig3.pdf")
    assert run.returncode != 0
    assert "dataset 'mnist' not found" in run.stdout + run.stderr and "Provide it" in run.stdout + run.stderr
    assert not (work / "results" / "mnist" / "resnet8-w0.25").exists()


@pytest.mark.parametrize("edit,named", [("modle: [resnet20]\n", "modle"), ("models: [resnet21]\n", "6n+2")])
def test_a_bad_config_fails_before_any_job(tmp_path: Path, edit: str, named: str) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("models")
    config.pop("ett")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config) + edit)
    run = snakemake(tmp_path, "--configfile", str(path), "-n")
    assert run.returncode != 0 and named in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


def test_paper_resnet_dag_lists_every_job_without_the_data(tmp_path: Path) -> None:
    # How fast it builds is measured by bench/dag_build.py, not asserted here.
    run = snakemake(tmp_path, "--configfile", str(ROOT / "config" / "paper" / "cifar10-resnet.yaml"), "-n",
                    "results/figures/fig3.pdf")
    assert run.returncode == 0, run.stderr[-2000:]
    # 5 models x 3 seeds x 16 levels of IMP (level 1's pruning, then 15 rounds each retraining a level and
    # pruning the next, then the last level's retraining); 20 ordered pairs x 3 seeds x 16 levels of ETT;
    # and 5 models x 16 levels x 3 seeds of one job making the 6 baselines, each retrained.
    assert job_counts(run.stdout) == {"prepare_data": 1, "dense": 15, "imp_round": 15 * 15, "ett": 960,
                                      "baseline_settings": 5 * 6, "baselines": 240, "retrain": 15 + 960 + 1440,
                                      "aggregate": 1, "figure": 1}


@pytest.mark.parametrize("name", sorted(str(p.relative_to(ROOT / "config")) for p in (ROOT / "config").glob("*/*.yaml")))
def test_every_shipped_study_dag_builds(tmp_path: Path, name: str) -> None:
    run = snakemake(tmp_path, "--configfile", str(ROOT / "config" / name), "-n")
    assert run.returncode == 0, run.stderr[-2000:]


def with_lmc(config: Path, lmc: dict, name: str = "lmc.yaml", **edits) -> Path:
    study = yaml.safe_load(config.read_text()) | {"lmc": lmc} | edits
    path = config.parent / name
    path.write_text(yaml.safe_dump(study))
    return path


def test_an_lmc_section_adds_two_copies_per_noise_seed_and_one_interpolation_per_pair(tmp_path: Path) -> None:
    config = micro_config(tmp_path / "data", tmp_path)
    plain = job_counts(snakemake(tmp_path, "--configfile", str(config), "-n").stdout)
    lmc = with_lmc(config, {"models": ["resnet8-w0.25"], "levels": [2], "noise_seeds": [[1, 2], [3, 4]]})
    run = snakemake(tmp_path, "--configfile", str(lmc), "-n")
    assert run.returncode == 0, run.stderr[-2000:]
    counts = job_counts(run.stdout)
    # IMP and the default-scheme ETT from ResNet-14 (not drop-1), at level 2: 2 tickets x 4 seeds of noise.
    assert {k: v for k, v in counts.items() if k not in plain} == {"lmc_copy": 8, "lmc": 4, "lmc_aggregate": 1,
                                                                    "lmc_figure": 1, "lmc_table": 1}
    assert {k: v for k, v in counts.items() if k in plain} == plain
    copies = set(re.findall(r"output: \S+/seed0/(\S+)/lmc/noise(\d+)/final.pt", run.stdout))
    assert copies == {(t, n) for t in ("imp/level2", "ett/from-resnet14-w0.25/default/level2") for n in "1234"}
    assert "--data-seed 3" in snakemake(tmp_path, "--configfile", str(lmc), "-n", "-p").stdout


def test_a_noise_seed_equal_to_the_runs_seed_reuses_the_tickets_retraining_and_trains_no_copy(tmp_path: Path) -> None:
    config = micro_config(tmp_path / "data", tmp_path)
    lmc = with_lmc(config, {"models": ["resnet8-w0.25"], "levels": [2], "methods": ["imp"], "noise_seeds": [[0, 1]]})
    run = snakemake(tmp_path, "--configfile", str(lmc), "-n", "-p")
    assert run.returncode == 0, run.stderr[-2000:]
    assert job_counts(run.stdout)["lmc_copy"] == 1
    copies = set(re.findall(r"output: \S+/seed0/(\S+)/lmc/noise(\d+)/final.pt", run.stdout))
    assert copies == {("imp/level2", "1")}
    ticket = "results/fashion-mnist/resnet8-w0.25/seed0/imp/level2"
    assert f"-m elth.lmc {ticket}/final.pt {ticket}/lmc/noise1/final.pt --noise-seeds 0 1" in run.stdout


def test_an_lmc_section_naming_what_the_study_lacks_fails_before_any_job(tmp_path: Path) -> None:
    config = micro_config(tmp_path / "data", tmp_path)
    for lmc, named in (({"models": ["resnet20"]}, "lmc.models"), ({"levels": [3]}, "lmc.levels"),
                       ({"noise_seeds": [[1, 1]]}, "same SGD noise"), ({"schemes": ["inter"]}, "lmc.methods"),
                       ({"seeds": [7]}, "lmc.seeds")):
        run = snakemake(tmp_path, "--configfile", str(with_lmc(config, lmc)), "-n")
        assert run.returncode != 0 and named in run.stdout + run.stderr, lmc


def test_a_tiny_lmc_runs_end_to_end_through_snakemake(fashion_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # Noise seed 0 is the run's: that end is the ticket's own retraining, the other a copy.
    config = with_lmc(micro_config(fashion_root, work), {"methods": ["imp"], "alphas": 3, "bn_batches": 1,
                                                         "noise_seeds": [[0, 1]]},
                      models=["resnet8-w0.25"], ett=[], pruning={"levels": 1, "fraction": 0.5})
    targets = ["results/figures/fig7.pdf", "results/tables/lmc.md"]
    run = snakemake(work, "--configfile", str(config), "--cores", "2", *targets)
    assert run.returncode == 0, run.stderr[-3000:]
    ticket = work / "results" / "fashion-mnist" / "resnet8-w0.25" / "seed0" / "imp" / "level1" / "lmc"
    rows = pd.read_csv(ticket / "noise0-1" / "interpolation.csv")
    assert len(rows) == 3 * 2 and set(rows["noise_a"]) == {0} and set(rows["noise_b"]) == {1}
    assert json.loads((ticket / "noise0-1" / "instability.json").read_text())["alphas"] == 3
    assert not (ticket / "noise0").exists() and (ticket / "noise1" / "final.pt").exists()
    assert len(pd.read_csv(work / "results" / "tables" / "lmc_runs.csv")) == 3 * 2
    assert (work / "results" / "figures" / "fig7.png").stat().st_size > 10_000
    assert "| ResNet-8 (w0.25) | 50.00% | IMP |" in (work / "results" / "tables" / "lmc.md").read_text()
    again = snakemake(work, "--configfile", str(config), "-n", *targets)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_compare_at_makes_every_other_ticket_only_at_those_levels_and_imp_at_all(tmp_path: Path) -> None:
    config = yaml.safe_load(micro_config(tmp_path, tmp_path).read_text())
    config["pruning"].update(levels=4, compare_at=[2, 4])
    config["baselines"] = {"methods": ["random", "snip"]}
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "--configfile", str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    assert counts["dense"] == 2 and counts["imp_round"] == 2 * 3 and counts["ett"] == 2 * 2
    assert counts["baselines"] == 2 * 2 and counts["retrain"] == 2 + 2 * 2 + 2 * 2 * 2
    assert set(re.findall(r"output: \S+/(?:ett/from-[^/]+/[^/]+|baselines/\w+)/level(\d+)/ticket.pt", run.stdout)) == {"2", "4"}
