"""A config that breaks the schema gets one message, not Snakemake's thousand lines: the key's path, what the
schema expects there and, for a misspelling, the nearest valid key (elth/schema.py); the defaults it fills in are
the ones Snakemake's validate fills in."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from conftest import ROOT
from elth import schema
from elth.errors import ConfigError
from test_dag import snakemake

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIGS = [ROOT / "config.yaml", *sorted((ROOT / "config").glob("*/*.yaml"))]
# Snakemake exits 1 on a WorkflowError raised while it reads the Snakefile, which is how common.smk stops on
# every config error, the checks of elth.config included.
CONFIG_ERROR = 1


def bare() -> dict:
    """The demo with only the keys the schema requires, so that every default is filled in."""
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    return {key: demo[key] for key in yaml.safe_load(SCHEMA.read_text())["required"]}


@pytest.mark.parametrize("study", [*CONFIGS, "bare"], ids=lambda p: getattr(p, "name", p))
def test_the_defaults_filled_in_are_snakemakes(study: Path | str) -> None:
    ours = bare() if study == "bare" else yaml.safe_load(study.read_text())
    theirs = copy.deepcopy(ours)
    schema.validate(ours, SCHEMA)
    snakemake_validate(theirs, str(SCHEMA), set_default=True)
    assert ours == theirs


def recipe(**edit) -> Callable[[dict], None]:
    return lambda config: config["recipes"]["cifar-resnet"].update(edit)


def rename(section: dict, old: str, new: str) -> None:
    section[new] = section.pop(old)


KEYS = ", ".join(yaml.safe_load(SCHEMA.read_text())["properties"])  # every top-level key, in the schema's order


@pytest.mark.parametrize("edit,message", [
    (lambda c: rename(c, "seeds", "seedz"), f"config key seedz: unknown key (did you mean 'seeds'?); "
                                            f"expected one of: {KEYS}"),
    (lambda c: rename(c["recipes"]["cifar-resnet"], "lr", "lrr"),
     "config key recipes.cifar-resnet.lrr: unknown key (did you mean 'lr'?); expected one of: epochs, batch_size, "
     "lr, momentum, weight_decay, milestones, gamma, warmup, warmup_rule, momentum_at_rewind, optimizer, decay, "
     "rewind"),
    (lambda c: rename(c["recipes"], "cifar-resnet", "cifar-resnt"), "config key recipes.cifar-resnt: unknown key "
     "(did you mean 'cifar-resnet'?); expected one of: cifar-resnet, imagenet-resnet, imagenet-bottleneck, vgg, mlp, vit"),
    (recipe(lr="fast"), "config key recipes.cifar-resnet.lr: expected a number above 0, got 'fast'"),
    (recipe(lr=-0.1), "config key recipes.cifar-resnet.lr: expected a number above 0, got -0.1"),
    (lambda c: c["pruning"].update(fraction=1.2),
     "config key pruning.fraction: expected a number above 0 and below 1, got 1.2"),
    (lambda c: c["dataset"].update(name="cifar100"), "config key dataset.name: expected one of fashion-mnist, mnist, "
     "cifar10, svhn, digits, imagenet, got 'cifar100' (did you mean 'cifar10'?)"),
    # Snakemake's validate fails here with an AttributeError of its own, filling defaults into a string.
    (lambda c: c.update(dataset="fashion-mnist"), "config key dataset: expected a mapping, got 'fashion-mnist'"),
    (lambda c: c["pruning"].pop("levels"), "config key pruning.levels: missing; it is required"),
    (lambda c: c["ett"][0].update(pairs=["resnet14"]), "config key ett[0].pairs[0]: expected a string matching "
     "^[a-z0-9][a-z0-9.-]*->[a-z0-9][a-z0-9.-]*$, got 'resnet14'"),
    (lambda c: c["baselines"].update(batches="two"),
     "config key baselines.batches: expected an integer at least 1 or 'epoch', got 'two'"),
    (lambda c: c.update(seeds=[0, 0]), "config key seeds: expected no item twice, got [0, 0]"),
], ids=["top-level key", "nested key", "family", "type", "below", "above", "value", "section", "required", "index",
        "one of", "unique"])
def test_a_schema_error_is_one_line_with_the_key_the_expectation_and_the_nearest_key(edit, message: str) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    edit(config)
    with pytest.raises(ConfigError) as err:
        schema.validate(config, SCHEMA)
    assert str(err.value) == message


# The same through snakemake's CLI, on a copy of config.yaml edited as a person would: (old text, new text, what
# the message says). The last case is an error of elth.config's checks, for the exit status they share.
CLI_CASES = {
    "top-level key": ("seeds: [0]", "seedz: [0]", "config key seedz: unknown key (did you mean 'seeds'?); expected"),
    "nested key": ("    lr: 0.1", "    lrr: 0.1",
                   "config key recipes.cifar-resnet.lrr: unknown key (did you mean 'lr'?)"),
    "type": ("    lr: 0.1", "    lr: fast",
             "config key recipes.cifar-resnet.lr: expected a number above 0, got 'fast'"),
    "range": ("fraction: 0.6", "fraction: 1.6",
              "config key pruning.fraction: expected a number above 0 and below 1, got 1.6"),
    "check": ("models: [resnet14-w0.5, resnet20-w0.5]", "models: [resnet14-w0.5, resnet21-w0.5]",
              "config key models: model 'resnet21-w0.5': a CIFAR ResNet has depth 6n+2"),
}


@pytest.mark.parametrize("old,new,message", CLI_CASES.values(), ids=CLI_CASES)
def test_snakemake_stops_on_a_bad_config_with_one_message_and_the_config_error_status(
        old: str, new: str, message: str, tmp_path: Path) -> None:
    text = (ROOT / "config.yaml").read_text()
    assert text.count(old) == 1, old
    study = tmp_path / "study.yaml"
    study.write_text(text.replace(old, new))
    run = snakemake(tmp_path, f"--configfile={study}", "-n")
    output = run.stdout + run.stderr
    assert run.returncode == CONFIG_ERROR, output[-2000:]
    assert message in output and len(output.splitlines()) < 15, output[-2000:]
    assert not (tmp_path / "results").exists()
