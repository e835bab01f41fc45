"""Errors that carry a message for a person: what went wrong, where, and how to fix it.

Every command-line entry point catches `ElthError` and prints its message alone, without a
traceback, so that a config typo or a missing dataset reads as one clear paragraph in the rule log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import TypeVar


class ElthError(Exception):
    """A problem with the user's input (config, file, data) rather than a bug in elth."""


class ConfigError(ElthError):
    """A configuration value that cannot work: an unknown model, a bad duration, an impossible recipe."""


class DatasetMissing(ElthError):
    """A dataset whose files are not where elth looked."""


class CheckpointError(ElthError):
    """A checkpoint, ticket or mask file that is corrupt, unsafe, or belongs to another run."""


F = TypeVar("F", bound=Callable[..., object])


def cli_errors(main: F) -> F:
    """Turn an `ElthError` escaping a CLI `main` into its message on stderr and exit status 2."""

    @wraps(main)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return main(*args, **kwargs)
        except ElthError as err:
            print(f"elth: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
