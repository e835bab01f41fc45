"""elth from Python: the stages of the pipeline as functions, for notebooks and other pipelines.

Each function calls the code its command calls (named in its docstring), so a ticket made here is the ticket the
DAG would make from the same inputs, and files written here are the files the DAG writes (read back by
`load_ticket`, `runs` and the commands). Tickets and checkpoints are taken as objects or as paths of elth's files.

    from elth import api
    recipe = {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "5it"}
    dense = api.train_dense("mlp2", "digits", recipe)
    ticket = api.imp_round(dense.rewind, dense.final, fraction=0.5)
    run = api.train_ticket(api.transform(ticket, "mlp3"), recipe)

(README.md, "Python API", has the example a test runs.)

A family of one's own module is declared with `declare_module` (or a config's `modules`, read by `load_config`);
its models are then named like elth's own and go through every function here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from torch import Tensor, nn

from elth import baseline as baselines
from elth import config as study
from elth import data as datasets
from elth import files, imp, schema
from elth import train as engine
from elth.checkpoint import Checkpoint, build_for
from elth.errors import ConfigError
from elth.gpus import pick_device
from elth.models import user
from elth.prune import Mask, prunable
from elth.recipe import Recipe
from elth.report import aggregate
from elth.transform.__main__ import ett

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
# What a transformation adds to a ticket's JSON beside what every ticket records.
TRANSFORM_KEYS = ("plan", "mapping")

PathLike = str | os.PathLike[str]


@dataclass
class Ticket:
    """A ticket: a model's rewind weights and mask on a dataset, with what made it.

    `extra` is what its maker adds to the ticket's JSON (an ETT's `plan`, in the explicit map form, and its
    key `mapping`)."""

    checkpoint: Checkpoint
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.checkpoint.model

    @property
    def dataset(self) -> str:
        return self.checkpoint.dataset

    @property
    def weights(self) -> dict[str, Tensor]:
        """The rewind weights (the whole state_dict, BN statistics included) the ticket retrains from."""
        return self.checkpoint.state

    @property
    def mask(self) -> Mask:
        return self.checkpoint.mask

    @property
    def info(self) -> dict[str, Any]:
        """What `save` writes beside the ticket as JSON, as the commands do: model, dataset, step, what made it
        (method, level, seed, ...), the sparsity in both conventions with the counts and per-layer sparsities,
        and `extra`."""
        c = self.checkpoint
        return {"model": c.model, "dataset": c.dataset, "step": c.step, **c.meta,
                **c.mask.summary(build_for(c.model, c.dataset)), **self.extra}

    def save(self, path: PathLike) -> None:
        """Write the ticket file and its JSON (same name, .json), atomically, as the commands do."""
        self.checkpoint.save_ticket(path, **self.extra)


@dataclass
class Run:
    """A finished training run: the weights it ended with (and the mask, in `final.mask`), the dense run's rewind
    point, and one row of metrics per epoch (test accuracy and loss among them)."""

    final: Checkpoint
    rewind: Checkpoint | None
    history: list[dict[str, float]]
    seconds: float

    @property
    def test_acc(self) -> float:
        """Test accuracy after the last epoch."""
        return self.history[-1]["test_acc"]


def _checkpoint(value: Ticket | Checkpoint | PathLike, kind: str = "checkpoint") -> Checkpoint:
    if isinstance(value, Ticket):
        return value.checkpoint
    if isinstance(value, Checkpoint):
        return value
    return Checkpoint.load(value, kind)


def load_ticket(path: PathLike) -> Ticket:
    """The ticket at `path` (a `ticket.pt` of any kind), with what its JSON beside it adds (an ETT's plan and
    mapping); its `info` is that JSON."""
    checkpoint = Checkpoint.load(path, "ticket")
    beside = Path(path).with_suffix(".json")
    saved = files.read_json(beside) if beside.is_file() else {}
    return Ticket(checkpoint, {k: saved[k] for k in TRANSFORM_KEYS if k in saved})


def load_checkpoint(path: PathLike) -> Checkpoint:
    """A trained checkpoint (`final.pt`) or a rewind point (`rewind.pt`)."""
    return Checkpoint.load(path)


def build(model: str, dataset: str, seed: int | None = None) -> nn.Module:
    """Model `model` shaped for `dataset`; with `seed`, initialised from that seed alone (as a dense run starts)."""
    return build_for(model, dataset, seed=seed)


def load_config(config: PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A study config (a YAML file or its dict) checked as the DAG checks it, with the schema's defaults filled
    in; its `modules` are declared in this process. Raises a ConfigError naming the key at fault."""
    loaded = yaml.safe_load(Path(config).read_text()) if isinstance(config, (str, os.PathLike)) else dict(config)
    schema.validate(loaded, SCHEMA)
    study.check(loaded)
    return loaded


