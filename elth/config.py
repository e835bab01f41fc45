"""Checks of a study config beyond its JSON schema, and the per-model views the DAG needs.

The schema (workflow/schemas/config.schema.yaml) catches typos, unknown keys and out-of-range
numbers. This module catches what a schema cannot: a model name that does not parse, a model
whose family has no recipe, a recipe whose milestones or rewind point do not fit. It does not
import torch, so the DAG validates a config in milliseconds before any job starts.
"""

from __future__ import annotations

import json
from typing import Any

from elth.datasets import info, normalization
from elth.errors import ConfigError
from elth.models import user
from elth.models.names import check_image_size, check_pair, parse, width
from elth.recipe import Recipe
from elth.transform.spec import plan_for


# `engine.tickets_per_job: auto` on the CPU: stack this many tickets when every model's widest layer has at most
# AUTO_STACK_CHANNELS channels. bench/train_throughput.py on this project's 2-core CPU (README, Benchmarks):
# quarter-width ResNet-20 (16 channels at most), K = 4 stacked trains 1.6x the images per second of two one-thread
# processes (4,279 against 2,634); at half width (32) it does not pay (K = 4: 984 against 1,025; K = 2, measured
# 2026-12-03: 1,038 against 1,073); at full width (64) it is slower (636 against 834). A narrow network leaves
# the CPU's matrix units idle and stacking widens its convolutions; a wider one is compute-bound already. Nothing is measured on a GPU yet, so there (`resources.device`
# other than cpu) `auto` is 1, as for every family but the CIFAR ResNets; so is the demo's, at half width.
AUTO_STACK = 4
AUTO_STACK_CHANNELS = 16


def tickets_per_job(config: dict[str, Any]) -> int:
    """engine.tickets_per_job, `auto` resolved by the rule above from the models' names alone (no torch)."""
    value = config.get("engine", {}).get("tickets_per_job", 1)
    if value != "auto":
        return value
    if config.get("resources", {}).get("device") != "cpu":
        return 1
    narrow = all(spec.family == "cifar-resnet" and 64 * spec.args[1] <= AUTO_STACK_CHANNELS
                 for spec in map(parse, config["models"]))
    return AUTO_STACK if narrow else 1


def check(config: dict[str, Any]) -> None:
    """Raise a ConfigError naming the key at fault, or return quietly. Declares the config's `modules` (families
    of the user's own module) for this process first, so that their model names read."""
    user.declare(config.get("modules", {}))
    for name, entry in config.get("modules", {}).items():
        try:
            Recipe.from_dict(entry["recipe"])
        except ConfigError as err:
            raise ConfigError(f"config key modules.{name}.recipe: {err}") from None
    families = set()
    for name in config["models"]:
        try:
            families.add(parse(name).family)
            check_image_size(name, info(config["dataset"]["name"]).image_size)
        except ConfigError as err:
            raise ConfigError(f"config key models: {err}") from None
    stacked = tickets_per_job(config) > 1
    if "vit" in families and stacked:
        raise ConfigError("config key engine.tickets_per_job: ViT models cannot be stacked: elth/stack.py puts K copies "
                          "side by side in the channels, and a ViT's LayerNorm and attention would mix them; set "
                          "engine.tickets_per_job: 1")
    own = sorted(families & set(config.get("modules", {})))
    if own and stacked:
        raise ConfigError(f"config key engine.tickets_per_job: models of {own[0]!r} (modules) cannot be stacked: "
                          "stacking rewrites elth's own layers, and a user's module may mix the copies in its "
                          "forward; set engine.tickets_per_job: 1")
    for family in sorted(families - set(own)):
        if family not in config["recipes"]:
            users = [m for m in config["models"] if parse(m).family == family]
            raise ConfigError(f"config key recipes: no recipe for family {family!r}, which models {users} need; "
                              f"add recipes: {{{family}: {{epochs: ..., batch_size: ..., lr: ...}}}}")
    for family, recipe in config["recipes"].items():
        try:
            Recipe.from_dict(recipe)
        except ConfigError as err:
            raise ConfigError(f"config key recipes.{family}: {err}") from None
    for key, section in (("dataset", config["dataset"]), ("transfer.from", config.get("transfer", {}).get("from"))):
        if section is not None:
            try:
                normalization(info(section["name"]), section.get("normalize", "dataset"))
            except ConfigError as err:
                raise ConfigError(f"config key {key}.normalize: {err}") from None
    ett_jobs(config)
    compared_levels(config)
    lmc_tickets(config)
    transfer_jobs(config)


