"""Checks of a study config beyond its JSON schema, and the per-model views the DAG needs.

The schema (workflow/schemas/config.schema.yaml) catches typos, unknown keys and out-of-range
numbers. This module catches what a schema cannot: a model name that does not parse, a model
whose family has no recipe, a recipe whose milestones or rewind point do not fit. It does not
import torch, so the DAG validates a config in milliseconds before any job starts.
"""

from __future__ import annotations

import json
from typing import Any

from elth.errors import ConfigError
from elth.models.names import parse
from elth.recipe import Recipe


def check(config: dict[str, Any]) -> None:
    """Raise a ConfigError naming the key at fault, or return quietly."""
    families = set()
    for name in config["models"]:
        try:
            families.add(parse(name).family)
        except ConfigError as err:
            raise ConfigError(f"config key models: {err}") from None
    for family in sorted(families):
        if family not in config["recipes"]:
            users = [m for m in config["models"] if parse(m).family == family]
            raise ConfigError(f"config key recipes: no recipe for family {family!r}, which models {users} need; "
                              f"add recipes: {{{family}: {{epochs: ..., batch_size: ..., lr: ...}}}}")
    for family, recipe in config["recipes"].items():
        try:
            Recipe.from_dict(recipe)
        except ConfigError as err:
            raise ConfigError(f"config key recipes.{family}: {err}") from None


def family(model: str) -> str:
    return parse(model).family


def recipe(config: dict[str, Any], model: str) -> dict[str, Any]:
    """The recipe of `model`'s family, as the dict the training CLI takes."""
    return config["recipes"][family(model)]


def recipe_json(config: dict[str, Any], model: str) -> str:
    return json.dumps(recipe(config, model), sort_keys=True, separators=(",", ":"))


def data_json(config: dict[str, Any]) -> str:
    """The dataset options the training CLI takes (everything but the name)."""
    options = {k: v for k, v in config["dataset"].items() if k != "name"}
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


def unpruned(config: dict[str, Any], model: str) -> list[str]:
    return list(config["pruning"].get("unpruned", {}).get(family(model), []))
