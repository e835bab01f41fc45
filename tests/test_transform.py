"""Elastic Ticket Transformations, pinned to the authors' maps and the paper's words, and as properties."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elth.checkpoint import Checkpoint, build_for
from elth.errors import CheckpointError, ConfigError
from elth.models.names import layout
from elth.prune import Mask, prunable
from elth.recipe import Recipe
from elth.train import train
from elth.transform.apply import transform
from elth.transform.spec import Plan, depth_plan

from conftest import ROOT


def make_ticket(model: str, seed: int = 0, density: float = 0.4, dataset: str = "fashion-mnist") -> Checkpoint:
    """A ticket with random weights, random BN statistics and a random mask, so that every copied
    tensor is distinguishable from every other."""
    net = build_for(model, dataset, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    state = {}
    for k, v in net.state_dict().items():
        if v.dtype.is_floating_point:
            state[k] = torch.rand(v.shape, generator=g) + (0.5 if "running_var" in k else 0.0)
        else:
            state[k] = torch.randint(0, 1000, v.shape, generator=g)
    params = dict(net.named_parameters())
    mask = Mask({n: torch.rand(params[n].shape, generator=g) < density for n in prunable(net)})
    return Checkpoint(model, dataset, 17, state, mask, {"method": "imp", "level": 3, "seed": seed})


# Per ResNet stage, the source block of every target block, each from the authors' own map for the
# scheme (GitHub xhchrn/open_lth's scripts, the variable named) or the paper's sentence. Append
# copies "as a whole after the last replicated block" (Sec 3.1), not at the end of the stage.
CASES = [
    ("Append 12", "resnet20", "resnet32", [0, 1, 2, 1, 2]),  # src14_20.sh mapping_head1 0:0;1:1,3;2:2,4
    ("Append 12", "resnet32", "resnet44", [0, 1, 2, 1, 2, 3, 4]),  # src32.sh mapping_head2 0:0;1:1,3;2:2,4;3:5;4:6
    ("Append 1234", "resnet32", "resnet56", [0, 1, 2, 3, 4, 1, 2, 3, 4]),  # 32to56_part1.sh mapping_head4x2
    ("Append 12x3", "resnet32", "resnet56", [0, 1, 2, 1, 2, 1, 2, 3, 4]),  # 32to56_part2.sh mapping_head2x3
    ("Append 23x3", "resnet32", "resnet56", [0, 1, 2, 3, 2, 3, 2, 3, 4]),  # 32to56_part2.sh mapping_middle2x3
    ("Append 34x3", "resnet32", "resnet56", [0, 1, 2, 3, 4, 3, 4, 3, 4]),  # 32to56_part2.sh mapping_tail2x3
    ("Append 1x5", "resnet32", "resnet56", [0, 1, 1, 1, 1, 1, 2, 3, 4]),  # 32to56_part1.sh mapping_head1x5
    ("Append 1", "resnet14", "resnet20", [0, 1, 1]),  # src14_20.sh mapping_inter 0:0;1:1,2
    ("Inter 1234", "resnet32", "resnet56", [0, 1, 1, 2, 2, 3, 3, 4, 4]),  # 32to56_part1.sh mapping_inter1234x2
    ("Inter 12x4", "resnet20", "resnet56", [0, 1, 1, 1, 1, 2, 2, 2, 2]),  # src14_20.sh mapping_inter4
    ("Inter 23x3", "resnet32", "resnet56", [0, 1, 2, 2, 2, 3, 3, 3, 4]),  # 32to56_part2.sh mapping_inter23x3
    ("Drop 34", "resnet32", "resnet20", [0, 1, 2]),  # src32.sh mapping_tail2 0:0;1:1;2:2
    ("Drop 13", "resnet32", "resnet20", [0, 2, 4]),  # src32.sh mapping_inter24 0:0;2:1;4:2
    ("Drop 1234", "resnet56", "resnet32", [0, 5, 6, 7, 8]),  # 56to32_part2.sh mapping_headx4
    ("Drop 1357", "resnet56", "resnet32", [0, 2, 4, 6, 8]),  # 56to32_part1.sh mapping_inter2468
]


def unit_state(ticket: Checkpoint, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in ticket.state.items() if k.startswith(prefix)}


def unit_mask(ticket: Checkpoint, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in ticket.mask.items() if k.startswith(prefix)}


@pytest.mark.parametrize("spec,source,target,expected", CASES)
def test_every_target_block_equals_the_source_block_the_authors_map_names(spec: str, source: str, target: str,
                                                                         expected: list[int]) -> None:
    src = make_ticket(source + "-w0.25")
    out, _, _ = transform(src, target + "-w0.25", spec)
    for stage in (1, 2, 3):
        for j, i in enumerate(expected):
            got, want = unit_state(out, f"layer{stage}.{j}."), unit_state(src, f"layer{stage}.{i}.")
            assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got), (stage, j, i)
            got_m, want_m = unit_mask(out, f"layer{stage}.{j}."), unit_mask(src, f"layer{stage}.{i}.")
            assert got_m.keys() == want_m.keys() and all(torch.equal(got_m[k], want_m[k]) for k in got_m)
    for k in ("conv1.weight", "bn1.running_mean", "fc.weight", "fc.bias"):
        assert torch.equal(out.state[k], src.state[k])
    assert out.step == src.step and set(out.state) == set(build_for(out.model, out.dataset).state_dict())


@pytest.mark.parametrize("model", ["resnet20-w0.25", "vgg13", "mlp3", "imagenet-resnet-2-3-4-3"])
def test_an_identity_spec_reproduces_the_source_exactly(model: str) -> None:
    src = make_ticket(model)
    out, mapping, _ = transform(src, model, "default")
    assert all(k == v for k, v in mapping.items())
    assert all(torch.equal(out.state[k], v) for k, v in src.state.items()) and out.mask == src.mask


@settings(max_examples=25, deadline=None)
@given(depth=st.sampled_from([14, 20, 32]), data=st.data())
def test_stretch_then_the_inverse_drop_returns_the_original_ticket(depth: int, data: st.DataObject) -> None:
    n = (depth - 2) // 6
    target_n = data.draw(st.integers(n + 1, 9), label="target blocks per stage")
    op = data.draw(st.sampled_from(["Append", "Inter"]))
    idx = data.draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=n - 1, unique=True).map(sorted))
    extra = target_n - n
    if extra % len(idx):
        return
    times = 1 + extra // len(idx)
    spec = f"{op} {''.join(map(str, idx))}x{times}"
    src = make_ticket(f"resnet{depth}-w0.25")
    target = f"resnet{6 * target_n + 2}-w0.25"
    stretched, _, plan = transform(src, target, spec)
    # The inverse drop keeps the first occurrence of every source block.
    first = [plan.stages[0].index(i) for i in range(n)]
    drop = [j for j in range(target_n) if j not in first]
    back, _, _ = transform(stretched, src.model, "Drop " + ".".join(map(str, drop)))
    assert all(torch.equal(back.state[k], v) for k, v in src.state.items()) and back.mask == src.mask


def test_append_and_inter_agree_when_one_block_is_replicated_once() -> None:
    src = make_ticket("resnet20-w0.25")
    a, _, _ = transform(src, "resnet26-w0.25", "Append 2")
    b, _, _ = transform(src, "resnet26-w0.25", "Inter 2")
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state) and a.mask == b.mask


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 9), data=st.data())
def test_append_of_one_block_is_inter_of_that_block(n: int, data: st.DataObject) -> None:
    """Sec 4.1: "appending interpolating the first block yields the same resulting model"; so for any one block."""
    i = data.draw(st.integers(1, n - 1), label="block")
    times = data.draw(st.integers(2, 5), label="times")
    source, target = f"resnet{6 * n + 2}", f"resnet{6 * (n + times - 1) + 2}"
    assert depth_plan(f"Append {i}x{times}", source, target) == depth_plan(f"Inter {i}x{times}", source, target)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 9), data=st.data())
def test_an_append_whose_group_ends_at_the_stages_last_block_copies_it_after_the_stage(n: int,
                                                                                     data: st.DataObject) -> None:
    """After the last replicated block is, for a group holding the stage's last block, the stage's end."""
    idx = data.draw(st.lists(st.integers(1, n - 2), max_size=n - 2, unique=True).map(sorted), label="others") + [n - 1]
    times = data.draw(st.integers(2, 3), label="times")
    target = f"resnet{6 * (n + len(idx) * (times - 1)) + 2}"
    plan = depth_plan(f"Append {'.'.join(map(str, idx))}x{times}", f"resnet{6 * n + 2}", target)
    assert list(plan.stages[0]) == list(range(n)) + idx * (times - 1)


ROUND_TRIP_MODELS = {
    "cifar-resnet": ["resnet8", "resnet14", "resnet20", "resnet32", "resnet44"],
    "vgg": ["vgg11", "vgg13", "vgg16", "vgg19", "vgg13-fc2", "vgg16-fc3", "vgg19-fc5"],
    "mlp": ["mlp1", "mlp2", "mlp3", "mlp5"],
    "imagenet-resnet": ["imagenet-resnet18", "imagenet-resnet26", "imagenet-resnet34", "imagenet-resnet-1-3-2-5"],
}


@settings(max_examples=150, deadline=None)
@given(family=st.sampled_from(sorted(ROUND_TRIP_MODELS)), data=st.data())
def test_every_plan_parses_back_from_its_explicit_form(family: str, data: st.DataObject) -> None:
    """What ticket.json saves as `plan` (Plan.explicit()) is a spec that reads back into the same plan,
    for any valid plan of any family: each elastic target unit copies any elastic source unit."""
    source = data.draw(st.sampled_from(ROUND_TRIP_MODELS[family]), label="source")
    target = data.draw(st.sampled_from(ROUND_TRIP_MODELS[family]), label="target")
    stages = []
    for fixed, tfixed in zip(layout(source), layout(target)):
        elastic = [i for i, f in enumerate(fixed) if not f]
        if any(not f for f in tfixed) and not elastic:
            return  # no plan exists: a target elastic unit has nothing to copy
        stages.append(tuple(j if f else data.draw(st.sampled_from(elastic)) for j, f in enumerate(tfixed)))
    random = data.draw(st.booleans(), label="random")
    plan = Plan(tuple(stages), random)
    assert depth_plan(plan.explicit(), source, target) == plan


@pytest.mark.parametrize("spec,source,target,depths", [
    ("default", "resnet20", "resnet56", [(0, 1, 2, 1, 2, 1, 2, 1, 2)] * 3),
    ("default", "resnet56", "resnet20", [(0, 1, 2)] * 3),
    ("default", "resnet14", "resnet32", [(0, 1, 1, 1, 1)] * 3),
    ("Inter 12x2, Append", "resnet20", "resnet56", [(0, 1, 1, 2, 2, 1, 1, 2, 2)] * 3),
    ("default", "imagenet-resnet18", "imagenet-resnet34", [(0, 1, 1), (0, 1, 1, 1), (0, 1, 1, 1, 1, 1), (0, 1, 1)]),
    ("default", "imagenet-resnet34", "imagenet-resnet18", [(0, 1)] * 4),
    # image_exp_src26.sh's mapping_head, the App. A default: 0:0;1:1,2|0:0;1:1,2;2:3|0:0;1:1,3;2:2,4;3:5|0:0;1:1;2:2
    ("default", "imagenet-resnet26", "imagenet-resnet34", [(0, 1, 1), (0, 1, 1, 2), (0, 1, 2, 1, 2, 3), (0, 1, 2)]),
    ("default", "resnet32", "resnet44", [(0, 1, 2, 1, 2, 3, 4)] * 3),  # src32.sh mapping_head2
    ("default", "resnet44", "resnet56", [(0, 1, 2, 1, 2, 3, 4, 5, 6)] * 3),  # src44.sh mapping_head
    ("default", "mlp3", "mlp4", [(0, 1, 1, 2)]),  # mnist_mlp_results.sh 0:0;1:1,2;2:3
    ("Append 1 | Append 2 | default", "resnet20", "resnet26", [(0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 1, 2)]),
    ("0:0;1:1,3;2:2,4", "resnet20", "resnet32", [(0, 1, 2, 1, 2)] * 3),
    # cifar_vgg_src16.sh: 0:0;1:1|0:0;1:1|0:0;1:1,2;2:3|0:0;1:1,2;2:3|0:0;1:1,2;2:3
    ("default", "vgg16", "vgg19", [(0, 1), (0, 1), (0, 1, 1, 2), (0, 1, 1, 2), (0, 1, 1, 2), ()]),
    ("0:0;1:1|0:0;1:1|0:0;1:1,2;2:3|0:0;1:1,2;2:3|0:0;1:1,2;2:3", "vgg16", "vgg19",
     [(0, 1), (0, 1), (0, 1, 1, 2), (0, 1, 1, 2), (0, 1, 1, 2), ()]),  # five parts: the head carried over
    ("0:0,2;2:4,6", "vgg13-fc3", "vgg13-fc5", [(0, 1)] * 5 + [(0, 0, 1, 1)]),  # cifar_vggnfc_change_depth.sh
    ("default", "vgg13-fc3", "vgg13-fc5", [(0, 1)] * 5 + [(0, 1, 0, 1)]),  # App. A's Append 01
    ("default", "vgg13-fc2", "vgg13-fc5", [(0, 1)] * 5 + [(0, 0, 0, 0)]),
    ("default", "mlp2", "mlp4", [(0, 1, 1, 1)]),
    ("default", "mlp4", "mlp2", [(0, 1)]),
])
def test_the_papers_defaults_and_the_other_spec_forms(spec: str, source: str, target: str, depths: list) -> None:
    assert [list(s) for s in depth_plan(spec, source, target).stages] == [list(d) for d in depths]


def test_layout_without_torch_matches_the_built_models_structure() -> None:
    for model in ["resnet8", "resnet56", "vgg11", "vgg19-fc3", "mlp1", "mlp4", "imagenet-resnet-3-4-6-3"]:
        built = build_for(model, "cifar10").structure
        assert layout(model) == tuple(tuple(u.fixed for u in s.units) for s in built.stages)


def test_random_control_permutes_only_the_replicas_masks() -> None:
    src = make_ticket("resnet32-w0.25")
    plain, _, _ = transform(src, "resnet56-w0.25", "Inter 1234")
    rand, _, plan = transform(src, "resnet56-w0.25", "Inter 1234 - Random", seed=3)
    assert plan.replicas(0) == [2, 4, 6, 8]
    changed = {k for k in plain.mask if not torch.equal(plain.mask[k], rand.mask[k])}
    assert changed and all(re.match(r"layer\d\.[2468]\.", k) for k in changed)
    for k in changed:  # a permutation: the layer's count is kept
        assert int(plain.mask[k].sum()) == int(rand.mask[k].sum())
    assert all(torch.equal(plain.state[k], rand.state[k]) for k in plain.state)


def test_the_random_control_from_the_pruned_model_starts_the_replicas_newly_kept_weights_at_zero() -> None:
    """lottery/branch/change_depth_random_mask.py (xhchrn/open_lth): the source state is loaded from
    the level's saved pruned model (rewind weights x IMP mask) and mapped; only the copies' masks
    are permuted, so the weights they newly keep start at 0 and every other unit trains as before."""
    src = make_ticket("resnet32-w0.25")
    plain, _, _ = transform(src, "resnet56-w0.25", "Inter 1234")
    rewound, _, _ = transform(src, "resnet56-w0.25", "Inter 1234 - Random", seed=3)
    pruned, _, _ = transform(src, "resnet56-w0.25", "Inter 1234 - Random", seed=3, random_start="pruned")
    assert pruned.mask == rewound.mask
    assert (pruned.meta["random_start"], rewound.meta["random_start"]) == ("pruned", "rewind")
    assert all(torch.equal(plain.state[k], rewound.state[k]) for k in plain.state)  # rewind: today's start
    zeros = newly = 0
    for k, kept in pruned.mask.items():
        new = kept & ~plain.mask[k]
        if not re.match(r"layer\d\.[2468]\.", k):  # not a replica: its mask and the weights it keeps are untouched
            assert not new.any() and torch.equal(pruned.state[k] * kept, plain.state[k] * kept)
        assert bool((pruned.state[k][new] == 0).all())
        assert torch.equal(pruned.state[k][kept & plain.mask[k]], plain.state[k][kept & plain.mask[k]])
        zeros += int((pruned.state[k][kept] == 0).sum())
        newly += int(new.sum())
    assert zeros == newly > 0  # the count the masks imply (make_ticket's weights are nonzero)
    assert all(torch.equal(pruned.state[k], v) for k, v in plain.state.items() if k not in plain.mask)
    unchanged, _, _ = transform(src, "resnet56-w0.25", "Inter 1234", random_start="pruned")
    assert unchanged.mask == plain.mask and "random_start" not in unchanged.meta  # no permutation: no random start


def test_the_cli_takes_the_random_start_and_writes_it_into_the_tickets_json(tmp_path: Path) -> None:
    from elth.transform.__main__ import main

    make_ticket("resnet20-w0.25").save(tmp_path / "src.pt", "ticket")
    main([str(tmp_path / "src.pt"), "--to", "resnet32-w0.25", "--spec", "Append 12 - Random",
          "--random-start", "pruned", "-o", str(tmp_path / "out.pt")])
    assert __import__("json").loads((tmp_path / "out.json").read_text())["random_start"] == "pruned"
    out = Checkpoint.load(tmp_path / "out.pt", "ticket")
    assert all(bool((out.state[k][m] != 0).all()) for k, m in out.mask.items() if not re.match(r"layer\d\.[34]\.", k))
    assert any(bool((out.state[k][m] == 0).any()) for k, m in out.mask.items())  # a replica's newly kept weight


def test_a_transformed_ticket_trains_with_its_pruned_weights_at_zero() -> None:
    from test_train import tiny_data

    src = make_ticket("resnet14-w0.25")
    src.step = 0
    out, _, _ = transform(src, "resnet20-w0.25", "default")
    model = out.build_model()
    train(model, tiny_data(), Recipe(epochs=1, batch_size=32, lr=0.05), seed=0, mask=out.mask)
    params = dict(model.named_parameters())
    assert all(bool((params[k][~out.mask[k]] == 0).all()) for k in out.mask)


def test_sparsity_of_the_transformed_ticket_is_computed_and_may_drift() -> None:
    src = make_ticket("resnet14-w0.25", density=0.3)
    out, _, _ = transform(src, "resnet20-w0.25", "default")
    recount = 1 - sum(int(v.sum()) for v in out.mask.values()) / sum(v.numel() for v in out.mask.values())
    assert out.mask.sparsity == pytest.approx(recount) and out.mask.sparsity != src.mask.sparsity


def eval_outputs(ticket: Checkpoint, x: torch.Tensor) -> torch.Tensor:
    model = ticket.build_model().eval()
    ticket.mask.apply_(model)
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("model,wide", [("resnet8-w0.25", "resnet8-w0.5"), ("resnet14-w0.5", "resnet14")])
def test_widening_by_replicate_keeps_the_function(model: str, wide: str) -> None:
    src = make_ticket(model, density=0.5)
    out, _, _ = transform(src, wide, "widen replicate")
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(eval_outputs(src, x), eval_outputs(out, x), atol=1e-4, rtol=1e-4)


def test_shrink_inverts_the_split() -> None:
    src = make_ticket("resnet8-w0.25")
    wide, _, _ = transform(src, "resnet8-w0.5", "widen replicate")
    back, _, _ = transform(wide, "resnet8-w0.25", "shrink")
    assert all(torch.allclose(back.state[k].float(), v.float()) for k, v in src.state.items()) and back.mask == src.mask


def test_gaussian_widening_adds_noise_to_weights_not_masks_and_permute_keeps_pairs() -> None:
    src = make_ticket("resnet8-w0.25")
    plain, _, _ = transform(src, "resnet8-w0.5", "widen replicate")
    noisy, _, _ = transform(src, "resnet8-w0.5", "widen gaussian 0.05", seed=1)
    assert noisy.mask == plain.mask
    diff = noisy.state["layer1.0.conv1.weight"] - plain.state["layer1.0.conv1.weight"]
    assert 0.03 < float(diff.std()) < 0.07
    assert torch.equal(noisy.state["layer1.0.bn1.weight"], plain.state["layer1.0.bn1.weight"])
    perm, _, _ = transform(src, "resnet8-w0.5", "widen permute", seed=1)
    k = "layer1.0.conv2.weight"
    assert int(perm.mask[k].sum()) == int(plain.mask[k].sum())
    pairs = lambda t: sorted(zip(t.state[k].flatten().tolist(), t.mask[k].flatten().tolist()))  # noqa: E731
    assert pairs(perm) == pairs(plain) and not torch.equal(perm.mask[k], plain.mask[k])
    assert torch.equal(perm.state[k][:2, :2], plain.state[k][:2, :2])  # the original block stays


@pytest.mark.parametrize("spec,source,target,message", [
    ("Append 0", "resnet20", "resnet32", "unit 0 is fixed"),
    ("Append 0", "resnet20", "resnet32", "spec 'Append 0' (its one part applies to each of the 3 stages), stage 0"),
    ("default | Append 0 | default", "resnet20", "resnet32", "spec 'default | Append 0 | default', stage 1"),
    ("Drop 5", "resnet32", "resnet20", "index 5 is past"),
    ("Append 12", "resnet20", "resnet56", "nearest valid: 'Append 12x4'"),
    ("Drop 3", "resnet32", "resnet20", "nearest valid: 'Drop 34'"),
    ("Inter 1", "resnet20", "resnet44", "nearest valid: 'Inter 1x5'"),
    ("default", "vgg16", "resnet20", "only within one family"),
    ("default", "resnet20", "resnet20-w2", "changes the width"),
    ("widen replicate", "resnet20", "resnet32", "one family at one depth"),
    ("widen replicate", "resnet20", "resnet20-w4", "twice as wide"),
    ("Stretch 12", "resnet20", "resnet32", "cannot read step"),
    ("default", "vgg11", "vgg13", "no replicable unit"),
    ("default", "mlp1", "mlp2", "no replicable unit"),
    ("0:0,1", "vgg13-fc2", "vgg13-fc3", "slot 1 is a ReLU"),
    ("0:0,2", "vgg13-fc2", "vgg16-fc3", "maps the classifier only, but the conv stages differ"),
    ("0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1", "vgg13-fc2", "vgg13-fc3", "add a sixth part"),
    ("| default", "vgg13", "vgg13", "has 2 per-stage parts"),
])
def test_bad_specs_say_what_is_wrong_and_what_would_work(spec: str, source: str, target: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        depth_plan(spec, source, target) if not spec.startswith("widen") else transform(make_ticket(source), target, spec)


def test_a_ticket_whose_channels_do_not_match_its_name_is_refused() -> None:
    src = make_ticket("resnet20-w0.25")
    src.state["layer1.1.conv1.weight"] = torch.zeros(8, 8, 3, 3)
    with pytest.raises(CheckpointError, match="channels do not match"):
        transform(src, "resnet32-w0.25", "Append 12")


def test_the_cli_prints_the_mapping_and_sparsities_and_refuses_another_datasets_file(tmp_path: Path) -> None:
    src = make_ticket("resnet20-w0.25")
    src.save(tmp_path / "src.pt", "ticket")
    run = subprocess.run([sys.executable, "-m", "elth.transform", str(tmp_path / "src.pt"), "--to", "resnet32-w0.25",
                          "--spec", "Inter 12", "-o", str(tmp_path / "out.pt")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "stage 0: 0<-0 1<-1 2<-1 3<-2 4<-2" in run.stdout and "before" in run.stdout and "after" in run.stdout
    info = __import__("json").loads((tmp_path / "out.json").read_text())
    assert info["method"] == "ett" and info["source"] == "resnet20-w0.25" and info["mapping"]["layer1.2.conv1.weight"] == "layer1.1.conv1.weight"
    other = subprocess.run([sys.executable, "-m", "elth.transform", str(tmp_path / "src.pt"), "--dataset", "cifar10",
                            "--to", "resnet32-w0.25", "-o", str(tmp_path / "y.pt")], capture_output=True, text=True, cwd=ROOT)
    assert other.returncode == 2 and "made on fashion-mnist, expected cifar10" in other.stderr
    assert not (tmp_path / "y.pt").exists()
    (tmp_path / "bad.pt").write_bytes(b"not a ticket")
    bad = subprocess.run([sys.executable, "-m", "elth.transform", str(tmp_path / "bad.pt"), "--to", "resnet32-w0.25",
                          "-o", str(tmp_path / "x.pt")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "corrupt" in bad.stderr and "Traceback" not in bad.stderr


def test_every_tensor_of_a_stretched_mlp_comes_from_the_source_its_neck_included() -> None:
    """The authors' MLP transform leaves the target's 300 -> 100 layer, which no map entry covers, at
    its random init with a dense mask (mnist_mlp_results.sh, lottery/branch/morphism.py); elth copies
    it, with its mask, from the source's, so the ticket is the source's ticket and nothing else."""
    src = make_ticket("mlp3", dataset="mnist")
    out, mapping, _ = transform(src, "mlp4", "0:0;1:1,2;2:3")
    assert mapping["neck.weight"] == "neck.weight" and set(out.state) == set(mapping)
    assert torch.equal(out.state["neck.weight"], src.state["neck.weight"])
    assert torch.equal(out.mask["neck.weight"], src.mask["neck.weight"])


@pytest.mark.parametrize("model,target,spec,replica", [("mlp2", "mlp3", "Inter 1 - Random", r"hidden\.2\."),
                                                       ("vgg16", "vgg19", "default - Random", r"stages\.[234]\.2\."),
                                                       ("vgg13-fc2", "vgg13-fc3", "0:0,2 - Random", r"classifier\.1\.")])
def test_the_random_control_permutes_replicas_in_every_family(model: str, target: str, spec: str, replica: str) -> None:
    """The authors' random-mask branch permutes copies for CIFAR ResNets only (nothing for VGG, an
    error for VGG-FC and MLPs: lottery/branch/change_depth_random_mask.py); elth's does in every family."""
    src = make_ticket(model)
    plain, _, _ = transform(src, target, spec.replace(" - Random", ""))
    rand, _, _ = transform(src, target, spec, seed=5)
    changed = {k for k in plain.mask if not torch.equal(plain.mask[k], rand.mask[k])}
    assert changed and all(re.match(replica, k) for k in changed)


def test_a_lone_unit_past_nine_is_written_with_a_dot_so_it_reads_back_as_one_unit() -> None:
    """'10' reads as units 1 and 0 (one digit per unit); '10.' is unit 10, as '10.12' is units 10 and 12."""
    from elth.transform.spec import _indices, _name

    for units in ([10], [1, 0], [10, 12], [3, 11], [2, 5, 9]):
        assert _indices(_name(units)) == units
    assert _name([10]) == "10." and _indices("10") == [1, 0]
