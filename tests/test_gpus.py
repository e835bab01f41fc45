"""GPU pinning by file locks, on the CPU: a fake GPU count, real locks, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from elth import gpus
from elth.errors import ConfigError

from conftest import ROOT

# A job that pins itself, prints its GPU, and holds the slot until its stdin closes.
JOB = "import sys; from elth.gpus import pin_gpu; print(pin_gpu(), flush=True); sys.stdin.read()"


@pytest.fixture
def workstation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two fake GPUs, a private lock directory, no device chosen by anyone, and no slot held."""
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "ELTH_JOBS_PER_GPU"):
        monkeypatch.setenv(name, "")  # recorded first, so that what pin_gpu sets is undone too
        monkeypatch.delenv(name)
    monkeypatch.setenv("ELTH_GPUS", "2")
    monkeypatch.setenv("ELTH_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setattr(gpus, "_held", [])
    yield tmp_path / "locks"
    for slot in gpus._held:
        slot.release()


def test_lock_holders_get_different_gpus_then_share_them_and_a_released_slot_is_reused(tmp_path: Path) -> None:
    held = [gpus.claim(2, 2, tmp_path) for _ in range(4)]
    assert [(s.gpu, s.index) for s in held] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert gpus.claim(2, 2, tmp_path) is None
    held[1].release()
    held[1] = gpus.claim(2, 2, tmp_path)
    assert (held[1].gpu, held[1].index) == (1, 0)
    for slot in held:
        slot.release()


def test_two_processes_are_pinned_to_different_gpus_and_an_ended_ones_gpu_is_reused(workstation: Path) -> None:
    def start() -> tuple[subprocess.Popen, str]:
        job = subprocess.Popen([sys.executable, "-c", JOB], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
        return job, job.stdout.readline().strip()

    first, gpu_a = start()
    second, gpu_b = start()
    try:
        assert {gpu_a, gpu_b} == {"0", "1"}
        first.communicate("")  # the first job ends: the kernel drops its lock
        third, gpu_c = start()
        third.communicate("")
        assert gpu_c == gpu_a
    finally:
        for job in (first, second):
            if job.poll() is None:
                job.communicate("")


def test_pinning_sets_cuda_visible_devices_and_holds_the_slot(workstation: Path) -> None:
    assert gpus.pin_gpu() == "0"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    other = gpus.claim(2, 1, workstation)
    assert other.gpu == 1 and gpus.claim(2, 1, workstation) is None
    other.release()


def test_a_job_waits_while_every_slot_is_held_and_takes_the_first_released(workstation: Path) -> None:
    held = [gpus.claim(2, 1, workstation) for _ in range(2)]
    chosen: list[str | None] = []
    waiting = threading.Thread(target=lambda: chosen.append(gpus.pin_gpu(poll_s=0.01)))
    waiting.start()
    time.sleep(0.2)
    assert waiting.is_alive() and "CUDA_VISIBLE_DEVICES" not in os.environ
    held[1].release()
    waiting.join(timeout=10)
    assert chosen == ["1"]
    held[0].release()


@pytest.mark.parametrize("device,env", [("auto", {"CUDA_VISIBLE_DEVICES": "3"}), ("auto", {"SLURM_JOB_ID": "7"}),
                                        ("cpu", {}), ("cuda:1", {}), ("auto", {"ELTH_GPUS": "0"})])
def test_a_device_chosen_elsewhere_or_no_gpu_is_left_alone(workstation: Path, monkeypatch: pytest.MonkeyPatch,
                                                          device: str, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert gpus.pin_gpu(device) is None
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == env.get("CUDA_VISIBLE_DEVICES")
    assert not workstation.exists()  # no slot was claimed


def test_a_bad_jobs_per_gpu_names_the_variable(workstation: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELTH_JOBS_PER_GPU", "0")
    with pytest.raises(ConfigError, match="ELTH_JOBS_PER_GPU"):
        gpus.pin_gpu()
