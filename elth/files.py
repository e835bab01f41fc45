"""Plain files (text, JSON) written atomically and read with one clear message, without torch:
Snakemake's own process and the report rules use them too.

Every file elth writes goes to a temporary name in the same directory and is renamed into place,
so an interrupted job (preemption, SIGKILL, a full disk) never leaves a file that looks complete.
The temporary file is created with the mode an ordinary `open()` would give it (0666 less the
umask): `tempfile.mkstemp` creates 0600, which would hide a study's results from the rest of a
shared group.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from elth.errors import CheckpointError


def _create_beside(target: Path) -> Path:
    """A new empty file beside `target`, created exclusively with mode 0666 (the kernel applies the umask)."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(target)
    try:
        yield tmp
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
