"""Files between stages: atomic writes, and clear refusals of corrupt, unsafe or foreign files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from elth import io
from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError
from elth.prune import Mask, prunable


def ticket(model: str = "resnet8-w0.25", dataset: str = "fashion-mnist") -> Checkpoint:
    net = build_for(model, dataset, seed=0)
    mask = Mask.ones(net, prunable(net))
    return Checkpoint(model, dataset, 7, net.state_dict(), mask, {"method": "imp", "level": 1})


def test_a_ticket_round_trips_with_its_mask_and_meta(tmp_path: Path) -> None:
    t = ticket()
    t.save(tmp_path / "t.pt", "ticket")
    back = Checkpoint.load(tmp_path / "t.pt", "ticket", model=t.model, dataset=t.dataset)
    assert back.step == 7 and back.meta == t.meta and back.mask == t.mask
    assert all(torch.equal(back.state[k], v) for k, v in t.state.items())
    back.build_model()


def test_an_interrupted_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_checkpoint_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    ticket().save(path, "ticket")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt, truncated") as err:
        Checkpoint.load(path, "ticket")
    assert str(path) in str(err.value) and "rerun" in str(err.value)


class Payload:
    def __reduce__(self):  # a pickle that would run code when loaded
        return (Path.touch, (Path("/tmp/elth-pwned"),))


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
