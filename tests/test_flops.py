"""The FLOPs accountant: a hand-counted tiny net, sparse layers at their density, the three-pass
training cost and RigL's dense-gradient steps, and the paper's Sec 4.6 numbers out of the real
ImageNet ResNets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from elth.dst.rigl import Schedule
from elth.flops import comparison, ett, forward, imp, layer_flops, main, mask_densities, rigl, sparse_run, uniform
from elth.prune import Mask


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False),   # 0
        nn.ReLU(),
        nn.Conv2d(2, 4, 3, stride=2, padding=1),     # 2
        nn.Conv2d(4, 4, 1, groups=2, bias=False),    # 3
        nn.Flatten(),
        nn.Linear(16, 3),                            # 5
    )


# By hand, for one 1x4x4 input:
# - 0: 2x4x4 = 32 outputs, each summing 1x3x3 = 9 inputs: 288 multiply-adds, 576 FLOPs.
# - 2: stride 2 gives 4x2x2 = 16 outputs, each summing 2x3x3 = 18: 288 multiply-adds, 576 FLOPs
#   (its bias additions are not counted).
# - 3: 4x2x2 = 16 outputs, each summing its group's 2 channels x 1x1 = 2: 32 multiply-adds, 64 FLOPs.
# - 5: 3 outputs, each summing 16: 48 multiply-adds, 96 FLOPs.
HAND = {"0.weight": 576, "2.weight": 576, "3.weight": 64, "5.weight": 96}


def test_dense_count_matches_the_hand_count_of_a_tiny_conv_net() -> None:
    assert layer_flops(tiny_net(), (1, 4, 4)) == HAND
    assert forward(HAND) == 1312


def test_a_masked_layer_costs_its_density_times_its_dense_flops_and_the_rest_stay_dense() -> None:
    net = tiny_net()
    kept0 = torch.zeros(18, dtype=torch.bool)
    kept0[:9] = True
    kept3 = torch.zeros(8, dtype=torch.bool)
    kept3[:6] = True
    mask = Mask({"0.weight": kept0.view(2, 1, 3, 3), "3.weight": kept3.view(4, 2, 1, 1)})
    assert mask_densities(mask) == {"0.weight": 0.5, "3.weight": 0.75}
    assert forward(layer_flops(net, (1, 4, 4)), mask_densities(mask)) == 0.5 * 576 + 576 + 0.75 * 64 + 96


@settings(max_examples=20, deadline=None)
@given(density=st.floats(0.0, 1.0))
def test_the_sparse_count_scales_with_density(density: float) -> None:
    assert forward(HAND, uniform(list(HAND), density)) == pytest.approx(density * 1312)


def test_training_is_three_forward_passes_per_example_and_imp_adds_its_rounds() -> None:
    rounds = [uniform(list(HAND), 0.8), uniform(list(HAND), 0.64)]
    assert sparse_run(HAND, None, 10) == 3 * 1312 * 10
    assert imp(HAND, rounds, dense_examples=10, retrain_examples=8) == pytest.approx(3 * 1312 * (10 + 8 * (0.8 + 0.64)))
    half = {n: f // 2 for n, f in HAND.items()}
    find, train = ett(half, rounds, HAND, uniform(list(HAND), 0.512), 10, 8)
    assert find == pytest.approx(imp(half, rounds, 10, 8)) and train == pytest.approx(3 * 1312 * 8 * 0.512)


def test_rigl_pays_a_dense_weight_gradient_on_each_update_step_only() -> None:
    schedule = Schedule(total_steps=1000, delta_t=100, stop=0.75)  # updates at steps 100, ..., 700
    density = uniform(list(HAND), 0.25)
    sparse, dense = 0.25 * 1312, 1312
    assert rigl(HAND, density, schedule, batch_size=4) == pytest.approx(4 * (993 * 3 * sparse + 7 * (2 * sparse + dense)))
    never = Schedule(total_steps=1000, delta_t=100, stop=0.0)
    assert rigl(HAND, density, never, batch_size=4) == pytest.approx(sparse_run(HAND, density, 4000))


def test_imp_masks_are_at_the_exact_imp_density_of_each_level() -> None:
    rows = dict(comparison("resnet8-w0.25", "resnet14-w0.25", "fashion-mnist", levels=3, fraction=0.2, epochs=2,
                           examples=640, batch_size=64))
    dense = rows["dense training of resnet14-w0.25"]
    # A CIFAR ResNet prunes every conv and linear weight: each sparse run is 0.8^k of a dense one.
    assert rows["IMP on resnet14-w0.25: find the level-3 mask (dense + 2 sparse rounds)"] == pytest.approx(dense * (1 + 0.8 + 0.64))
    assert rows["IMP on resnet14-w0.25: train the level-3 ticket"] == pytest.approx(dense * 0.512)
    assert rows["E-LTH: train resnet14-w0.25 under the transferred mask"] == pytest.approx(dense * 0.512)


def test_the_papers_imagenet_flops_come_out_of_the_accounting() -> None:
    # Sec 4.6: ResNet-26 -> ResNet-34 at 73.79% (6 levels): 2.77x to find the mask, 0.26x to train the
    # transferred ticket, 1.30x for RigL at 5x, normalised by one dense ResNet-34 run. The paper's
    # 1.30 is 5 x 0.26, every layer at the ticket's density: uniform-all. RigL's own uniform keeps
    # the 7x7 stem dense, 3.2% of ResNet-34's FLOPs, which costs 1.44x.
    rows = comparison("imagenet-resnet26", "imagenet-resnet34", "imagenet", levels=6, fraction=0.2, epochs=90,
                      examples=1281167, batch_size=1024, distribution="uniform-all")
    ratios = {what: flops / rows[0][1] for what, flops in rows}
    assert ratios["E-LTH: find the level-6 mask once on imagenet-resnet26 (dense + 5 sparse rounds)"] == pytest.approx(2.77, abs=0.02)
    assert ratios["E-LTH: train imagenet-resnet34 under the transferred mask"] == pytest.approx(0.26, abs=0.01)
    rigl_all = ratios["RigL 5x on imagenet-resnet34 (uniform-all, 4222 updates every 100 steps)"]
    assert rigl_all == pytest.approx(1.30, abs=0.03)
    rigls = dict(comparison("imagenet-resnet26", "imagenet-resnet34", "imagenet", levels=6, fraction=0.2, epochs=90,
                            examples=1281167, batch_size=1024))
    rigl_uniform = rigls["RigL 5x on imagenet-resnet34 (uniform, 4222 updates every 100 steps)"]
    assert rigl_uniform / rows[0][1] == pytest.approx(1.44, abs=0.01)


def test_the_cli_prints_the_table_normalised_by_the_dense_target_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["--source", "resnet8-w0.25", "--target", "resnet14-w0.25", "--dataset", "fashion-mnist", "--levels", "2",
          "--epochs", "3", "--examples", "1000", "--batch-size", "100", "--rewind", "1ep", "--multipliers", "1", "5",
          "-o", str(tmp_path / "flops.md")])
    out = capsys.readouterr().out
    assert (tmp_path / "flops.md").read_text() == out
    rows = [line for line in out.splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 7 and rows[0].endswith("| 1.00 |")
    assert "RigL 5x on resnet14-w0.25" in rows[-1] and "rewind 1ep" in out
