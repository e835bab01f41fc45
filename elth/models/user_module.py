"""Build a model of a family of the user's own module (elth/models/user.py) and check it against its declaration.

The DAG checks transformations from the declaration alone; this is where the module meets it, in the first job
that builds the model (or the first API call): the builder must import, return an `nn.Module`, and make exactly
the units the name asks for under each declared stage prefix, and every prunable glob must match a parameter.
Each failure is one ConfigError naming the model, the declaration's key and the fix. The built module carries the
declared `structure` (what Elastic Ticket Transformations map by) and, with `prunable` declared, the names of its
prunable weights (`prunable_weights`, which `elth.models.registry.prunable_names` reads).

The module's own initialisation is kept: with a seed, the builder runs on a torch RNG seeded with it alone, so
the model is a function of its seed as elth's own models are.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from elth.errors import ConfigError
from elth.models.structure import ElasticStructure, Stage, Unit
from elth.models.user import Family


def builder_of(family: Family) -> Callable[..., Any]:
    """The declared builder, imported (from `path`, when declared, before sys.path)."""
    if callable(family.builder):
        return family.builder
    module_name, function = family.builder.split(":")
    where = f"config key modules.{family.name}.builder ({family.builder})"
    if family.path is not None:
        path = str(Path(family.path).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ConfigError(f"{where}: cannot import {module_name} ({err}); give its directory as "
                          f"modules.{family.name}.path or put it on PYTHONPATH") from None
    if not callable(getattr(module, function, None)):
        raise ConfigError(f"{where}: {module_name} has no function {function!r}")
    return getattr(module, function)


def build(family: Family, name: str, units: tuple[int, ...], in_channels: int, num_classes: int,
          in_features: int | None, seed: int | None) -> nn.Module:
    """Model `name` of `family`, with `units` units per stage, checked against the declaration."""
    make = builder_of(family)
    kwargs = {"in_channels": in_channels, "num_classes": num_classes, "in_features": in_features, **family.options}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = make(units, **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {name!r}: the builder of modules.{family.name} returned a {type(model).__name__}, "
                          "not a torch.nn.Module")
    keys = list(model.state_dict())
    for s, template in enumerate(family.stages):
        found = _unit_indices(template, keys)
        if found != set(range(units[s])):
            made = f"units {sorted(found)}" if found else "no tensor"
            raise ConfigError(f"model {name!r}: stage {template!r} of modules.{family.name}.stages has {made} in the "
                              f"built module, the name asks for {units[s]} (0 to {units[s] - 1}); the builder must make "
                              "one unit per count in the name, each under its prefix")
    structure = ElasticStructure(family.name, tuple(
        Stage(template.split("{}")[0].rstrip(".") or template, tuple(Unit(family.prefix(s, j), fixed=j in family.fixed) for j in range(units[s])))
        for s, template in enumerate(family.stages)))
    if isinstance(getattr(type(model), "structure", None), property):
        raise ConfigError(f"model {name!r}: {type(model).__name__} defines its own `structure`; a declared family "
                          f"takes it from modules.{family.name}.stages and .fixed, so rename the property")
    model.structure = structure
    if family.prunable is not None:
        model.prunable_weights = _prunable(family, name, model)
    model.name = name
    return model


def _unit_indices(template: str, keys: list[str]) -> set[int]:
    """The unit indices under which `template` (`blocks.{}.`) has at least one key."""
    before, after = template.split("{}")
    pattern = re.compile(re.escape(before) + r"(\d+)" + re.escape(after))
    return {int(m[1]) for key in keys if (m := pattern.match(key))}


def _prunable(family: Family, name: str, model: nn.Module) -> list[str]:
    """The parameters the declared globs match, in the module's order; a glob that matches none is refused."""
    params = [n for n, _ in model.named_parameters()]
    for glob in family.prunable or ():
        if not fnmatch.filter(params, glob):
            raise ConfigError(f"model {name!r}: modules.{family.name}.prunable glob {glob!r} matches no parameter; "
                              f"its parameters are e.g. {params[:3]}")
    return [n for n in params if any(fnmatch.fnmatch(n, g) for g in family.prunable or ())]
