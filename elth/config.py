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
from elth.models.names import parse, width
from elth.recipe import Recipe
from elth.transform.spec import plan_for


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
    ett_jobs(config)


def ett_jobs(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Every configured transformation as (source, target, scheme, spec), each checked against both
    models, so an impossible transfer stops the DAG before any job runs."""
    jobs: dict[tuple[str, str, str], str] = {}
    models = config["models"]
    for n, entry in enumerate(config.get("ett", [])):
        where = f"config key ett[{n}] (scheme {entry['scheme']!r})"
        if entry["pairs"] == "all":
            pairs = [(a, b) for a in models for b in models
                     if a != b and parse(a).family == parse(b).family and width(a) == width(b)]
        else:
            pairs = [tuple(p.split("->")) for p in entry["pairs"]]
        for source, target in pairs:
            for model in (source, target):
                if model not in models:
                    raise ConfigError(f"{where}: {model} is not in `models`; add it there so its IMP tickets and "
                                      "recipe exist")
            if (source, target, entry["scheme"]) in jobs:
                raise ConfigError(f"{where}: scheme {entry['scheme']!r} is given twice for {source}->{target}")
            try:
                plan_for(entry["spec"], source, target)
            except ConfigError as err:
                raise ConfigError(f"{where}, pair {source}->{target}: {err}") from None
            jobs[(source, target, entry["scheme"])] = entry["spec"]
    return [(s, t, scheme, spec) for (s, t, scheme), spec in jobs.items()]


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
