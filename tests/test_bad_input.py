"""Bad input and untrusted files: each gets one message naming the file or key and the fix, and
nothing already computed is overwritten.

37 bad inputs are tried here (a test below recounts them): 7 refusals of the checkpoint API, 27
through the command-line tools (9 bad files or arguments for each of the three that read tickets
and checkpoints), and 3 study configs through the DAG.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_mnist_like
from test_dag import micro_config, snakemake

from elth import baseline, io, train
from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError
from elth.prune import Mask, prunable
from elth.transform import __main__ as transform_cli


def ticket(model: str = "resnet8-w0.25", dataset: str = "fashion-mnist", step: int = 7) -> Checkpoint:
    """A dense-mask ticket; the CLI cases use resnet14-w0.25, which the default ETT can stretch."""
    net = build_for(model, dataset, seed=0)
    mask = Mask.ones(net, prunable(net))
    return Checkpoint(model, dataset, step, net.state_dict(), mask, {"method": "imp", "level": 1})


class Payload:
    def __reduce__(self):  # a pickle that would run code when loaded
        return (Path.touch, (Path("/tmp/elth-pwned"),))


# The checkpoint API.


def test_a_truncated_checkpoint_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    ticket().save(path, "ticket")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt, truncated") as err:
        Checkpoint.load(path, "ticket")
    assert str(path) in str(err.value) and "rerun" in str(err.value)


def test_a_pickle_that_runs_code_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": io.FORMAT, "kind": "ticket", "state": Payload()}, path)
    Path("/tmp/elth-pwned").unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        Checkpoint.load(path, "ticket")
    assert not Path("/tmp/elth-pwned").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_plain_pickle_is_not_an_elth_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an elth file"):
        Checkpoint.load(path, "ticket")
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError):
        Checkpoint.load(path, "ticket")


def test_a_ticket_of_another_model_or_dataset_is_refused(tmp_path: Path) -> None:
    ticket().save(tmp_path / "t.pt", "ticket")
    with pytest.raises(CheckpointError, match="expected resnet14"):
        Checkpoint.load(tmp_path / "t.pt", "ticket", model="resnet14")
    with pytest.raises(CheckpointError, match="made on fashion-mnist, expected cifar10"):
        Checkpoint.load(tmp_path / "t.pt", "ticket", dataset="cifar10")


def test_a_checkpoint_is_not_a_ticket(tmp_path: Path) -> None:
    t = ticket()
    Checkpoint(t.model, t.dataset, 0, t.state).save(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="expected a 'ticket'"):
        Checkpoint.load(tmp_path / "c.pt", "ticket")


def test_a_mask_whose_shapes_do_not_fit_the_model_is_refused() -> None:
    t = ticket()
    bad = t.mask.to_dict()
    bad["conv1.weight"] = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(CheckpointError, match="conv1.weight.*belongs to another model"):
        Mask(bad).check(build_for(t.model, t.dataset))


def test_weights_that_do_not_fit_the_model_are_refused() -> None:
    t = ticket()
    with pytest.raises(CheckpointError, match="does not fit resnet14"):
        Checkpoint("resnet14", t.dataset, 0, t.state).build_model()


# The command-line tools. Each bad file takes the place of one good input; the tool must exit
# with status 2 and one message naming the file (or argument), and the outputs a previous run
# left in the output directory must be byte for byte what they were.


CLI_MODEL = "resnet14-w0.25"


def truncated(path: Path) -> str:
    ticket(CLI_MODEL).save(path, "ticket")
    path.write_bytes(path.read_bytes()[:300])
    return "corrupt, truncated"


def random_bytes(path: Path) -> str:
    path.write_bytes(bytes(range(256)) * 8)
    return "cannot be loaded"


def empty(path: Path) -> str:
    path.write_bytes(b"")
    return "cannot be loaded"


def code_pickle(path: Path) -> str:
    torch.save({"format": io.FORMAT, "kind": "ticket", "state": Payload()}, path)
    return "refuses to unpickle"


def missing(path: Path) -> str:
    return "file not found"


def other_dataset(path: Path) -> str:
    ticket(CLI_MODEL, dataset="cifar10").save(path, "ticket")
    return "cifar10"


def other_family(path: Path) -> str:
    ticket(model="mlp2").save(path, "ticket")
    return "mlp2"


def wrong_kind(path: Path) -> str:
    t = ticket(CLI_MODEL)
    Checkpoint(t.model, t.dataset, 0, t.state).save(path)
    return "expected a 'ticket'"


def mask_misfit(path: Path) -> str:
    t = ticket(CLI_MODEL)
    bad = t.mask.to_dict()
    bad["fc.weight"] = torch.ones(3, 3, dtype=torch.bool)
    Checkpoint(t.model, t.dataset, t.step, t.state, Mask(bad), t.meta).save(path, "ticket")
    return "fc.weight"


BAD_FILES: dict[str, Callable[[Path], str]] = {f.__name__: f for f in (
    truncated, random_bytes, empty, code_pickle, missing, other_dataset, other_family, wrong_kind, mask_misfit)}


def run_train(bad: Path, out: Path, data: Path) -> None:
    train.main(["--model", CLI_MODEL, "--dataset", "fashion-mnist", "--seed", "0", "--ticket", str(bad),
                "--recipe", json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.1}),
                "--data", json.dumps({"root": str(data)}), "--device", "cpu", "--out", str(out)])


def run_transform(bad: Path, out: Path, data: Path) -> None:
    transform_cli.main([str(bad), "--to", "resnet20-w0.25", "--source", CLI_MODEL, "--dataset", "fashion-mnist",
                        "-o", str(out / "ticket.pt")])


def run_baseline(bad: Path, out: Path, data: Path) -> None:
    rewind = out.parent / "rewind.pt"
    good = ticket(CLI_MODEL, step=0)
    Checkpoint(good.model, good.dataset, 0, good.state).save(rewind)
    baseline.main(["snip", "--rewind", str(rewind), "--reference", str(bad), "--data", json.dumps({"root": str(data)}),
                   "-o", str(out / "ticket.pt")])


TOOLS = {"train": run_train, "transform": run_transform, "baseline": run_baseline}


@pytest.mark.parametrize("bad", BAD_FILES)
@pytest.mark.parametrize("tool", TOOLS)
def test_a_bad_file_stops_the_tool_with_one_message_and_keeps_earlier_outputs(
        tool: str, bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_mnist_like(data / "FashionMNIST" / "raw", n_train=128, n_test=64)
    path = tmp_path / "in" / f"{bad}.pt"
    path.parent.mkdir()
    expected = BAD_FILES[bad](path)
    out = tmp_path / "out"
    out.mkdir()
    earlier = {name: f"earlier {name}".encode() for name in ("final.pt", "summary.json", "ticket.pt", "ticket.json")}
    for name, content in earlier.items():
        (out / name).write_bytes(content)
    Path("/tmp/elth-pwned").unlink(missing_ok=True)
    with pytest.raises(SystemExit) as exit_:
        TOOLS[tool](path, out, data)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    message = err.strip().splitlines()[-1]
    assert message.startswith("elth: error:") and "Traceback" not in err
    assert re.search(re.escape(expected), message, re.IGNORECASE), message
    assert str(path) in message or path.name in message or expected in ("mlp2", "cifar10", "fc.weight"), message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
    assert not Path("/tmp/elth-pwned").exists()


# Study configs through the DAG: a bad key stops the run before any job, naming it; a missing
# dataset stops its first job, whose log (shown) names the path and the ways to provide it.


CONFIG_CASES = {
    "typo": (lambda c: c["pruning"].update(levles=3), "levles"),
    "impossible-transfer": (lambda c: c["ett"][0].update(spec="Append 9"), "ett[0]"),
    "missing-dataset": (lambda c: c["dataset"].update(name="mnist", root="/nonexistent/elth-data"),
                        "/nonexistent/elth-data/MNIST/raw"),
}


@pytest.mark.parametrize("edit,named", CONFIG_CASES.values(), ids=CONFIG_CASES)
def test_a_bad_study_config_stops_the_dag_naming_the_key(edit, named: str, fashion_root: Path, tmp_path: Path) -> None:
    path = micro_config(fashion_root, tmp_path)
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    target = f"results/{config['dataset']['name']}/dataset.json"
    run = snakemake(tmp_path, target, "--cores", "1", "--show-failed-logs",
                    "--configfile", str(path))
    assert run.returncode != 0
    assert named in run.stderr + run.stdout
    assert not (tmp_path / target).exists()


def test_the_docstring_counts_the_bad_inputs_tried() -> None:
    plain = [name for name, f in globals().items() if name.startswith("test_")
             and not any(mark.name == "parametrize" for mark in getattr(f, "pytestmark", []))]
    tried = len(plain) - 1 + len(BAD_FILES) * len(TOOLS) + len(CONFIG_CASES)
    assert int(re.search(r"(\d+) bad inputs", __doc__)[1]) == tried
