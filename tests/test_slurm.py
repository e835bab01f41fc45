"""SLURM: job sizes as the DAG declares them, and a tiny study through workflow/profiles/slurm on a
real one-node cluster (munged, slurmctld and slurmd started in a temporary directory)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, write_mnist_like
from elth.checkpoint import Checkpoint

TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
PARTITION = "elth"  # not the cluster's default: a job reaches it only through ELTH_SLURM_PARTITION
NODE = "elth-node"
RUN = "results/fashion-mnist/resnet8-w0.25/seed0"


def tiny_config(data_root: Path, workdir: Path, threads: int) -> Path:
    """Two tiny models, one IMP level, on the CPU; each kind of job sized differently, and one
    family's and one model's sizes overridden, so each size is recognisable where it is used."""
    config = {
        "experiment": "slurm",
        "dataset": {"name": "fashion-mnist", "root": str(data_root), "augment": []},
        "seeds": [0],
        "models": ["resnet8-w0.25", "resnet14-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 1, "fraction": 0.5},
        "resources": {
            "threads": threads,
            "device": "cpu",
            "sizes": {
                "train": {"runtime": 7, "mem_mb": 700},
                "ticket": {"runtime": 6, "mem_mb": 600},
                "other": {"runtime": 5, "mem_mb": 500},
                "families": {"cifar-resnet": {"ticket": {"mem_mb": 650}}},
                "models": {"resnet8-w0.25": {"train": {"runtime": 8}}},
            },
        },
    }
    path = workdir / "slurm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def dry_run_resources(workdir: Path, config: Path, env: dict[str, str], *targets: str) -> dict[tuple[str, str], dict]:
    """Each job's resources as `snakemake -n` prints them, by (rule, model)."""
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          "--configfile", str(config), "-n", *targets],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-2000:]
    assert "localrules directive specifies rules that are not present" not in run.stdout, run.stdout[:2000]
    jobs = {}
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n)+)", run.stdout, re.M):
        model = re.search(r"model=([^,\n]+)", body)
        resources = re.search(r"resources: (.*)", body)
        jobs[rule, model[1] if model else ""] = dict(item.split("=", 1) for item in resources[1].split(", "))
    return jobs


def test_job_sizes_follow_kind_family_and_model_and_the_partition_comes_from_the_environment(
        fashion_root: Path, tmp_path: Path) -> None:
    config = tiny_config(fashion_root, tmp_path, threads=1)
    study = yaml.safe_load(config.read_text())
    study["ett"] = [{"scheme": "default", "spec": "default", "pairs": ["resnet14-w0.25->resnet8-w0.25"]}]
    config.write_text(yaml.safe_dump(study))
    env = {**os.environ, "ELTH_SLURM_PARTITION": "gpu-long", "ELTH_SLURM_ACCOUNT": "lab"}
    jobs = dry_run_resources(tmp_path, config, env, f"{RUN}/ett/from-resnet14-w0.25/default/level1/ticket.pt",
                             f"{RUN}/dense/summary.json")
    size = {key: {k: job[k] for k in ("runtime", "mem_mb", "slurm_partition", "slurm_account")}
            for key, job in jobs.items()}
    assert size == {
        ("prepare_data", ""): {"runtime": "5", "mem_mb": "500", "slurm_partition": "gpu-long", "slurm_account": "lab"},
        ("dense", "resnet8-w0.25"): {"runtime": "8", "mem_mb": "700", "slurm_partition": "gpu-long",
                                     "slurm_account": "lab"},
        ("dense", "resnet14-w0.25"): {"runtime": "7", "mem_mb": "700", "slurm_partition": "gpu-long",
                                      "slurm_account": "lab"},
        ("ett", "resnet8-w0.25"): {"runtime": "6", "mem_mb": "650", "slurm_partition": "gpu-long",
                                   "slurm_account": "lab"},
    }
    assert jobs["dense", "resnet8-w0.25"]["gpu"] == "0"  # device: cpu asks for no GPU


