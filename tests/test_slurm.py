"""SLURM: job sizes as the DAG declares them, and a tiny study through workflow/profiles/slurm on a
real one-node cluster (munged, slurmctld and slurmd started in a temporary directory)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

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
    jobs = {}
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n)+)", run.stdout, re.M):
        model = re.search(r"model=([^,\n]+)", body)
        resources = re.search(r"resources: (.*)", body)
        jobs[rule, model[1] if model else ""] = dict(item.split("=", 1) for item in resources[1].split(", "))
    return jobs


def test_job_sizes_follow_kind_family_and_model_and_the_partition_comes_from_the_environment(
        fashion_root: Path, tmp_path: Path) -> None:
    config = tiny_config(fashion_root, tmp_path, threads=1)
    env = {**os.environ, "ELTH_SLURM_PARTITION": "gpu-long", "ELTH_SLURM_ACCOUNT": "lab"}
    jobs = dry_run_resources(tmp_path, config, env, f"{RUN}/imp/level1/ticket.pt",
                             RUN.replace("resnet8", "resnet14") + "/dense/summary.json")
    size = {key: {k: job[k] for k in ("runtime", "mem_mb", "slurm_partition", "slurm_account")}
            for key, job in jobs.items()}
    assert size == {
        ("prepare_data", ""): {"runtime": "5", "mem_mb": "500", "slurm_partition": "gpu-long", "slurm_account": "lab"},
        ("dense", "resnet8-w0.25"): {"runtime": "8", "mem_mb": "700", "slurm_partition": "gpu-long",
                                     "slurm_account": "lab"},
        ("dense", "resnet14-w0.25"): {"runtime": "7", "mem_mb": "700", "slurm_partition": "gpu-long",
                                      "slurm_account": "lab"},
        ("imp_ticket", "resnet8-w0.25"): {"runtime": "6", "mem_mb": "650", "slurm_partition": "gpu-long",
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


def test_a_tiny_study_runs_through_the_slurm_profile_each_job_a_sized_slurm_job(
        cluster: Cluster, fashion_root: Path, tmp_path: Path) -> None:
    threads = min(2, os.cpu_count() or 1)
    config = tiny_config(fashion_root, tmp_path, threads)
    # Two jobs, the data check and one dense run: each SLURM job starts Snakemake twice (the batch
    # job, then its srun step), and the executor's polling adds up to 10 s per job.
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--profile", str(ROOT / "workflow" / "profiles" / "slurm"), "--configfile", str(config),
         "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
         "--latency-wait", "5", f"{RUN}/dense/summary.json"],
        capture_output=True, text=True, cwd=ROOT, env=cluster.env, timeout=300)
    assert run.returncode == 0, ((run.stdout + run.stderr)[-4000:], tail(cluster.logs / "slurmctld.log"))
    print(f"two SLURM jobs in {time.monotonic() - started:.0f} s")

    run_dir = tmp_path / RUN
    for f in ["rewind.pt", "final.pt", "metrics.csv", "summary.json"]:
        assert (run_dir / "dense" / f).is_file(), f
    assert (tmp_path / "results" / "fashion-mnist" / "dataset.json").is_file()

    # Each job's log opens with its SLURM job id; SLURM ran it in the partition the environment
    # named, with the runtime, memory and CPUs of its kind and model.
    logs = tmp_path / "logs" / "fashion-mnist"
    expected = {"prepare_data.log": ("00:05:00", "500M", "1"),
                "resnet8-w0.25/seed0/dense.log": ("00:08:00", "700M", str(threads))}
    ids = set()
    for log, (limit, memory, cpus) in expected.items():
        first = (logs / log).read_text().splitlines()[0]
        job_id = re.fullmatch(rf"slurm job (\d+) on {NODE}", first)
        assert job_id, (log, first)
        ids.add(job_id[1])
        job = scontrol_job(job_id[1], cluster.env)
        assert (job["JobState"], job["Partition"]) == ("COMPLETED", PARTITION), (log, job)
        assert (job["TimeLimit"], job["MinMemoryNode"], job["NumCPUs"]) == (limit, memory, cpus), (log, job)
    assert len(ids) == 2
