"""A user's own module (tests/data/user_module.py, which knows nothing of elth) declared as a family and used
without editing elth: through the Python API (tickets moved between depths, trained with pruned weights at zero)
and through the DAG (checked at build without torch, and a job that builds the model from the declaration)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, write_mnist_like
from elth import api
from elth.errors import ConfigError
from elth.models import names, user
from elth.models.registry import prunable_names
from elth.transform.spec import plan_for
from test_dag import job_counts, snakemake

MODULE_DIR = ROOT / "tests" / "data"
TINY = {"builder": "user_module:build", "path": str(MODULE_DIR), "stages": ["stage1.{}.", "stage2.{}."],
        "options": {"width": 4}}
RECIPE = {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}


@pytest.fixture
def tiny() -> Iterator[None]:
    """The family `tiny` declared for the test alone: the declarations are the process's."""
    api.declare_module("tiny", TINY["builder"], TINY["stages"], options=TINY["options"], path=TINY["path"])
    yield
    user.declare({})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("data")
    write_mnist_like(root / "FashionMNIST" / "raw", n_train=128, n_test=64)
    return {"root": str(root), "augment": []}


def test_a_declared_modules_ticket_moves_between_depths_and_trains_with_pruned_weights_at_zero(tiny, data) -> None:
    dense = api.train_dense("tiny-2-2", "fashion-mnist", RECIPE, data=data, device="cpu")
    ticket = api.imp_round(dense.rewind, dense.final, fraction=0.5)
    stretched = api.transform(ticket, "tiny-3-4")
    # The paper's default (App. A): append the elastic units after the last of them, unit 0 (fixed) kept.
    assert stretched.extra["plan"] == "0:0;1:1,2 | 0:0;1:1,2,3"
    assert stretched.mask.remaining == ticket.mask.remaining + sum(
        int(ticket.mask[k].sum()) for k in ("stage1.1.conv.weight", "stage2.1.conv.weight", "stage2.1.conv.weight"))
    # Stretch, then drop the copies: the source ticket, tensor for tensor (the acceptance).
    back = api.transform(stretched, "tiny-2-2", "Drop 2 | Drop 23")
    assert back.mask == ticket.mask
    assert all(torch.equal(back.weights[k], v) for k, v in ticket.weights.items())
    run = api.train_ticket(stretched, RECIPE, data=data, device="cpu")
    final = run.final
    assert final.model == "tiny-3-4" and len(run.history) == 1
    for name, keep in stretched.mask.items():
        assert torch.all(final.state[name][~keep] == 0), name
        assert torch.any(final.state[name][keep] != stretched.weights[name][keep]), f"{name} did not train"


def test_a_seeded_model_of_a_declared_module_is_a_function_of_its_seed(tiny) -> None:
    a, b = api.build("tiny-2-3", "fashion-mnist", seed=3), api.build("tiny-2-3", "fashion-mnist", seed=3)
    torch.manual_seed(0)
    c = api.build("tiny-2-3", "fashion-mnist", seed=4)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(a.state_dict()["stem.weight"], c.state_dict()["stem.weight"])
    assert [[u.fixed for u in s.units] for s in a.structure.stages] == [[True, False], [True, False, False]]