def test_a_size_for_a_model_outside_the_study_stops_the_dag_naming_it(fashion_root: Path, tmp_path: Path) -> None:
    config = tiny_config(fashion_root, tmp_path, threads=1)
    study = yaml.safe_load(config.read_text())
    study["resources"]["sizes"]["models"] = {"resnet9": {"train": {"runtime": 1}}}
    config.write_text(yaml.safe_dump(study))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                          "--configfile", str(config), "-n"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0 and "resources.sizes.models: resnet9 is not in `models`" in run.stdout + run.stderr


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]  # what a client (sbatch, snakemake) runs with to reach this cluster
    logs: Path


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def slurm_conf(base: Path, cpus: int) -> str:
    ctld_port, slurmd_port = free_ports(2)
    memory_mb = min(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20, 4000)
    return f"""\
ClusterName=elth-test
SlurmctldHost={socket.gethostname().split(".")[0]}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={base}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=300
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=NO MaxTime=INFINITE State=UP
"""


def stop(daemon: subprocess.Popen) -> None:
    daemon.terminate()
    try:
        daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-1500:] if path.exists() else f"({path.name}: none)"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node cluster of this machine's CPUs, with its own munge key, config, state and logs;
    every daemon it starts is stopped, by its PID, when the module's tests are done."""
    if os.geteuid() != 0:
        pytest.skip("SLURM test skipped: slurmd runs jobs only as root (run the tests as root, as CI does)")
    missing = [name for name in TOOLS if shutil.which(name) is None]
    if missing:
        pytest.skip(f"SLURM test skipped: {', '.join(missing)} not installed (setup.sh installs Debian's "
                    "slurm-wlm and munge when run as root)")
    base = tmp_path_factory.mktemp("slurm")
    for name in ("munge", "state", "spool", "log", "bin"):
        (base / name).mkdir(mode=0o700)
    conf = base / "slurm.conf"
    conf.write_text(slurm_conf(base, os.cpu_count() or 1))
    # The jobstep executor drops SLURM_CONF before its nested srun; this srun puts it back, so
    # nothing of the machine's own /etc/slurm is touched.
    srun = base / "bin" / "srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {shutil.which("srun")} "$@"\n')
    srun.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "ELTH_SLURM_"))}
    env.update(SLURM_CONF=str(conf), PATH=f"{base / 'bin'}{os.pathsep}{env['PATH']}", ELTH_SLURM_PARTITION=PARTITION)
    logs = base / "log"
    daemons: list[subprocess.Popen] = []

    def start(*argv: str) -> None:
        """A daemon in the foreground, so that its PID is the one to stop."""
        with open(logs / f"{argv[0]}.out", "w") as out:
            daemons.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=out))

    try:
        subprocess.run(["mungekey", "--create", "--keyfile", str(base / "munge" / "munge.key")], check=True,
                       capture_output=True)
        start("munged", "--foreground", "--force", f"--socket={base}/munge/munge.socket",
              f"--key-file={base}/munge/munge.key", f"--pid-file={base}/munge/munged.pid",
              f"--seed-file={base}/munge/munged.seed", f"--log-file={logs}/munged.log")
        for _ in range(50):
            if (base / "munge" / "munge.socket").exists():
                break
            time.sleep(0.1)
        start("slurmctld", "-D", "-c")
        start("slurmd", "-D", "-N", NODE)
        state = ""
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.skip(f"SLURM test skipped: the one-node cluster did not come up (node state {state!r}); "
                        + " | ".join(tail(logs / f) for f in ("munged.out", "slurmctld.log", "slurmd.log")))
        yield Cluster(env, logs)
    finally:
        if len(daemons) == 3:  # a job left by a failed test must not outlive its cluster
            subprocess.run(["scancel", "--partition", PARTITION], env=env, capture_output=True)
        for daemon in reversed(daemons):
            stop(daemon)


def scontrol_job(job_id: str, env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def run_jobs(output: str, env: dict[str, str]) -> list[dict[str, str]]:
    """The SLURM jobs of one Snakemake run, in submission order, each with its `Rule`: the executor
    names every job after the run's id, which Snakemake's output gives, and notes the rule in its
    comment (`rule_<rule>` or `rule_<rule>_wildcards_<values>`). Ended jobs stay listed for MinJobAge."""
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    assert run_id, output[-3000:]
    listing = subprocess.run(["scontrol", "-o", "show", "job"], env=env, capture_output=True, text=True).stdout
    jobs = [dict(item.split("=", 1) for item in line.split() if "=" in item) for line in listing.splitlines()]
    jobs = sorted((job for job in jobs if job.get("JobName") == run_id[1]), key=lambda job: int(job["JobId"]))
    for job in jobs:
        job["Rule"] = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
    return jobs


def run_through_profile(cluster: Cluster, workdir: Path, config: Path, *targets: str) -> subprocess.CompletedProcess:
    """Snakemake through workflow/profiles/slurm, checking job states every second instead of the
    profile's every 20 s after a submission."""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
         "--profile", str(ROOT / "workflow" / "profiles" / "slurm"), f"--configfile={config}",
         "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
         "--latency-wait", "5", *targets],
        capture_output=True, text=True, cwd=ROOT, env=cluster.env, timeout=420)
    assert run.returncode == 0, ((run.stdout + run.stderr)[-4000:], tail(cluster.logs / "slurmctld.log"))
    return run


