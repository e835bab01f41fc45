"""RigL: exact per-layer counts through every update, ERK and uniform densities (RigL's, with the
first layer dense, and uniform-all) that add up to the requested sparsity, RigL's drop/grow rule
and cosine schedule, grown weights that start at zero with no momentum, masks exactly applied
during training, and the CLI's run files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from elth.checkpoint import Checkpoint, build_for
from elth.data import DeviceData, Split, info
from elth.dst.__main__ import main
from elth.dst.distribution import DISTRIBUTIONS, densities, layer_counts, random_mask
from elth.errors import ConfigError
from elth.dst.rigl import RigL, Schedule, stretch
from elth.prune import Mask, prunable
from elth.recipe import Recipe
from elth.train import train

from conftest import ROOT, class_images
from test_dag import job_counts, micro_config, snakemake


def shapes_of(model: nn.Module) -> dict[str, torch.Size]:
    params = dict(model.named_parameters())
    return {n: params[n].shape for n in prunable(model)}


TINY = shapes_of(build_for("resnet8-w0.25", "fashion-mnist"))
TINY_TOTAL = sum(s.numel() for s in TINY.values())
STEM = "conv1.weight"  # the first prunable weight in model order: what RigL's uniform keeps dense


@settings(max_examples=30, deadline=None)
@given(kept=st.integers(1, TINY_TOTAL), distribution=st.sampled_from(DISTRIBUTIONS))
def test_layer_counts_add_up_to_exactly_the_requested_weights(kept: int, distribution: str) -> None:
    assume(distribution != "uniform" or kept >= TINY[STEM].numel())
    counts = layer_counts(TINY, kept, distribution, first=STEM)
    assert sum(counts.values()) == kept
    assert all(0 <= counts[n] <= s.numel() for n, s in TINY.items())
    d = densities(TINY, kept, distribution, first=STEM)
    assert all(abs(counts[n] - d[n] * TINY[n].numel()) < 1 + 1e-9 for n in TINY)  # each within rounding of its density


def test_erk_density_is_proportional_to_sum_over_product_of_dimensions_and_caps_at_dense() -> None:
    shapes = {"small": torch.Size([10, 10]), "big": torch.Size([100, 100])}
    # By hand: raw densities (10+10)/100 = 0.2 and (100+100)/10^4 = 0.02; 1,000 kept weights give
    # eps = 1000 / (0.2*100 + 0.02*10^4) = 1000/220, so 90.9 and 909.1 weights: the leftover one goes
    # to `small`, whose fractional part (0.91) is the larger.
    assert densities(shapes, 1000, "erk", first=None) == pytest.approx({"small": 0.2 * 1000 / 220,
                                                                        "big": 0.02 * 1000 / 220})
    assert layer_counts(shapes, 1000, "erk", first=None) == {"small": 91, "big": 909}
    # 5,000 kept: eps = 5000/220 would give `small` density 4.5, so it is dense and `big` keeps the rest.
    assert layer_counts(shapes, 5000, "erk", first=None) == {"small": 100, "big": 4900}
    assert layer_counts(shapes, 5050, "uniform-all", first="small") == {"small": 50, "big": 5000}


def test_uniform_is_rigls_with_the_first_layer_dense_and_uniform_all_prunes_it_too() -> None:
    """google-research/rigl's README: "Uniform sparsity distribution keeps first layer dense"; its
    ImageNet and CIFAR trainers leave the first conv unmasked by default (`first_layer_sparsity` 0:
    "layer is not pruned or masked"; `prune_first_layer` False). elth keeps the IMP ticket's count,
    so the other layers share what the dense stem leaves."""
    shapes = {"stem": torch.Size([10, 10]), "a": torch.Size([100, 10]), "b": torch.Size([100, 30])}
    # 900 of 4,100 kept: the stem's 100 dense, the other 4,000 weights at 800 / 4,000 = 0.2.
    assert densities(shapes, 900, "uniform", first="stem") == pytest.approx({"stem": 1.0, "a": 0.2, "b": 0.2})
    assert layer_counts(shapes, 900, "uniform", first="stem") == {"stem": 100, "a": 200, "b": 600}
    assert densities(shapes, 900, "uniform-all", first="stem") == pytest.approx(dict.fromkeys(shapes, 900 / 4100))
    # A stem left out of the mask (`unpruned`) is dense already: the masked layers share one density.
    assert densities({"a": shapes["a"], "b": shapes["b"]}, 800, "uniform", first="stem") == {"a": 0.2, "b": 0.2}
    with pytest.raises(ConfigError, match="first layer stem dense.*uniform-all or erk"):
        densities(shapes, 99, "uniform", first="stem")
    counts = layer_counts(TINY, round(0.1 * TINY_TOTAL), "uniform", first=STEM)
    assert counts[STEM] == TINY[STEM].numel() and sum(counts.values()) == round(0.1 * TINY_TOTAL)


def test_erk_on_a_resnet_gives_the_requested_total_sparsity_with_denser_small_layers() -> None:
    kept = round(0.2 * TINY_TOTAL)
    mask = random_mask(TINY, layer_counts(TINY, kept, "erk", first=STEM), torch.Generator().manual_seed(0))
    assert mask.remaining == kept and mask.sparsity == pytest.approx(0.8, abs=1 / TINY_TOTAL)
    layers = mask.layer_sparsity()
    # The stem's (4+1+3+3)/36 is 18 times the last conv's (16+16+3+3)/2304: it keeps far more of its weights.
    assert layers["conv1.weight"] < layers["layer3.0.conv2.weight"]


def test_the_random_start_is_seeded_and_keeps_each_layers_count() -> None:
    counts = layer_counts(TINY, 500, "uniform", first=STEM)
    a, b = (random_mask(TINY, counts, torch.Generator().manual_seed(3)) for _ in range(2))
    assert a == b and a != random_mask(TINY, counts, torch.Generator().manual_seed(4))
    assert {n: int(a[n].sum()) for n in a} == counts


def test_drop_fraction_follows_the_cosine_and_stops_at_the_stop_fraction() -> None:
    schedule = Schedule(total_steps=1000, delta_t=100, alpha=0.3, stop=0.75)
    assert schedule.end == 750
    assert schedule.drop_fraction(0) == pytest.approx(0.3)
    assert schedule.drop_fraction(375) == pytest.approx(0.15)
    assert schedule.drop_fraction(700) == pytest.approx(0.15 * (1 + math.cos(math.pi * 700 / 750)))
    assert schedule.drop_fraction(750) == 0.0 and schedule.drop_fraction(900) == 0.0
    assert [t for t in range(1000) if schedule.is_update(t)] == [100, 200, 300, 400, 500, 600, 700]
    assert schedule.updates() == 7


def layer(active: int = 12, seed: int = 0) -> tuple[nn.Parameter, torch.Tensor]:
    """A 4x6 weight with `active` entries of distinct magnitudes kept, its mask factors, and a
    gradient that is 0 on the active entries and large and distinct on the inactive ones."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(24)
    mask[torch.randperm(24, generator=g)[:active]] = 1.0
    weight = nn.Parameter((torch.randperm(24, generator=g).float() + 1.0) * mask)
    weight.grad = (torch.randperm(24, generator=g).float() + 100.0) * (1.0 - mask)
    return weight, mask