def declare_module(family: str, builder: str | Callable[..., nn.Module], stages: list[str], fixed: tuple[int, ...] = (0,),
                   prunable: list[str] | None = None, options: Mapping[str, Any] | None = None,
                   path: PathLike | None = None) -> None:
    """Declare a family of your own module, as a config's `modules` entry does (README, "Your own module"):
    its models are then named `<family>-<units per stage>` (`tiny-2-3`) everywhere. `builder` is
    `package.module:function` or, here, the function itself, called as `builder(units, in_channels=...,
    num_classes=..., in_features=..., **options)`; `stages` gives each stage's unit prefix (`blocks.{}.`);
    `fixed` the unit indices of every stage never replicated or dropped; `prunable` globs of the prunable
    weights (default: every Conv2d and Linear weight)."""
    entry = {"builder": builder, "stages": stages, "fixed": list(fixed), "options": dict(options or {}),
             "path": None if path is None else str(path), **({} if prunable is None else {"prunable": prunable})}
    user.add(user.family(family, entry))


def imp_round(rewind: Checkpoint | PathLike, trained: Checkpoint | PathLike, previous: Ticket | PathLike | None = None,
              level: int | None = None, fraction: float = 0.2, unpruned: tuple[str, ...] = (),
              count: str = "nearest") -> Ticket:
    """One IMP round (`python -m elth.imp`): `fraction` of the weights `previous` keeps (level 1: all prunable
    weights, less the `unpruned` globs), the smallest in `trained`, pruned; the ticket holds the `rewind` weights.
    `level` defaults to the previous ticket's plus one (1 without one)."""
    before = None if previous is None else _checkpoint(previous, "ticket")
    if level is None:
        level = 1 if before is None else int(before.meta.get("level", 0)) + 1
    return Ticket(imp.next_ticket(_checkpoint(rewind), _checkpoint(trained), before, level, fraction, list(unpruned),
                                  count))


def transform(ticket: Ticket | PathLike, to: str, spec: str = "default", scheme: str | None = None, seed: int = 0,
              level: int | None = None, random_start: str = "rewind") -> Ticket:
    """The Elastic Ticket Transformation of `ticket` onto model `to` by `spec` (`python -m elth.transform`):
    any spec of the README's table, between two models of one family (elth's or a declared one). Its
    randomness (a ` - Random` control, width noise) is drawn from (seed, level), level defaulting to the
    ticket's IMP level as in the DAG. The result's `extra` holds the plan and the key mapping."""
    source = _checkpoint(ticket, "ticket")
    if source.mask is None:
        raise ConfigError(f"the {source.model} ticket has no mask to transform")
    level = int(source.meta.get("level", 0)) if level is None else level
    out, mapping, plan = ett(source, to, spec, scheme, seed, level, random_start)
    return Ticket(out, {"plan": plan.explicit(), "mapping": mapping})


def count_mask(layers: Mask, keep: int) -> Mask:
    """A mask over the layers of `layers` keeping `keep` weights (the first ones, in order): all that the
    scoring baselines read of the ticket they match is its layers and its count."""
    if not 0 <= keep <= layers.total:
        raise ConfigError(f"keep {keep}: a mask over these layers keeps between 0 and {layers.total} weights")
    out, left = {}, keep
    for name, m in layers.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[:min(left, m.numel())] = True
        out[name], left = flat.view_as(m), left - min(left, m.numel())
    return Mask(out)


def baseline(method: str, rewind: Checkpoint | PathLike, reference: Ticket | PathLike | None = None,
             keep: int | None = None, data: Mapping[str, Any] | None = None, seed: int = 0, level: int | None = None,
             batch_size: int = 128, batches: int | None = 1, mode: str = "train", grasp: str = "wang",
             random_start: str = "rewind", iterations: int = 100, unpruned: tuple[str, ...] = (),
             device: str = "cpu") -> Ticket:
    """A pruning baseline's ticket on the `rewind` weights (`python -m elth.baseline`): `reinit`, `random`,
    `magnitude`, `snip`, `grasp` or `synflow`, keeping as many weights as the `reference` IMP ticket, or `keep`
    weights. `reinit` and `random` follow the reference's mask, so they need one; the others read only its
    layers and count, so `keep` alone will do (over the prunable weights, less the `unpruned` globs). SNIP and
    GraSP score the first `batches` mini-batches (None: an epoch) of the dataset `data` describes (the config's
    `dataset` options, default: `data/` as root); the other settings are the command's."""
    if method not in baselines.METHODS:
        raise ConfigError(f"baseline {method!r}: expected one of {sorted(baselines.METHODS)}")
    start = _checkpoint(rewind)
    matched = None if reference is None else _checkpoint(reference, "ticket")
    if matched is None and keep is None:
        raise ConfigError("give the IMP ticket the baseline matches (reference=) or the weights it keeps (keep=)")
    if keep is not None:
        if method in ("reinit", "random"):
            raise ConfigError(f"baseline {method!r} keeps the reference ticket's own mask, which a count alone does not "
                              "give; pass reference= without keep=")
        if matched is None:
            model = start.build_model()
            layers = Mask.ones(model, prunable(model, unpruned))
        else:
            layers = matched.mask
        meta = {"level": level if level is not None else 0, "seed": seed} if matched is None else matched.meta
        matched = Checkpoint(start.model, start.dataset, start.step, start.state, count_mask(layers, keep), meta)
    level = int(matched.meta.get("level") or 0) if level is None else level
    where = pick_device(device) if method in baselines.SCORED else torch.device("cpu")
    return Ticket(baselines.matched(method, start, matched, dict(data or {}), seed, level, batch_size, batches,
                                    iterations, random_start, mode, grasp, where))