def test_a_family_declared_from_python_takes_the_builder_function_and_its_prunable_globs() -> None:
    spec = importlib.util.spec_from_file_location("users_own", MODULE_DIR / "user_module.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    api.declare_module("mine", module.build, ["stage1.{}.", "stage2.{}."], fixed=(), prunable=["*conv.weight"])
    try:
        model = api.build("mine-1-2", "fashion-mnist")
        assert prunable_names(model) == ["stage1.0.conv.weight", "stage2.0.conv.weight", "stage2.1.conv.weight"]
        assert names.layout("mine-1-2") == ((False,), (False, False))  # nothing fixed: unit 0 replicates too
        assert plan_for("default", "mine-1-2", "mine-2-2").explicit() == "0:0,1 | 0:0;1:1"
    finally:
        user.declare({})


@pytest.mark.parametrize("edit,message", [
    ({"stages": ["stage1.{}.", "blocks.{}."]}, "stage 'blocks.{}.' of modules.tiny.stages has no tensor"),
    ({"builder": "user_module:make"}, "user_module has no function 'make'"),
    ({"builder": "no_such_module:build"}, "cannot import no_such_module"),
    ({"prunable": ["*.kernel"]}, "modules.tiny.prunable glob '*.kernel' matches no parameter"),
])
def test_the_first_build_checks_the_module_against_its_declaration(edit: dict, message: str) -> None:
    user.declare({"tiny": TINY | edit})
    try:
        with pytest.raises(ConfigError, match=message.replace("*", r"\*").replace("{", r"\{").replace("}", r"\}")):
            api.build("tiny-2-2", "fashion-mnist")
    finally:
        user.declare({})


@pytest.mark.parametrize("entry,message", [
    ({"builder": "user_module:build", "stages": ["x.{}."]}, "'mlp' is taken"),
    ({"builder": "user_module.build", "stages": ["x.{}."]}, "is not 'package.module:function'"),
    ({"builder": "user_module:build", "stages": ["x."]}, "one '{}' for the unit's index"),
])
def test_a_bad_declaration_is_refused_naming_the_key(entry: dict, message: str) -> None:
    name = "mlp" if "taken" in message else "tiny"
    try:
        with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
            user.declare({name: entry})
    finally:
        user.declare({})


def study(data_root: Path, work: Path, **edits) -> Path:
    """A micro study of two depths of the user's module, transforming tickets both ways (no `recipes`: the
    module's family carries its own)."""
    config = {
        "experiment": "own-module", "seeds": [0], "models": ["tiny-2-2", "tiny-2-3"],
        "dataset": {"name": "fashion-mnist", "root": str(data_root), "augment": []},
        "modules": {"tiny": TINY | {"recipe": RECIPE}},
        "pruning": {"levels": 1, "fraction": 0.5},
        "ett": [{"scheme": "default", "spec": "default", "pairs": "all"}],
        "baselines": {"methods": ["magnitude"]},
    } | edits
    path = work / "own.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_dag_of_a_declared_module_builds_without_torch_and_checks_each_transfer(tmp_path: Path) -> None:
    config = study(tmp_path / "data", tmp_path)
    run = snakemake(tmp_path, "--configfile", str(config), "-n")
    assert run.returncode == 0, run.stderr[-2000:]
    # Two models: a dense run each, and the ETTs 2-2 -> 2-3 and back, each retrained; a baseline of each.
    assert (job_counts(run.stdout)["dense"], job_counts(run.stdout)["ett"]) == (2, 2)
    for ticket in ("tiny-2-3/seed0/ett/from-tiny-2-2/default/level1", "tiny-2-2/seed0/ett/from-tiny-2-3/default/level1",
                   "tiny-2-2/seed0/baselines/magnitude/level1"):
        assert f"results/fashion-mnist/{ticket}/summary.json" in run.stdout, ticket
    code = (f"import sys, yaml; from elth import config, schema; c = yaml.safe_load(open({str(config)!r})); "
            f"schema.validate(c, {str(ROOT / 'workflow/schemas/config.schema.yaml')!r}); config.check(c); "
            "from elth.transform.spec import plan_for; print(plan_for('default', 'tiny-2-2', 'tiny-2-3').explicit()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    checked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "0:0;1:1 | 0:0;1:1,2"
    # Unit 0 of each stage is declared fixed: dropping it is refused before any job, naming the pair.
    bad = study(tmp_path / "data", tmp_path, ett=[{"scheme": "drop", "spec": "Drop 0", "pairs": ["tiny-2-3->tiny-2-2"]}])
    refused = snakemake(tmp_path, "--configfile", str(bad), "-n")
    assert refused.returncode != 0 and "tiny-2-3->tiny-2-2" in refused.stdout + refused.stderr
    assert "unit 0 is fixed" in refused.stdout + refused.stderr


def test_a_job_builds_the_declared_module_from_the_config_alone_and_an_edit_of_it_reruns_the_job(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw", n_train=128, n_test=64)
    module = tmp_path / "mine" / "user_module.py"
    module.parent.mkdir()
    module.write_text((MODULE_DIR / "user_module.py").read_text())
    config = study(tmp_path / "data", tmp_path, modules={"tiny": TINY | {"path": str(module.parent), "recipe": RECIPE}})
    target = "results/fashion-mnist/tiny-2-3/seed0/dense/summary.json"
    run = snakemake(tmp_path, "--configfile", str(config), "--cores", "1", target)
    assert run.returncode == 0, run.stderr[-3000:]
    assert yaml.safe_load((tmp_path / target).read_text())["model"] == "tiny-2-3"
    assert job_counts(snakemake(tmp_path, "--configfile", str(config), "-n", target).stdout) == {}
    module.write_text(module.read_text().replace("return TinyNet(", "return TinyNet(  # edited\n        "))
    assert job_counts(snakemake(tmp_path, "--configfile", str(config), "-n", target).stdout)["dense"] == 1


def test_a_declared_module_runs_rigl_the_flops_table_and_a_dataset_transfer_through_the_dag(tmp_path: Path) -> None:
    """RigL, the FLOPs accountant and dataset transfer read a family's recipe and build its models as every
    other stage does; the transfer check once looked for the recipe in `recipes` alone and refused a declared
    module's own. One model of each: a RigL run, a FLOPs table between the depths, and the ETT of a ticket
    found on MNIST into the deeper model, each finished from the config alone."""
    write_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw", n_train=128, n_test=64)
    write_mnist_like(tmp_path / "data" / "MNIST" / "raw", n_train=128, n_test=64)
    config = study(tmp_path / "data", tmp_path, ett=[],
                   rigl={"multipliers": [1], "distribution": "uniform", "delta_t": 2, "alpha": 0.3, "stop": 0.75},
                   transfer={"from": {"name": "mnist", "root": str(tmp_path / "data"), "augment": []},
                             "pairs": ["tiny-2-2->tiny-2-3"], "scheme": "default", "spec": "default"})
    targets = ["results/fashion-mnist/tiny-2-3/seed0/dst/rigl/level1/summary.json",
               "results/tables/flops/tiny-2-2-to-tiny-2-3.md",
               "results/fashion-mnist/tiny-2-3/seed0/transfer/from-mnist/tiny-2-2/default/level1/summary.json"]
    run = snakemake(tmp_path, "--configfile", str(config), "--cores", "2", *targets)
    assert run.returncode == 0, run.stderr[-3000:]
    rigl, transfer = (yaml.safe_load((tmp_path / t).read_text()) for t in (targets[0], targets[2]))
    assert rigl["model"] == transfer["model"] == "tiny-2-3" and rigl["method"] == "rigl"
    assert transfer["method"] == "transfer" and transfer["source"] == "mnist/tiny-2-2"
    assert "RigL 1x on tiny-2-3" in (tmp_path / targets[1]).read_text()
