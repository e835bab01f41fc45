"""Checkpoints written atomically (elth.files) and loaded safely.

Checkpoints are loaded with `weights_only=True`: a pickle that would run code does not load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from elth.errors import CheckpointError
from elth.files import atomic_path

FORMAT = "elth/1"


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
