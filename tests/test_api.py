"""The Python API (elth/api.py) makes what the commands make from the same inputs, and the README's example of it
runs as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, write_mnist_like
from elth import api
from elth.checkpoint import Checkpoint
from elth.errors import ConfigError
from elth.report.aggregate import COLUMNS

RECIPE = {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("data")
    write_mnist_like(root / "FashionMNIST" / "raw", n_train=128, n_test=64)
    return {"root": str(root), "augment": []}


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory, data: dict) -> Path:
    """A dense MLP-2 run's files, as the DAG's `dense` rule writes them."""
    out = tmp_path_factory.mktemp("results") / "fashion-mnist" / "mlp2" / "seed0" / "dense"
    api.train_dense("mlp2", "fashion-mnist", RECIPE, data=data, out=out, device="cpu")
    return out


def command(module: str, *args: str) -> None:
    run = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr


def same(a: Checkpoint, b: Checkpoint) -> bool:
    return (a.model, a.step, a.meta) == (b.model, b.step, b.meta) and a.mask == b.mask and all(
        torch.equal(a.state[k], b.state[k]) for k in b.state)


def test_importing_elth_imports_no_torch() -> None:
    run = subprocess.run([sys.executable, "-c", "import sys, elth; assert 'torch' not in sys.modules"], cwd=ROOT)
    assert run.returncode == 0


def test_an_imp_round_and_its_ticket_file_are_the_commands(dense: Path, tmp_path: Path) -> None:
    command("elth.imp", "--rewind", str(dense / "rewind.pt"), "--trained", str(dense / "final.pt"), "--level", "1",
            "--fraction", "0.5", "-o", str(tmp_path / "cli.pt"))
    ticket = api.imp_round(dense / "rewind.pt", dense / "final.pt", fraction=0.5)
    assert same(ticket.checkpoint, api.load_ticket(tmp_path / "cli.pt").checkpoint)
    ticket.save(tmp_path / "api.pt")
    assert json.loads((tmp_path / "api.json").read_text()) == json.loads((tmp_path / "cli.json").read_text())
    loaded = api.load_ticket(tmp_path / "api.pt")
    assert loaded.info == json.loads((tmp_path / "api.json").read_text()) and loaded.info["level"] == 1
    assert loaded.mask.sparsity == 0.5 and loaded.weights.keys() == api.load_checkpoint(dense / "rewind.pt").state.keys()
    second = api.imp_round(dense / "rewind.pt", dense / "final.pt", ticket, fraction=0.5)
    assert second.info["level"] == 2 and second.mask.remaining < ticket.mask.remaining


def test_a_transformation_is_the_commands_with_its_plan(dense: Path, tmp_path: Path) -> None:
    source = api.imp_round(dense / "rewind.pt", dense / "final.pt", fraction=0.5)
    source.save(tmp_path / "mlp2.pt")
    command("elth.transform", str(tmp_path / "mlp2.pt"), "--to", "mlp3", "--spec", "default", "--level", "1",
            "-o", str(tmp_path / "cli.pt"))
    ticket = api.transform(tmp_path / "mlp2.pt", "mlp3")
    cli = api.load_ticket(tmp_path / "cli.pt")
    assert same(ticket.checkpoint, cli.checkpoint) and ticket.extra == cli.extra
    # The authors' MLP-2 -> MLP-3 map counts Linear layers, `0:0;1:1,2;2:3` (anchors: their maps): the hidden
    # layers 0 1 1, and the 300 -> 100 neck (their layer 2) carried over.
    assert ticket.extra["plan"] == "0:0;1:1,2" and ticket.extra["mapping"]["hidden.2.weight"] == "hidden.1.weight"
    with pytest.raises(ConfigError, match="unit 0 is fixed"):
        api.transform(source, "mlp1", "Drop 0")


@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp", "synflow"])
def test_a_scoring_baseline_keeps_the_count_it_is_given(dense: Path, data: dict, method: str) -> None:
    ticket = api.baseline(method, dense / "rewind.pt", keep=12_345, data=data, batch_size=32, iterations=2)
    assert ticket.mask.remaining == 12_345 and ticket.info["method"] == method
    assert ticket.mask.keys() == {"hidden.0.weight", "hidden.1.weight", "neck.weight", "fc.weight"}


def test_a_baseline_matched_to_a_ticket_is_the_commands(dense: Path, data: dict, tmp_path: Path) -> None:
    reference = api.imp_round(dense / "rewind.pt", dense / "final.pt", fraction=0.5)
    reference.save(tmp_path / "imp.pt")
    command("elth.baseline", "random", "--rewind", str(dense / "rewind.pt"), "--reference", str(tmp_path / "imp.pt"),
            "--level", "1", "-o", str(tmp_path / "cli.pt"))
    ticket = api.baseline("random", dense / "rewind.pt", tmp_path / "imp.pt")
    assert same(ticket.checkpoint, api.load_ticket(tmp_path / "cli.pt").checkpoint)
    assert api.baseline("reinit", dense / "rewind.pt", reference).mask == reference.mask
    with pytest.raises(ConfigError, match="keeps the reference ticket's own mask"):
        api.baseline("random", dense / "rewind.pt", reference, keep=10)


def test_a_trained_ticket_keeps_its_pruned_weights_at_zero_and_its_run_is_read_back(dense: Path, data: dict,
                                                                                     tmp_path: Path) -> None:
    ticket = api.transform(api.imp_round(dense / "rewind.pt", dense / "final.pt", fraction=0.5), "mlp3")
    out = dense.parents[2] / "mlp3" / "seed0" / "ett" / "from-mlp2" / "default" / "level1"
    config = {"dataset": {"name": "fashion-mnist", **data}, "recipes": {"mlp": RECIPE | {"epochs": 2}}}
    run = api.train_ticket(ticket, config=config, out=out, device="cpu")
    assert len(run.history) == 2  # the config's recipe for the MLP family
    for name, keep in ticket.mask.items():
        assert torch.all(run.final.state[name][~keep] == 0)
    table = api.runs(dense.parents[2], experiment="api")
    assert list(table.columns) == COLUMNS and len(table) == 2
    row = table[table["model"] == "mlp3"].iloc[0]
    assert (row["method"], row["source"], row["level"], row["test_acc"]) == ("ett", "mlp2", 1, run.test_acc)
    assert len(api.summary(table)) == 2
    with pytest.raises(ConfigError, match="either as recipe= .* or as config="):
        api.train_ticket(ticket, RECIPE, config=config)


def readme_example() -> str:
    """The code block of README.md's "Python API" section."""
    section = re.search(r"^## Python API\n(.*?)(?=^## )", (ROOT / "README.md").read_text(), re.M | re.S)
    assert section, "README.md has no '## Python API' section"
    blocks = re.findall(r"^```python\n(.*?)^```", section[1], re.M | re.S)
    assert len(blocks) == 1, "the Python API section shows one python block"
    return blocks[0]


def test_the_readmes_python_api_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {"mlp2", "mlp3"} <= set(re.findall(r"\bmlp\d\b", run.stdout))