# The logs of the rules the Snakefile's `localrules` names that a study without ETTs, linear mode
# connectivity or RigL runs (lmc_aggregate, lmc_figure, lmc_table and flops need training jobs of
# their own; the dry run above checks that every name in `localrules` is a rule).
LOCAL_LOGS = ["aggregate.log", "fig3.log", "table2.log", "table3.log", "claims.log", "benchmarks.log", "report.log"]


def test_a_tiny_study_runs_through_the_slurm_profile_each_job_a_sized_slurm_job_the_report_locally(
        cluster: Cluster, fashion_root: Path, tmp_path: Path) -> None:
    threads = min(2, os.cpu_count() or 1)
    config = tiny_config(fashion_root, tmp_path, threads)
    # One model: three SLURM jobs (data check, dense run pruning the IMP ticket, its retraining), each starting
    # Snakemake twice (the batch job, then its srun step), and the executor's polling adds up to
    # 10 s per job; then the tables, figure and report, on this host.
    study = yaml.safe_load(config.read_text())
    study["models"] = ["resnet8-w0.25"]
    config.write_text(yaml.safe_dump(study))
    started = time.monotonic()
    run = run_through_profile(cluster, tmp_path, config)
    print(f"a study of three SLURM jobs and {len(LOCAL_LOGS)} local ones in {time.monotonic() - started:.0f} s")

    run_dir = tmp_path / RUN
    for f in ["rewind.pt", "final.pt", "metrics.csv", "summary.json"]:
        assert (run_dir / "dense" / f).is_file(), f
    assert (tmp_path / "results" / "fashion-mnist" / "dataset.json").is_file()
    assert (tmp_path / "results" / "report.md").is_file()

    # Each job's log opens with its SLURM job id; SLURM ran it in the partition the environment
    # named, with the runtime, memory and CPUs of its kind, family and model.
    logs = tmp_path / "logs" / "fashion-mnist"
    expected = {"prepare_data.log": ("00:05:00", "500M", "1"),
                "resnet8-w0.25/seed0/dense.log": ("00:08:00", "700M", str(threads)),
                "resnet8-w0.25/seed0/imp/level1/retrain.log": ("00:08:00", "700M", str(threads))}
    ids = set()
    for log, (limit, memory, cpus) in expected.items():
        first = (logs / log).read_text().splitlines()[0]
        job_id = re.fullmatch(rf"slurm job (\d+) on {NODE}", first)
        assert job_id, (log, first)
        ids.add(job_id[1])
        job = scontrol_job(job_id[1], cluster.env)
        assert (job["JobState"], job["Partition"]) == ("COMPLETED", PARTITION), (log, job)
        assert (job["TimeLimit"], job["MinMemoryNode"], job["NumCPUs"]) == (limit, memory, cpus), (log, job)
    assert len(ids) == 3

    # The local rules ran in Snakemake's own process tree, outside any SLURM job: their logs carry
    # no job id, and the run submitted nothing else.
    for log in LOCAL_LOGS:
        assert "slurm job" not in (tmp_path / "logs" / log).read_text(), log
    assert sorted(job["Rule"] for job in run_jobs(run.stdout + run.stderr, cluster.env)) == [
        "dense", "prepare_data", "retrain"]


# The retried training job: a model whose epoch of 4,096 images takes seconds on one thread.
RETRIED = "results/fashion-mnist/resnet8/seed0/dense"
# Seconds of training the job is given, against SLURM's 1-minute limit, which slurmctld enforces
# when it next checks, up to 30 s later: the first attempt is always killed, and the second (2
# minutes) has time to finish from the last epoch saved, unless other work slows the machine.
TRAINING_S = 100


