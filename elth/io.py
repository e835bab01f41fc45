"""Atomic file output and safe checkpoint loading.

Every file elth writes goes to a temporary name in the same directory and is renamed into place,
so an interrupted job (preemption, SIGKILL, a full disk) never leaves a file that looks complete.
Checkpoints are loaded with `weights_only=True`: a pickle that would run code does not load.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from elth.errors import CheckpointError

FORMAT = "elth/1"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); delete it and rerun the rule that makes it") from None


def save(path: str | os.PathLike[str], kind: str, payload: dict[str, Any]) -> None:
    """Save a dict of tensors and plain values as an elth file of the given kind, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "kind": kind, **payload}, tmp)


def load(path: str | os.PathLike[str], kind: str, mmap: bool = False) -> dict[str, Any]:
    """Load an elth file of `kind` onto the CPU, refusing anything that is not plainly data; with
    `mmap`, its tensors are memory-mapped rather than read whole."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises several types for truncated, corrupt or unsafe files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: cannot be loaded as a {kind} ({first}). It is corrupt, truncated, or holds "
            "objects other than tensors, which elth refuses to unpickle. Delete it and rerun the rule "
            "that makes it (snakemake --rerun-incomplete)."
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an elth file (expected format {FORMAT!r})")
    if obj.get("kind") != kind:
        raise CheckpointError(f"{path}: is a {obj.get('kind')!r}, expected a {kind!r}")
    return obj
