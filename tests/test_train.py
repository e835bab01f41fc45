"""Training: pruned weights stay exactly zero, the rewind point is the state after r steps, the
schedule is Table 1's, and a run is a function of its seed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elth import io
from elth.checkpoint import Checkpoint
from elth.data import DeviceData, Split, info
from elth.errors import ConfigError
from elth.models.registry import build
from elth.prune import Mask, prunable
from elth.recipe import Recipe, to_steps
from elth.train import train

from conftest import ROOT, class_images


def tiny_data(n_train: int = 96, n_test: int = 40, augment: tuple[str, ...] = ("crop", "flip")) -> DeviceData:
    def split(n: int, seed: int) -> Split:
        images, labels = class_images(n, 28, 1, seed)
        return Split(torch.from_numpy(images), torch.from_numpy(labels).long())
    return DeviceData(split(n_train, 0), split(n_test, 1), info("fashion-mnist"), augment, torch.device("cpu"))


def tiny_model(seed: int = 0):
    return build("resnet8-w0.25", in_channels=1, num_classes=10, seed=seed)


def random_mask(model, density: float, seed: int) -> Mask:
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return Mask({n: torch.rand(params[n].shape, generator=g) < density for n in prunable(model)})


RECIPE = Recipe(epochs=2, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-3, milestones=(1,))


@settings(max_examples=6, deadline=None)
@given(density=st.floats(0.05, 0.9), seed=st.integers(0, 1000))
def test_pruned_weights_are_exactly_zero_after_every_step_with_momentum_and_weight_decay(density: float, seed: int) -> None:
    model = tiny_model(seed)
    mask = random_mask(model, density, seed)
    params = dict(model.named_parameters())
    seen = []

    def check(*_: object) -> None:
        for n in mask:
            seen.append(bool((params[n][~mask[n]] == 0.0).all()))

    model.register_forward_pre_hook(check)  # runs before every step's forward and every evaluation
    train(model, tiny_data(), RECIPE, seed=seed, mask=mask)
    assert seen and all(seen)
    for n in mask:
        assert bool((params[n][~mask[n]] == 0.0).all())
        if mask[n].sum() > 1:
            assert bool((params[n][mask[n]] != 0.0).any()), "unpruned weights should train"


def test_rewind_snapshot_is_the_state_after_that_many_steps() -> None:
    data = tiny_data()
    full = train(tiny_model(), data, RECIPE, seed=1, snapshot_step=2)
    # Two steps by hand on the same batches (3 steps per epoch: the snapshot falls inside epoch 1).
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, foreach=True)
    batches = data.epoch(1, 0, 32)
    for _ in range(2):
        x, y = next(batches)
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in model.state_dict().items():
        assert torch.allclose(full.snapshot[k], v, atol=1e-6), k


def test_training_is_a_function_of_the_seed() -> None:
    a, b = tiny_model(), tiny_model()
    train(a, tiny_data(), RECIPE, seed=5)
    train(b, tiny_data(), RECIPE, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_retraining_from_a_step_inside_an_epoch_runs_the_rest_of_the_schedule() -> None:
    history = train(tiny_model(), tiny_data(), RECIPE, seed=0, start_step=4).history
    assert [row["epoch"] for row in history] == [2]
    assert history[0]["step"] == 6 and history[0]["lr"] == pytest.approx(0.01)


def test_training_learns_a_learnable_task() -> None:
    recipe = Recipe(epochs=6, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-4)
    history = train(tiny_model(), tiny_data(192, 60, ()), recipe, seed=0).history
    assert history[-1]["test_acc"] > 0.3 and history[-1]["train_loss"] < history[0]["train_loss"]


def test_step_schedule_and_linear_warmup() -> None:
    recipe = Recipe(epochs=90, batch_size=1, lr=0.4, milestones=(30, 60, 80), warmup="5ep")
    spe = 10
    assert recipe.lr_at(0, spe) == pytest.approx(0.4 / 50)
    assert recipe.lr_at(49, spe) == pytest.approx(0.4)
    assert recipe.lr_at(299, spe) == pytest.approx(0.4)
    assert recipe.lr_at(300, spe) == pytest.approx(0.04)
    assert recipe.lr_at(800, spe) == pytest.approx(0.0004)


def test_durations_count_steps_or_epochs() -> None:
    assert to_steps("1000it", 390) == 1000 and to_steps("5ep", 390) == 1950
    with pytest.raises(ConfigError, match="'1000'"):
        to_steps("1000", 390)


@pytest.mark.parametrize("bad,message", [
    ({"milestones": (120, 80)}, "increasing"), ({"milestones": (200,)}, "within"), ({"rewind": "10 steps"}, "duration"),
    ({"lr": -0.1}, "positive"),
])
def test_impossible_recipes_are_refused(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Recipe.from_dict({"epochs": 160, "batch_size": 128, "lr": 0.1, **bad})


def test_rewind_point_past_the_end_is_refused() -> None:
    with pytest.raises(ConfigError, match="rewind point"):
        Recipe(epochs=1, batch_size=1, lr=0.1, rewind="5ep").rewind_step(100)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_resumes_from_its_last_epoch_to_the_same_weights(fashion_root: Path, tmp_path: Path, sig: int) -> None:
    recipe = '{"epochs": 12, "batch_size": 32, "lr": 0.05, "milestones": [8], "rewind": "3it"}'
    data = json.dumps({"root": str(fashion_root), "augment": ["crop", "flip"]})
    cmd = [sys.executable, "-m", "elth.train", "--model", "resnet8-w0.25", "--dataset", "fashion-mnist", "--seed", "0",
           "--recipe", recipe, "--data", data, "--threads", "1", "--out"]
    subprocess.run(cmd + [str(tmp_path / "straight")], check=True, capture_output=True, cwd=ROOT)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + [str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    while not (killed / "resume.pt").exists():
        assert proc.poll() is None, "the run finished before it could be interrupted"
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait()
    assert io.load(killed / "resume.pt", "resume")["step"] < 12 * 8
    assert not (killed / "final.pt").exists() and not (killed / "summary.json").exists()

    rerun = subprocess.run(cmd + [str(killed)], check=True, capture_output=True, text=True, cwd=ROOT)
    assert "resuming from" in rerun.stdout and not (killed / "resume.pt").exists()
    for name in ("final.pt", "rewind.pt"):
        a = Checkpoint.load(tmp_path / "straight" / name).state
        b = Checkpoint.load(killed / name).state
        assert all(torch.equal(a[k], b[k]) for k in a), name
    metrics = [pd.read_csv(d / "metrics.csv").drop(columns=["seconds", "train_seconds"]) for d in (tmp_path / "straight", killed)]
    pd.testing.assert_frame_equal(*metrics)


def test_a_resume_file_of_another_configuration_is_ignored(tmp_path: Path) -> None:
    model, data = tiny_model(), tiny_data()
    resume = tmp_path / "resume.pt"
    short = Recipe(epochs=2, batch_size=32, lr=0.1)
    train(model, data, short, seed=0, resume=resume, fingerprint="a")
    assert resume.exists()
    fresh = train(tiny_model(), data, short, seed=0, resume=resume, fingerprint="b")
    reference = train(tiny_model(), data, short, seed=0)
    assert [r["train_loss"] for r in fresh.history] == [r["train_loss"] for r in reference.history]


def test_the_compile_path_trains_alone_and_stacked_as_the_eager_one_does() -> None:
    """`engine.compile` wraps the forward in torch.compile: on the CPU it needs a C++ compiler
    (inductor's backend); without one the test says so and skips. A compiled run ends with the
    eager run's weights to float tolerance, its pruned weights exactly zero, alone and stacked."""
    import shutil

    from elth.train import train_together

    if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
        pytest.skip("no C++ compiler on PATH: torch.compile's CPU backend (inductor) needs one")
    recipe = Recipe(epochs=1, batch_size=32, lr=0.05)
    masks = [random_mask(tiny_model(s), 0.5, s) for s in (0, 1)]
    eager, compiled = tiny_model(0), tiny_model(0)
    train(eager, tiny_data(), recipe, seed=0, mask=masks[0])
    train(compiled, tiny_data(), recipe, seed=0, mask=masks[0], compile=True)
    stacked_eager, stacked = [tiny_model(s) for s in (0, 1)], [tiny_model(s) for s in (0, 1)]
    train_together(stacked_eager, tiny_data(), recipe, seeds=[0, 1], masks=masks)
    train_together(stacked, tiny_data(), recipe, seeds=[0, 1], masks=masks, compile=True)
    for ref, got, mask in ((eager, compiled, masks[0]), *zip(stacked_eager, stacked, masks)):
        for (name, a), b in zip(ref.state_dict().items(), got.state_dict().values()):
            assert torch.allclose(a.float(), b.float(), atol=1e-3, rtol=1e-3), name  # fused kernels round otherwise
        params = dict(got.named_parameters())
        assert all(bool((params[k][~mask[k]] == 0).all()) for k in mask)
