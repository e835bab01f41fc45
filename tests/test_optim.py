"""elth.optim: torch.optim's SGD and AdamW without the import of torch._dynamo their first call costs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from elth import optim


def trained(cls: type, steps: int = 6, resume_at: int | None = None, **settings) -> tuple[dict, dict]:
    """A tiny model's weights and the optimizer's state after `steps` steps of `cls`; with `resume_at`, the
    optimizer is rebuilt there from its state_dict, as a resumed run does."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    opt = cls(model.parameters(), foreach=True, **settings)
    for step in range(steps):
        if step == resume_at:
            state = opt.state_dict()
            opt = cls(model.parameters(), foreach=True, **settings)
            opt.load_state_dict(state)
        for group in opt.param_groups:
            group["lr"] = settings["lr"] * (1 - step / steps)  # as the engine sets each step's rate
        x = torch.randn(32, 8, generator=torch.Generator().manual_seed(step))
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), torch.arange(32) % 4).backward()
        opt.step()
    return model.state_dict(), opt.state_dict()


@pytest.mark.parametrize("ours,theirs,settings", [
    (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}),
    (optim.AdamW, torch.optim.AdamW, {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.05}),
], ids=["sgd-momentum", "sgd-plain", "adamw"])
def test_the_eager_optimizers_compute_exactly_what_torch_optim_computes(ours, theirs, settings: dict) -> None:
    mine, expected = trained(ours, **settings), trained(theirs, **settings)
    for name, tensor in expected[0].items():
        assert torch.equal(mine[0][name], tensor), name
    for index, state in expected[1]["state"].items():
        for key, value in state.items():
            assert torch.equal(mine[1]["state"][index][key], value), (index, key)
    resumed = trained(ours, resume_at=3, **settings)
    assert all(torch.equal(resumed[0][n], t) for n, t in expected[0].items())


def test_a_training_run_never_imports_torch_dynamo() -> None:
    """torch.optim's own SGD imports torch._dynamo at its first call (1-2 s of every job's start)."""
    code = """
import sys, torch
from elth.checkpoint import build_for
from elth.data import DeviceData, Split, info
from elth.recipe import Recipe
from elth.train import train
split = Split(torch.zeros(64, 1, 28, 28, dtype=torch.uint8), torch.arange(64) % 10)
data = DeviceData(split, split, info("fashion-mnist"), (), torch.device("cpu"))
for optimizer in ("sgd", "adamw"):
    train(build_for("mlp1", "fashion-mnist", seed=0), data, Recipe(epochs=1, batch_size=32, lr=0.1,
          optimizer=optimizer), seed=0)
print("torch._dynamo" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"


def test_the_eager_step_is_torchs_even_after_a_torch_optimizer_hooked_its_class() -> None:
    """A torch.optim.SGD's constructor wraps its class's `step` in a profiling hook; the eager one still
    finds the step underneath and computes the same."""
    torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    settings = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}
    mine, expected = trained(optim.SGD, **settings), trained(torch.optim.SGD, **settings)
    assert all(torch.equal(mine[0][n], t) for n, t in expected[0].items())