def _recipe(recipe: Mapping[str, Any] | Recipe | None, config: Mapping[str, Any] | None, model: str) -> Recipe:
    if (recipe is None) == (config is None):
        raise ConfigError("give the training recipe either as recipe= (a dict of a config's recipe) or as config= "
                          "(the study config whose recipe for the model's family applies)")
    if isinstance(recipe, Recipe):
        return recipe
    return Recipe.from_dict(dict(recipe) if recipe is not None else study.recipe(dict(config), model))


def _data(data: Mapping[str, Any] | None, config: Mapping[str, Any] | None, dataset: str) -> dict[str, Any]:
    """The dataset options: `data`, else the config's `dataset` section when it is this dataset's, else none."""
    if data is not None:
        return dict(data)
    if config is not None and config["dataset"]["name"] == dataset:
        return {k: v for k, v in config["dataset"].items() if k != "name"}
    return {}


def _train(model: nn.Module, name: str, dataset: str, recipe: Recipe, seed: int, mask: Mask | None, start: int,
           meta: dict[str, Any], data: dict[str, Any], out: PathLike | None, device: str, precision: str,
           dense: bool) -> Run:
    """The training of `python -m elth.train`, on one model: the same engine, data and files."""
    where = pick_device(device)
    model.to(where)
    loaded = datasets.open_data(dataset, data, where)
    spe = loaded.steps_per_epoch(recipe.batch_size)
    rewind_step = recipe.rewind_step(spe) if dense else None
    result = engine.train(model, loaded, recipe, seed, mask=mask, start_step=start, snapshot_step=rewind_step,
                          precision=precision)
    if out is not None:
        engine.save_run(Path(out), name, dataset, seed, recipe, spe, start, meta, model, result, rewind_step,
                        engine.device_name(where, torch.get_num_threads()))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    final = Checkpoint(name, dataset, recipe.total_steps(spe), state, result.mask, meta)
    rewind = Checkpoint(name, dataset, rewind_step, result.snapshot, meta={"seed": seed}) if dense else None
    return Run(final, rewind, result.history, result.seconds)


def train_dense(model: str, dataset: str, recipe: Mapping[str, Any] | Recipe | None = None,
                config: Mapping[str, Any] | None = None, seed: int = 0, data: Mapping[str, Any] | None = None,
                out: PathLike | None = None, device: str = "auto", precision: str = "fp32") -> Run:
    """Train `model` on `dataset` from its seeded initialisation (`python -m elth.train` without --ticket), by
    `recipe` (a recipe dict as in a config) or by `config`'s recipe for the model's family; the returned run's
    `rewind` is the rewind point IMP tickets restart from. With `out`, the run's files (rewind.pt, final.pt,
    metrics.csv, summary.json) are written there, as the DAG's `dense` rule writes them."""
    trained = _recipe(recipe, config, model)
    return _train(build_for(model, dataset, seed=seed), model, dataset, trained, seed, None, 0,
                  {"method": "dense", "level": 0}, _data(data, config, dataset), out, device, precision, dense=True)


def train_ticket(ticket: Ticket | PathLike, recipe: Mapping[str, Any] | Recipe | None = None,
                 config: Mapping[str, Any] | None = None, seed: int = 0, data: Mapping[str, Any] | None = None,
                 out: PathLike | None = None, device: str = "auto", precision: str = "fp32") -> Run:
    """Retrain `ticket` on its dataset from its rewind step (`python -m elth.train --ticket`), every pruned weight
    held at exactly zero, by `recipe` or `config`'s recipe for its family; `seed` orders the data. With `out`, the
    run's files are written there as the DAG's `retrain` rule writes them (final.pt, metrics.csv, summary.json)."""
    start = _checkpoint(ticket, "ticket")
    trained = _recipe(recipe, config, start.model)
    return _train(start.build_model(), start.model, start.dataset, trained, seed, start.mask, start.step,
                  dict(start.meta), _data(data, config, start.dataset), out, device, precision, dense=False)


def runs(results: PathLike = "results", experiment: str = "") -> pd.DataFrame:
    """Every run under `results` (each summary.json a training run wrote, the copies of linear mode connectivity
    left out) as the DAG's runs.csv holds them: one row per run, the same columns, `experiment` in each row."""
    root = Path(results)
    paths = sorted(str(p) for p in root.rglob("summary.json") if "lmc" not in p.relative_to(root).parts)
    return aggregate.collect(paths, experiment)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every (model, method, source, scheme, level) of a runs table,
    as the DAG's summary.csv."""
    return aggregate.summarize(table)