def test_an_update_drops_the_smallest_active_weights_and_grows_the_largest_gradients() -> None:
    weight, mask = layer()
    schedule = Schedule(total_steps=100, delta_t=10)
    moved = int(12 * schedule.drop_fraction(10))
    active, inactive = mask.bool(), ~mask.bool()
    smallest = sorted(torch.nonzero(active).flatten().tolist(), key=lambda i: weight[i].item())[:moved]
    largest = sorted(torch.nonzero(inactive).flatten().tolist(), key=lambda i: -weight.grad[i].item())[:moved]
    before = mask.clone()
    RigL(schedule)(10, [weight], [mask], torch.optim.SGD([weight], lr=0.1))
    assert moved == 3
    assert set(torch.nonzero(before.bool() & ~mask.bool()).flatten().tolist()) == set(smallest)
    assert set(torch.nonzero(~before.bool() & mask.bool()).flatten().tolist()) == set(largest)


def test_the_mask_is_left_alone_between_updates_and_after_the_stop_fraction() -> None:
    weight, mask = layer()
    before = mask.clone()
    rigl = RigL(Schedule(total_steps=100, delta_t=10))
    for step in (0, 5, 11, 80, 90):  # not a multiple of ΔT, or at or past T_end = 75
        rigl(step, [weight], [mask], torch.optim.SGD([weight], lr=0.1))
    assert torch.equal(mask, before)


@settings(max_examples=25, deadline=None)
@given(densities_=st.lists(st.floats(0.02, 1.0), min_size=3, max_size=3), alpha=st.floats(0.0, 1.0),
       seed=st.integers(0, 10_000))