def epochs_for(data_root: Path, recipe: dict, workdir: Path) -> int:
    """How many epochs of `recipe` last about TRAINING_S seconds here, from one epoch timed by the
    training CLI, so the job outlives its first time limit on a fast machine as on a slow one."""
    probe = workdir / "probe"
    subprocess.run([sys.executable, "-m", "elth.train", "--model", "resnet8", "--dataset", "fashion-mnist",
                    "--seed", "0", "--recipe", json.dumps(recipe | {"epochs": 1}), "--threads", "1",
                    "--data", json.dumps({"root": str(data_root), "augment": []}), "--out", str(probe)],
                   check=True, capture_output=True, cwd=ROOT)
    return max(4, math.ceil(TRAINING_S / json.loads((probe / "summary.json").read_text())["wall_s"]))


def test_a_training_job_killed_at_its_time_limit_is_resubmitted_with_more_time_and_resumes_to_the_same_weights(
        cluster: Cluster, tmp_path: Path) -> None:
    """About three to four minutes: the first attempt's minute and up to 30 s more, the second's
    minute or so, and the executor's checks, which back off by 10 s each while a job runs."""
    data_root = tmp_path / "data"
    write_mnist_like(data_root / "FashionMNIST" / "raw", n_train=4096)
    recipe = {"batch_size": 64, "lr": 0.05, "rewind": "1it"}
    recipe["epochs"] = epochs_for(data_root, recipe, tmp_path)
    config = tmp_path / "retry.yaml"
    config.write_text(yaml.safe_dump({
        "experiment": "retry", "dataset": {"name": "fashion-mnist", "root": str(data_root), "augment": []},
        "seeds": [0], "models": ["resnet8"], "recipes": {"cifar-resnet": recipe}, "pruning": {"levels": 1},
        "resources": {"threads": 1, "device": "cpu",
                      "sizes": {"train": {"runtime": 1, "mem_mb": 700}, "other": {"mem_mb": 500}}}}))
    local = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), f"--configfile={config}", "--cores", "1"]
    # The data check here, so that the cluster runs the training job alone (the test above submits one).
    subprocess.run([*local, "-d", str(tmp_path), "results/fashion-mnist/dataset.json"], check=True,
                   capture_output=True, cwd=ROOT)
    # The uninterrupted run, on this host beside the cluster's (one thread each).
    straight = tmp_path / "straight"
    with open(tmp_path / "straight.out", "w") as out:
        reference = subprocess.Popen([*local, "-d", str(straight), f"{RETRIED}/summary.json"], stdout=out,
                                     stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    try:
        started = time.monotonic()
        run = run_through_profile(cluster, tmp_path, config, f"{RETRIED}/summary.json")
        seconds = time.monotonic() - started
        assert reference.wait(timeout=300) == 0, (tmp_path / "straight.out").read_text()[-3000:]
    finally:
        if reference.poll() is None:
            os.killpg(reference.pid, signal.SIGKILL)
            reference.wait()

    # SLURM killed each attempt but the last at its limit; each was resubmitted with one more minute.
    dense = run_jobs(run.stdout + run.stderr, cluster.env)
    print(f"{recipe['epochs']} epochs in {len(dense)} attempts through SLURM in {seconds:.0f} s")
    assert len(dense) >= 2 and {job["Rule"] for job in dense} == {"dense"}, dense
    assert [(job["JobState"], job["TimeLimit"]) for job in dense] == [
        ("TIMEOUT", f"00:0{attempt}:00") for attempt in range(1, len(dense))] + [("COMPLETED", f"00:0{len(dense)}:00")]
    # The last attempt went on from the epoch the one before it had saved, to the weights and the
    # metrics of a run that was never stopped.
    log = (tmp_path / "logs" / "fashion-mnist" / "resnet8" / "seed0" / "dense.log").read_text()
    assert re.search(rf"^resuming from {RETRIED}/resume.pt at step [1-9]\d* ", log, re.M), log
    assert not (tmp_path / RETRIED / "resume.pt").exists()
    for name in ("final.pt", "rewind.pt"):
        a, b = (Checkpoint.load(work / RETRIED / name).state for work in (straight, tmp_path))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    metrics = [pd.read_csv(work / RETRIED / "metrics.csv").drop(columns=["seconds", "train_seconds"])
               for work in (straight, tmp_path)]
    pd.testing.assert_frame_equal(*metrics)
