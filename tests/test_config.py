"""Config validation: the schema and elth's own checks refuse bad studies with the key named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from elth import config as study
from elth import schema
from elth.errors import ConfigError

from conftest import ROOT

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
CONFIGS = [ROOT / "config.yaml", *sorted((ROOT / "config").glob("*/*.yaml"))]


def load(path: Path = ROOT / "config.yaml") -> dict:
    return yaml.safe_load(path.read_text())


def check(config: dict) -> None:
    schema.validate(config, SCHEMA)
    study.check(config)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    check(load(path))


def test_paper_configs_use_open_lths_decay_at_80_and_120_with_tables_other_settings() -> None:
    for name, family, rewind in (("cifar10-resnet", "cifar-resnet", "1000it"), ("cifar10-vgg", "vgg", "200it")):
        recipe = load(ROOT / "config" / "paper" / f"{name}.yaml")["recipes"][family]
        assert recipe["milestones"] == [80, 120] and recipe["epochs"] == 160 and recipe["batch_size"] == 128
        assert recipe["lr"] == 0.1 and recipe["rewind"] == rewind
    assert load(ROOT / "config" / "paper" / "cifar10-vgg.yaml")["pruning"]["unpruned"] == {"vgg": ["fc.weight"]}
    assert load(ROOT / "config" / "paper" / "cifar10-resnet.yaml")["seeds"] == [0, 1, 2]


def test_schema_fills_defaults() -> None:
    config = load()
    del config["resources"]
    schema.validate(config, SCHEMA)
    assert config["resources"] == {
        "threads": 1, "device": "auto", "slurm_partition": None, "slurm_account": None,
        "sizes": {"train": {"runtime": 240, "mem_mb": 8000}, "ticket": {"runtime": 30, "mem_mb": 4000},
                  "other": {"runtime": 30, "mem_mb": 4000}, "families": {}, "models": {}}}
    assert config["pruning"]["count"] == "nearest"  # the demo keeps elth's count; the paper configs may set open_lth


def test_schema_fills_each_size_field_by_field() -> None:
    config = load()
    config["resources"] = {"sizes": {"train": {"runtime": 60}}}
    schema.validate(config, SCHEMA)
    assert config["resources"]["sizes"]["train"] == {"runtime": 60, "mem_mb": 8000}


def broken(edit) -> dict:
    config = copy.deepcopy(load())
    edit(config)
    return config


@pytest.mark.parametrize("edit,named", [
    (lambda c: c.update(modle=["resnet20"]), "modle"),
    (lambda c: c["dataset"].update(name="cifar100"), "cifar100"),
    (lambda c: c["recipes"]["cifar-resnet"].update(lr=-0.1), "lr"),
    (lambda c: c["recipes"]["cifar-resnet"].update(epoch=3), "epoch"),
    (lambda c: c["pruning"].update(fraction=1.2), "fraction"),
    (lambda c: c["pruning"].update(count="ceil"), "ceil"),
    (lambda c: c["recipes"]["cifar-resnet"].update(rewind="1000 steps"), "rewind"),
    (lambda c: c.update(seeds=[]), "seeds"),
    (lambda c: c["resources"].update(sizes={"train": {"runtim": 60}}), "runtim"),
    (lambda c: c["resources"].update(sizes={"families": {"resnet": {}}}), "resnet"),
    (lambda c: c["resources"].update(sizes={"models": {"resnet20": {"other": {}}}}), "other"),
])
def test_schema_errors_name_the_key(edit, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        schema.validate(broken(edit), SCHEMA)
    assert named in str(err.value)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c.update(models=["resnet21"]), "models: model 'resnet21'.*6n\\+2"),
    (lambda c: c.update(models=["vgg16"]), "no recipe for family 'vgg'"),
    (lambda c: c.pop("recipes"), "no recipe for family 'cifar-resnet'"),
    (lambda c: c["recipes"]["cifar-resnet"].update(milestones=[5]), "recipes.cifar-resnet.*milestones"),
    (lambda c: c["pruning"].update(compare_at=[2, 99]), "pruning.compare_at: levels \\[99\\]"),
])
def test_semantic_errors_name_the_key(edit, message: str) -> None:
    config = broken(edit)
    schema.validate(config, SCHEMA)
    with pytest.raises(ConfigError, match=message):
        study.check(config)


def test_config_checks_do_not_import_torch() -> None:
    # The DAG imports elth.config while it builds; torch would cost seconds on every snakemake call.
    import subprocess
    import sys

    code = "import sys, elth.config, elth.schema; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