def test_every_update_keeps_every_layers_count_exactly(densities_: list[float], alpha: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    shapes = [(8, 4, 3, 3), (10, 7), (5, 5)]
    weights = [nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    weights[0].data = weights[0].data.contiguous(memory_format=torch.channels_last)  # as the engine lays convs out
    masks = [(torch.rand(s, generator=g) < d).float() for s, d in zip(shapes, densities_)]
    counts = [int(m.sum()) for m in masks]
    rigl = RigL(Schedule(total_steps=100, delta_t=1, alpha=alpha, stop=1.0))
    optimizer = torch.optim.SGD(weights, lr=0.1)
    for step in range(1, 6):
        for w, m in zip(weights, masks):
            w.data.mul_(m)
            w.grad = torch.empty_like(w).copy_(torch.randn(w.shape, generator=g))  # in the weight's layout
        rigl(step, weights, masks, optimizer)
        assert [int(m.sum()) for m in masks] == counts
        assert all(bool(((m == 0) | (m == 1)).all()) for m in masks)


def test_grown_weights_start_at_zero_with_zero_momentum_while_the_others_take_their_step() -> None:
    weight, mask = layer()
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9, weight_decay=1e-3)
    optimizer.step()  # a first step makes momentum buffers, non-zero at the inactive weights too
    weight.data.mul_(mask)
    buffer = optimizer.state[weight]["momentum_buffer"]
    assert bool((buffer[mask == 0] != 0).all())
    weight.grad = (torch.arange(24.0) + 100.0) * (1.0 - mask) + 0.5 * mask
    before_mask, before_weight = mask.clone(), weight.detach().clone()
    RigL(Schedule(total_steps=100, delta_t=10))(10, [weight], [mask], optimizer)
    optimizer.step()
    weight.data.mul_(mask)  # the engine applies the factors after every step
    grown = ~before_mask.bool() & mask.bool()
    stayed = before_mask.bool() & mask.bool()
    assert int(grown.sum()) == 3
    assert bool((weight[grown] == 0).all()) and bool((buffer[grown] == 0).all())
    assert bool((weight[stayed] != before_weight[stayed]).all())


def tiny_data(n_train: int = 96, n_test: int = 40) -> DeviceData:
    def split(n: int, seed: int) -> Split:
        images, labels = class_images(n, 28, 1, seed)
        return Split(torch.from_numpy(images), torch.from_numpy(labels).long())
    return DeviceData(split(n_train, 0), split(n_test, 1), info("fashion-mnist"), (), torch.device("cpu"))


class Recording:
    """Wraps RigL to see the engine's mask factors and the per-layer counts after every call."""

    def __init__(self, rigl: RigL) -> None:
        self.rigl, self.masks, self.counts, self.moves = rigl, None, [], 0

    def __call__(self, step: int, weights: list, masks: list, optimizer: torch.optim.Optimizer) -> None:
        before = [m.clone() for m in masks]
        self.rigl(step, weights, masks, optimizer)
        self.masks = masks
        self.counts.append([int(m.sum()) for m in masks])
        self.moves += sum(int((a != b).sum()) for a, b in zip(before, masks))


def test_pruned_weights_are_zero_before_every_forward_during_rigl_training() -> None:
    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    counts = layer_counts(TINY, round(0.3 * TINY_TOTAL), "uniform", first=STEM)
    mask = random_mask(TINY, counts, torch.Generator().manual_seed(0))
    recipe = Recipe(epochs=3, batch_size=16, lr=0.1, momentum=0.9, weight_decay=1e-3, milestones=(2,))
    recording = Recording(RigL(Schedule(total_steps=18, delta_t=2)))
    params = dict(model.named_parameters())
    checks: list[bool] = []

    def check(*_: object) -> None:
        current = recording.masks or [mask[n].float() for n in mask]
        checks.extend(bool((params[n][f == 0] == 0).all()) for n, f in zip(mask, current))

    model.register_forward_pre_hook(check)  # before every step's forward and every evaluation
    result = train(model, tiny_data(), recipe, seed=0, mask=mask, rewire=recording)
    assert checks and all(checks)
    assert all(c == list(counts.values()) for c in recording.counts) and len(recording.counts) == 18
    assert recording.moves > 0 and result.mask != mask
    assert {n: int(result.mask[n].sum()) for n in result.mask} == counts


def test_an_interrupted_rigl_run_resumes_to_the_same_weights_and_mask(tmp_path: Path) -> None:
    recipe = Recipe(epochs=3, batch_size=16, lr=0.1, momentum=0.9, milestones=(2,))
    mask = random_mask(TINY, layer_counts(TINY, round(0.3 * TINY_TOTAL), "erk", first=STEM),
                       torch.Generator().manual_seed(0))

    def run(log=None, resume: Path | None = None):
        model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
        result = train(model, tiny_data(), recipe, seed=0, mask=mask, rewire=RigL(Schedule(total_steps=18, delta_t=2)),
                       log=log, resume=resume, fingerprint="rigl")
        return model, result

    def interrupt(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt  # after epoch 1's resume file, before epoch 2's
    straight, expected = run()
    with pytest.raises(KeyboardInterrupt):
        run(interrupt, tmp_path / "resume.pt")
    epochs: list[int] = []
    resumed, result = run(lambda row: epochs.append(row["epoch"]), tmp_path / "resume.pt")
    assert epochs == [2, 3] and result.mask == expected.mask and result.mask != mask
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_stretch_scales_epochs_milestones_and_warmup_alike() -> None:
    recipe = Recipe(epochs=90, batch_size=1024, lr=0.4, milestones=(30, 60, 80), warmup="5ep", rewind="5ep")
    five = stretch(recipe, 5)
    assert (five.epochs, five.milestones, five.warmup) == (450, (150, 300, 400), "25ep")
    assert stretch(recipe, 1) == recipe
    assert stretch(Recipe(epochs=2, batch_size=8, lr=0.1, warmup="10it"), 3).warmup == "30it"


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "elth.dst", *args], capture_output=True, text=True, cwd=ROOT)


