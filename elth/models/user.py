"""A user's own module families: the structure of an `nn.Module` elth did not write, declared without torch.

A family is declared once (the config's `modules` section, or `elth.api.declare_module`) by its builder
(`package.module:function`), its stages (a unit prefix per stage, `{}` standing for the unit's index: `blocks.{}.`),
the unit indices of every stage that are fixed (never replicated or dropped) and, optionally, globs of the prunable
weights. Its models are named `<family>-<units of stage 1>-<units of stage 2>...` (`tiny-2-3`), so a name says its
depth and the DAG checks every transformation between two of them from the declaration alone, before any job
starts, as it does for elth's own families. The module itself is built and checked against the declaration by
`elth.models.user_module` in the first job that builds it.

The declarations of the process live here. Jobs read them from the `ELTH_MODULES` environment variable (JSON of
the config's `modules` section), which the workflow exports into every job's shell; `declare` replaces them.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elth.errors import ConfigError

ENVIRONMENT = "ELTH_MODULES"
_FAMILY = re.compile(r"[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*")
_BUILDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Family:
    """One declared family: how to build its models and which tensors form each stage's units.

    `builder` is `package.module:function` (importable from `path` or sys.path), or, declared from Python, the
    function itself. It is called as `builder(units, in_channels=..., num_classes=..., in_features=...,
    **options)`, `units` being the units per stage the model's name gives, and returns the module."""

    name: str
    builder: str | Callable[..., Any]
    stages: tuple[str, ...]
    fixed: tuple[int, ...] = (0,)
    prunable: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    def prefix(self, stage: int, unit: int) -> str:
        """The state_dict prefix of unit `unit` of stage `stage`."""
        return self.stages[stage].replace("{}", str(unit))

    def layout(self, units: tuple[int, ...]) -> tuple[tuple[bool, ...], ...]:
        """Per stage, which units are fixed: the structure `elth.models.names.layout` gives the DAG."""
        return tuple(tuple(j in self.fixed for j in range(n)) for n in units)


# None until first needed: then ELTH_MODULES, read lazily so that importing elth.models.names stays cheap.
_DECLARED: dict[str, Family] | None = None


def family(name: str, entry: Mapping[str, Any]) -> Family:
    """The family `entry` (one value of the config's `modules`) declares, or a ConfigError naming the key at fault."""
    where = f"config key modules.{name}"
    if not _FAMILY.fullmatch(name):
        raise ConfigError(f"{where}: a family name is lower-case letters and digits, parts joined by '-', each "
                          f"starting with a letter (e.g. 'tiny' or 'my-net'), so that '{name}-2-3' reads as a model")
    builder = entry.get("builder")
    if not callable(builder) and not (isinstance(builder, str) and _BUILDER.fullmatch(builder)):
        raise ConfigError(f"{where}.builder: {builder!r} is not 'package.module:function' (e.g. 'mynets:build')")
    stages = tuple(entry.get("stages", ()))
    if not stages or any(not isinstance(s, str) or s.count("{}") != 1 or not s.endswith(".") for s in stages):
        raise ConfigError(f"{where}.stages: give each stage's unit prefix with one '{{}}' for the unit's index and "
                          f"ending in '.', e.g. ['blocks.{{}}.'] or ['stage1.{{}}.', 'stage2.{{}}.'], not {list(stages)}")
    fixed = tuple(entry.get("fixed", (0,)))
    if any(not isinstance(j, int) or j < 0 for j in fixed):
        raise ConfigError(f"{where}.fixed: unit indices are integers from 0, not {list(fixed)}")
    prunable = entry.get("prunable")
    return Family(name, builder, stages, fixed, tuple(prunable) if prunable is not None else None,
                  dict(entry.get("options", {})), entry.get("path"))


def declare(modules: Mapping[str, Mapping[str, Any]]) -> None:
    """Make `modules` (the config's `modules` section) the process's declared families, replacing any before."""
    global _DECLARED
    families = [family(name, entry) for name, entry in modules.items()]
    before, _DECLARED = _DECLARED, {}
    try:
        for fam in families:
            add(fam)
    except ConfigError:
        _DECLARED = before
        raise


def add(declared: Family) -> None:
    """Declare one more family (from Python), replacing one of the same name; refuse a name that elth's own
    families (or another declared family) already read."""
    from elth.models import names  # here, not at the top: names imports this module

    families = _families()
    families.pop(declared.name, None)
    builtin = {names.parse(example).family for example in names.EXAMPLES}
    example = f"{declared.name}-" + "-".join(["2"] * len(declared.stages))
    try:
        taken = names.parse(example).family
    except ConfigError:
        taken = None
    if declared.name in builtin or taken is not None:
        raise ConfigError(f"config key modules.{declared.name}: {declared.name!r} is taken"
                          + (f" (a model such as {example} reads as family {taken!r})" if taken else " by elth's own family")
                          + "; choose another family name")
    families[declared.name] = declared


def declared() -> dict[str, Family]:
    """The families declared in this process, by name."""
    return dict(_families())


def _families() -> dict[str, Family]:
    """The declared families, read from ELTH_MODULES the first time: how a job learns the config's `modules`."""
    global _DECLARED
    if _DECLARED is None:
        _DECLARED = {}
        text = os.environ.get(ENVIRONMENT)
        if text:
            try:
                modules = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{ENVIRONMENT} is not the JSON of a `modules` section ({err})") from None
            declare(modules)
    return _DECLARED


def environment(modules: Mapping[str, Mapping[str, Any]]) -> str:
    """The value of ELTH_MODULES that declares `modules` in a job: their JSON, keys sorted."""
    return json.dumps(modules, sort_keys=True, separators=(",", ":"))


def parse(name: str) -> tuple[Family, tuple[int, ...]] | None:
    """The declared family of model `name` and its units per stage, or None when no family declares it."""
    for fam in _families().values():
        if not name.startswith(fam.name + "-"):
            continue
        counts = name[len(fam.name) + 1:].split("-")
        if not all(c.isdigit() for c in counts):
            continue
        units = tuple(int(c) for c in counts)
        if len(units) != len(fam.stages):
            raise ConfigError(f"model {name!r}: family {fam.name!r} has {len(fam.stages)} stages "
                              f"({', '.join(fam.stages)}), so its names give {len(fam.stages)} unit counts, e.g. "
                              f"{fam.name}-{'-'.join(['2'] * len(fam.stages))}")
        short = [c for c in units if c <= max(fam.fixed, default=-1) or c < 1]
        if short:
            raise ConfigError(f"model {name!r}: every stage of family {fam.name!r} needs at least "
                              f"{max(max(fam.fixed, default=-1) + 1, 1)} units (its fixed units are {list(fam.fixed)})")
        return fam, units
    return None


def source_file(fam: Family) -> Path | None:
    """The file the builder's module is read from, found without importing it (nor torch): the workflow
    fingerprints it, so editing the module reruns what builds it. None for a builder given as a function,
    or a module not found (its first job then says so)."""
    if not isinstance(fam.builder, str):
        return None
    search = ([str(Path(fam.path).resolve())] if fam.path else []) + sys.path
    spec = None
    for part in fam.builder.split(":")[0].split("."):
        spec = importlib.machinery.PathFinder.find_spec(part if spec is None else f"{spec.name}.{part}", search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    return Path(spec.origin) if spec is not None and spec.origin else None
