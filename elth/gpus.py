"""Pin a job to one GPU of a workstation, before CUDA starts, by claiming a slot with a file lock.

Snakemake's `--resources gpu=N` bounds how many GPU jobs run at once but does not say which device
each one gets, so every job would land on GPU 0. A job instead claims a free slot (a GPU, or a
share of one when `ELTH_JOBS_PER_GPU` > 1) by taking a non-blocking `flock` on the slot's file in
a lock directory, and sets `CUDA_VISIBLE_DEVICES` to that GPU. The lock lives as long as the
process: the kernel drops it when the process ends, however it ends (a crash, `kill -9`), so no
slot is ever leaked and no clean-up is needed.

A scheduler that allocates devices itself (SLURM sets `CUDA_VISIBLE_DEVICES` for a job that asks
for GPUs) or a user who set `CUDA_VISIBLE_DEVICES` is left alone. The environment variables:

- `ELTH_GPU_LOCKS`: the lock directory (default `/tmp/elth-gpu-locks`), shared by every job of the
  machine, whatever workflow it belongs to.
- `ELTH_JOBS_PER_GPU`: jobs sharing one GPU (default 1); `--resources gpu=` then counts slots,
  GPUs times this.
- `ELTH_GPUS`: the number of GPUs, where the NVIDIA driver's `/proc` entries are not visible.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from elth.errors import ConfigError

LOCKS = "/tmp/elth-gpu-locks"
# The driver lists one directory per GPU here; reading it does not initialise CUDA, which would fix
# the visible devices before this module could choose them.
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class Slot:
    """A claimed share of one GPU, held while `fd` (a locked file) stays open."""

    gpu: int
    index: int
    fd: int

    def release(self) -> None:
        os.close(self.fd)


# The slot this process holds: referenced here so that it lives as long as the process.
_held: list[Slot] = []


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"environment variable {name}={raw!r}: expected an integer >= {minimum}")
    return int(raw)


def gpu_count() -> int:
    """GPUs of this machine: `ELTH_GPUS`, else the driver's entries (0 without an NVIDIA driver)."""
    if os.environ.get("ELTH_GPUS", "") != "":
        return _env_int("ELTH_GPUS", 0, 0)
    try:
        return sum(1 for _ in NVIDIA_GPUS.iterdir())
    except OSError:
        return 0


def claim(gpus: int, jobs_per_gpu: int, lock_dir: str | os.PathLike[str]) -> Slot | None:
    """Lock the first free slot, or return None when every slot is held.

    Slots are tried share by share (slot 0 of every GPU, then slot 1 of every GPU, ...), so jobs
    spread over the GPUs before any GPU takes a second one.
    """
    directory = Path(lock_dir)
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        pass
    else:
        # Every user's jobs share the GPUs, so every user may add lock files (sticky, as /tmp is).
        directory.chmod(0o1777)
    for index in range(jobs_per_gpu):
        for gpu in range(gpus):
            # flock needs no write access: a lock file another user created is opened read-only.
            fd = os.open(directory / f"gpu{gpu}.slot{index}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return Slot(gpu, index, fd)
    return None


def pick_device(name: str = "auto"):
    """The torch device `name` means: `auto` is CUDA when present, else the CPU. (torch is imported
    here, not at the top: `pin_gpu` must run before anything touches CUDA, and callers pin first.)"""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pin_gpu(device: str = "auto", poll_s: float = 5.0) -> str | None:
    """Claim a GPU slot and set `CUDA_VISIBLE_DEVICES` to its GPU; call before anything touches CUDA.

    Returns the GPU chosen, or None where nothing was pinned: a `cpu` or explicit `cuda:n` device,
    `CUDA_VISIBLE_DEVICES` already set, a SLURM job (SLURM allocates its devices), or no GPU. When
    every slot is held (more jobs than `--resources gpu=` allows, or another workflow on the same
    machine), it waits for one to be released, checking every `poll_s` seconds.
    """
    if device not in ("auto", "cuda") or "CUDA_VISIBLE_DEVICES" in os.environ or "SLURM_JOB_ID" in os.environ:
        return None
    gpus = gpu_count()
    if gpus == 0:
        return None
    jobs_per_gpu = _env_int("ELTH_JOBS_PER_GPU", 1, 1)
    lock_dir = os.environ.get("ELTH_GPU_LOCKS") or LOCKS
    slot = claim(gpus, jobs_per_gpu, lock_dir)
    if slot is None:
        print(f"elth: all {gpus * jobs_per_gpu} GPU slots in {lock_dir} are held; waiting for one", file=sys.stderr,
              flush=True)
    while slot is None:
        time.sleep(poll_s)
        slot = claim(gpus, jobs_per_gpu, lock_dir)
    _held.append(slot)
    os.environ["CUDA_VISIBLE_DEVICES"] = str(slot.gpu)
    print(f"elth: GPU {slot.gpu} (slot {slot.index + 1} of {jobs_per_gpu} on it; lock in {lock_dir})",
          file=sys.stderr, flush=True)
    return str(slot.gpu)
