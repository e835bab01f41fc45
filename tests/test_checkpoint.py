"""Files between stages: a ticket round-trips, and writes are atomic. (Refusals of corrupt,
unsafe or foreign files are in test_bad_input.py.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from elth import files
from elth.checkpoint import Checkpoint, build_for
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
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_get_the_mode_the_umask_gives_as_open_does(tmp_path: Path, umask: int) -> None:
    """Atomic writes go through a temporary file; tempfile.mkstemp would create it 0600 and the renamed
    result would stay unreadable to a shared group whatever its umask. Every kind of output (text, JSON,
    checkpoint) ends with the mode a plain open() gives under the same umask."""
    old = os.umask(umask)
    try:
        (tmp_path / "plain").write_text("x")
        files.write_text(tmp_path / "a.csv", "x\n")
        files.write_json(tmp_path / "a.json", {"x": 1})
        ticket().save(tmp_path / "t.pt", "ticket")
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert expected == 0o666 & ~umask
    for name in ("a.csv", "a.json", "t.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