def ett_jobs(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Every configured transformation as (source, target, scheme, spec), each checked against both
    models, so an impossible transfer stops the DAG before any job runs."""
    jobs: dict[tuple[str, str, str], str] = {}
    models = config["models"]
    for n, entry in enumerate(config.get("ett", [])):
        where = f"config key ett[{n}] (scheme {entry['scheme']!r})"
        if entry["pairs"] == "all":
            pairs = [(a, b) for a in models for b in models
                     if a != b and parse(a).family == parse(b).family and width(a) == width(b) and _transferable(a, b)]
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
                check_pair(source, target)
                plan_for(entry["spec"], source, target)
            except ConfigError as err:
                raise ConfigError(f"{where}, pair {source}->{target}: {err}") from None
            jobs[(source, target, entry["scheme"])] = entry["spec"]
    return [(s, t, scheme, spec) for (s, t, scheme), spec in jobs.items()]


def _transferable(source: str, target: str) -> bool:
    """Whether `check_pair` lets a transformation run from `source` to `target` (`pairs: all` leaves
    the others out, as it leaves out pairs of two widths)."""
    try:
        check_pair(source, target)
    except ConfigError:
        return False
    return True


def compared_levels(config: dict[str, Any]) -> list[int]:
    """The IMP levels at which ETTs, baselines, RigL and transfers are made: `pruning.compare_at`,
    or every level."""
    levels = config["pruning"]["levels"]
    compared = sorted(config["pruning"].get("compare_at", range(1, levels + 1)))
    outside = [k for k in compared if not 1 <= k <= levels]
    if outside:
        raise ConfigError(f"config key pruning.compare_at: levels {outside} are not IMP levels (1 to pruning.levels = {levels})")
    return compared


def lmc_tickets(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The tickets whose linear mode connectivity the `lmc` section asks for, as (model, the
    ticket's directory under its run), e.g. ("resnet32", "ett/from-resnet20/default/level10");
    empty without the section. A selection that names nothing the study makes stops the DAG."""
    lmc = config.get("lmc")
    if lmc is None:
        return []
    models = lmc.get("models", config["models"])
    levels = lmc.get("levels", [max(compared_levels(config))])
    for model in models:
        if model not in config["models"]:
            raise ConfigError(f"config key lmc.models: {model} is not in `models`; add it there so its tickets exist")
    allowed = range(1, config["pruning"]["levels"] + 1) if lmc["methods"] == ["imp"] else compared_levels(config)
    for level in levels:
        if level not in allowed:
            raise ConfigError(f"config key lmc.levels: level {level} is not one the study makes these tickets at "
                              f"({list(allowed)}, from pruning.levels and pruning.compare_at)")
    for pair in lmc["noise_seeds"]:
        if pair[0] == pair[1]:
            raise ConfigError(f"config key lmc.noise_seeds: {pair} trains both copies under the same SGD noise")
    ett = ett_jobs(config)
    tickets = []
    for model in models:
        for level in levels:
            for method in lmc["methods"]:
                if method == "imp":
                    tickets.append((model, f"imp/level{level}"))
                elif method == "ett":
                    tickets += [(model, f"ett/from-{source}/{scheme}/level{level}") for source, target, scheme, _ in ett
                                if target == model and scheme in lmc["schemes"]]
                else:
                    tickets.append((model, f"baselines/{method}/level{level}"))
    if "ett" in lmc["methods"] and not any(t.startswith("ett/") for _, t in tickets):
        raise ConfigError(f"config key lmc.methods: asks for ETTs, but `ett` has no scheme in {lmc['schemes']} "
                          f"into {', '.join(models)}")
    return tickets


def lmc_seeds(config: dict[str, Any]) -> list[int]:
    """The seeds whose tickets the `lmc` section tests: `lmc.seeds`, each one of the study's, or all."""
    seeds = config.get("lmc", {}).get("seeds", config["seeds"])
    for seed in seeds:
        if seed not in config["seeds"]:
            raise ConfigError(f"config key lmc.seeds: seed {seed} is not in `seeds` {config['seeds']}; "
                              "add it there so its tickets exist")
    return seeds


def family(model: str) -> str:
    return parse(model).family


def recipe(config: dict[str, Any], model: str) -> dict[str, Any]:
    """The recipe of `model`'s family, as the dict the training CLI takes: a family of the user's own module
    declares it in its `modules` entry."""
    own = config.get("modules", {}).get(family(model))
    return own["recipe"] if own is not None else config["recipes"][family(model)]


def module_environment(config: dict[str, Any]) -> str:
    """What the workflow exports as ELTH_MODULES into every job (elth/models/user.py), so that each job reads
    the config's `modules` as the DAG did; '' without the section."""
    return user.environment(config["modules"]) if config.get("modules") else ""


def module_sources(config: dict[str, Any]) -> list[str]:
    """The source files of the config's module builders (absolute paths, found without importing them): the
    workflow fingerprints them with elth's own code, so editing a module reruns the stages that build it."""
    files = (user.source_file(fam) for fam in user.declared().values() if fam.name in config.get("modules", {}))
    return [str(f) for f in files if f is not None]


def recipe_json(config: dict[str, Any], model: str) -> str:
    return json.dumps(recipe(config, model), sort_keys=True, separators=(",", ":"))


def dataset_section(config: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
    """The config section of `dataset` (default: the study's): `dataset`, or `transfer.from` for
    the dataset tickets are transferred from, whose runs need its own root, subset and augmentation."""
    if dataset is None or dataset == config["dataset"]["name"]:
        return config["dataset"]
    source = config.get("transfer", {}).get("from")
    if source is not None and source["name"] == dataset:
        return source
    raise ConfigError(f"dataset {dataset!r} is neither the study's `dataset` ({config['dataset']['name']}) "
                      "nor `transfer.from`; the study has no options for it")


def data_json(config: dict[str, Any], dataset: str | None = None) -> str:
    """The options of `dataset` (default: the study's) that the training CLI takes (all but the name),
    and `splits`: the file the `prepare_data` rule decodes it into, which every job loads."""
    section = dataset_section(config, dataset)
    options = {k: v for k, v in section.items() if k != "name"} | {"splits": f"results/{section['name']}/splits.pt"}
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


def transfer_jobs(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Every configured dataset transfer as (source model, target model, scheme, spec): the IMP
    tickets of the source model on `transfer.from` retrained on the study's dataset as the target
    model. A pair of one model is a direct transfer (scheme `direct`, no ETT); a pair of two models
    applies the ETT of `transfer.spec` under `transfer.scheme`, checked here like `ett`'s."""
    transfer = config.get("transfer")
    if transfer is None:
        return []
    source_dataset, target_dataset = transfer["from"]["name"], config["dataset"]["name"]
    if source_dataset == target_dataset:
        raise ConfigError(f"config key transfer.from: {source_dataset} is the study's own dataset; "
                          "a transfer needs another (tickets of the same dataset are `ett`'s)")
    check_transferable(source_dataset, target_dataset)
    jobs = []
    for pair in transfer["pairs"]:
        source, target = pair.split("->")
        where = f"config key transfer.pairs ({pair})"
        if target not in config["models"]:
            raise ConfigError(f"{where}: {target} is not in `models`; add it there so its recipe and the IMP "
                              f"tickets Table 4 compares with exist on {target_dataset}")
        try:
            if parse(source).family not in set(config["recipes"]) | set(config.get("modules", {})):
                raise ConfigError(f"no recipe for family {parse(source).family!r} to train {source} on {source_dataset}")
            if source != target:
                check_pair(source, target)
                plan_for(transfer["spec"], source, target)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        scheme = "direct" if source == target else transfer["scheme"]
        jobs.append((source, target, scheme, transfer["spec"]))
    return jobs


def check_transferable(source: str, target: str) -> None:
    """A ticket's first conv takes the source's channels and its last layer gives the source's
    classes; no mapping of those onto another dataset's is sensible, so such a transfer is refused
    here, before the source dataset's IMP rounds run, rather than by the transfer job after them."""
    a, b = info(source), info(target)
    if (a.in_channels, a.num_classes) != (b.in_channels, b.num_classes):
        raise ConfigError(f"config key transfer.from: {source} ({a.shape}) and {target} ({b.shape}) differ in "
                          "channels or classes, so a ticket's first conv or last layer has no counterpart; transfer "
                          "between datasets of the same channels and classes (svhn and cifar10; fashion-mnist, "
                          "mnist and digits)")


def unpruned(config: dict[str, Any], model: str) -> list[str]:
    return list(config["pruning"].get("unpruned", {}).get(family(model), []))
