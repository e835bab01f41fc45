"""Recovery after Snakemake itself dies (a lost login node, the OOM killer, a closed terminal): the
whole process group killed with SIGKILL mid-run leaves the directory locked and the running job
incomplete; README.md's recovery (`--unlock`, then the command with `--rerun-incomplete`) must redo
only that job, from its last epoch, and end with the table of a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from conftest import write_mnist_like
from test_dag import job_counts, workflow_copy

RUN = "results/fashion-mnist/resnet8-w0.25/seed0"


def study(workdir: Path, snakefile: Path) -> list[str]:
    """The smallest study with a chain to interrupt (data check, dense run, one IMP ticket and its
    retraining): one tiny model, one level, no ETT. 1,024 images make an epoch last about 0.4 s, so
    the retraining's three epochs after its first resume point leave the poll below time to see it.
    Returns the arguments every Snakemake command of the test shares."""
    write_mnist_like(workdir / "data" / "FashionMNIST" / "raw", n_train=1024)
    config = {
        "experiment": "recovery",
        "dataset": {"name": "fashion-mnist", "root": str(workdir / "data"), "augment": []},
        "seeds": [0],
        "models": ["resnet8-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 4, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 1, "fraction": 0.5},
        "resources": {"threads": 1, "device": "cpu"},
    }
    (workdir / "study.yaml").write_text(yaml.safe_dump(config))
    return ["-s", str(snakefile), "-d", str(workdir), "--configfile=study.yaml", "--cores", "1",
            "results/tables/runs.csv"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """A Snakemake command run in `workdir` as a user would type it there, which must succeed."""
    run = subprocess.run([sys.executable, "-m", "snakemake", *args], capture_output=True, text=True, cwd=workdir)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return run


def kill_during_retraining(workdir: Path, args: list[str]) -> None:
    """Start Snakemake in a session of its own and SIGKILL its whole process group (Snakemake and the
    training it runs) once the IMP ticket's retraining has saved its first epoch's resume point."""
    resume = workdir / RUN / "imp" / "level1" / "resume.pt"
    with open(workdir / "killed.out", "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=workdir, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while not resume.exists():
            assert process.poll() is None, ("Snakemake ended before the retraining saved a resume point",
                                            (workdir / "killed.out").read_text()[-3000:])
            assert time.monotonic() < deadline, "no resume point after 300 s"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (resume.parent / "final.pt").exists(), "the retraining finished before the kill: nothing to recover"


def snapshot(results: Path) -> dict[Path, tuple[int, int]]:
    """Every file under results/ by (inode, mtime): outputs are written under a temporary name and
    renamed into place, so a file written again has another inode."""
    return {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in results.rglob("*") if f.is_file()}


def test_after_sigkill_of_snakemake_unlock_and_rerun_incomplete_resume_and_match_an_uninterrupted_run(
        tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    # A copy of the workflow and package, so that an edit made meanwhile changes no job's code fingerprint.
    snakefile = workflow_copy(tmp_path)
    snakemake(reference, *study(reference, snakefile))

    args = study(killed, snakefile)
    kill_during_retraining(killed, args)
    assert (killed / ".snakemake" / "locks").is_dir()  # what made the same command fail with LockException
    before = snapshot(killed / "results")
    resume = killed / RUN / "imp" / "level1" / "resume.pt"
    del before[resume]
    # What recovery will run: a dry run does not need the lock, and names only the killed job and the table.
    dry = snakemake(killed, *args, "--rerun-incomplete", "-n")
    assert job_counts(dry.stdout) == {"retrain": 1, "aggregate": 1}, dry.stdout[-3000:]

    snakemake(killed, *args, "--unlock")
    snakemake(killed, *args, "--rerun-incomplete")

    after = snapshot(killed / "results")
    assert {f: after.get(f) for f in before} == before  # nothing that had finished was written again
    assert not resume.exists()
    log = (killed / "logs" / "fashion-mnist" / "resnet8-w0.25" / "seed0" / "imp" / "level1" / "retrain.log").read_text()
    assert f"resuming from {RUN}/imp/level1/resume.pt at step " in log, log
    table = {name: pd.read_csv(work / "results" / "tables" / "runs.csv").drop(columns="wall_s")
             for name, work in (("reference", reference), ("killed", killed))}
    pd.testing.assert_frame_equal(table["killed"], table["reference"])
    assert list(table["killed"]["method"]) == ["dense", "imp"]