def common(fashion_root: Path, out: Path) -> list[str]:
    return ["--model", "resnet8-w0.25", "--dataset", "fashion-mnist", "--seed", "0", "--delta-t", "2",
            "--recipe", '{"epochs": 2, "batch_size": 32, "lr": 0.05, "milestones": [1]}',
            "--data", json.dumps({"root": str(fashion_root), "augment": []}), "--out", str(out)]


def test_the_cli_trains_at_the_requested_sparsity_and_writes_a_run(fashion_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "rigl"
    run = run_cli(common(fashion_root, out) + ["--sparsity", "0.8", "--distribution", "erk"])
    assert run.returncode == 0, run.stderr
    final = Checkpoint.load(out / "final.pt")
    assert final.mask.remaining == round(0.2 * TINY_TOTAL) and final.meta["method"] == "rigl"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "rigl" and summary["sparsity"] == pytest.approx(final.mask.sparsity)
    assert summary["sparsity"] == pytest.approx(0.8, abs=1 / TINY_TOTAL) and summary["epochs"] == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3 and not (out / "resume.pt").exists()


def test_the_cli_matches_a_tickets_count_and_level_at_a_multiple_of_the_epochs(fashion_root: Path, tmp_path: Path) -> None:
    net = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    g = torch.Generator().manual_seed(1)
    mask = Mask({n: torch.rand(s, generator=g) < 0.37 for n, s in TINY.items()})
    ticket = Checkpoint("resnet8-w0.25", "fashion-mnist", 3, net.state_dict(), mask, {"method": "imp", "level": 3, "seed": 0})
    ticket.save_ticket(tmp_path / "ticket.pt")
    out = tmp_path / "rigl2x"
    main(common(fashion_root, out) + ["--like", str(tmp_path / "ticket.pt"), "--multiplier", "2"])  # in-process: quicker
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["method"], summary["level"], summary["epochs"]) == ("rigl2x", 3, 4)
    final = Checkpoint.load(out / "final.pt").mask
    assert final.remaining == ticket.mask.remaining
    # The default distribution is RigL's uniform: the stem starts dense and, dense, is never rewired;
    # every other layer keeps its share of the rest (RigL moves connections, never their number).
    assert bool(final[STEM].all())
    rest = (final.remaining - TINY[STEM].numel()) / (TINY_TOTAL - TINY[STEM].numel())
    assert all(abs(int(final[n].sum()) - rest * final[n].numel()) < 1 for n in final if n != STEM)


def test_the_cli_refuses_a_ticket_pruned_over_other_layers(fashion_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    net = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    Checkpoint("resnet8-w0.25", "fashion-mnist", 3, net.state_dict(), Mask.ones(net, list(TINY))).save_ticket(tmp_path / "t.pt")
    with pytest.raises(SystemExit) as exit_:
        main(common(fashion_root, tmp_path / "bad") + ["--like", str(tmp_path / "t.pt"), "--unpruned", "fc.weight"])
    assert exit_.value.code == 2 and "--unpruned" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_a_rigl_section_adds_one_run_per_model_level_and_multiplier_and_a_flops_table_per_pair(
        fashion_root: Path, tmp_path: Path) -> None:
    path = micro_config(fashion_root, tmp_path)
    config = yaml.safe_load(path.read_text())
    config["rigl"] = {"multipliers": [1, 5], "distribution": "erk"}
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "-p", "--configfile", str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    assert counts["rigl"] == 2 * 2 * 2  # two models, two levels, 1x and 5x
    assert counts["flops"] == 1  # the one configured pair
    assert "dst/rigl5x/level2" in run.stdout and "--multiplier 5" in run.stdout and "--distribution erk" in run.stdout
    assert "results/tables/flops/resnet14-w0.25-to-resnet8-w0.25.md" in run.stdout
