"""Bottleneck ResNets (ResNet-50/101/152 and any block config): torchvision's architecture to the
tensor, FLOPs as torchvision publishes them, and Elastic Ticket Transformations between any two
depths, uneven stretches (ResNet-50 -> 101) included. Full-size models are built on the meta
device (shapes only), so these tests stay fast."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models import assert_same_as_torchvisions
from test_train import random_mask, tiny_data
from test_transform import make_ticket

from elth.checkpoint import build_for
from elth.config import ett_jobs
from elth.errors import ConfigError
from elth.flops import layer_flops
from elth.models.names import layout, parse
from elth.models.registry import build
from elth.prune.baselines import METHODS
from elth.recipe import Recipe
from elth.stack import stack_models
from elth.train import train
from elth.transform.apply import transform
from elth.transform.depth import key_map
from elth.transform.spec import Plan, depth_plan

# torchvision.models.resnet50/101/152 and their IMAGENET1K_V1 weights' meta: `num_params`, and
# `_ops`, the multiply-adds of one 224x224 image in billions (torchvision 0.29).
TORCHVISION = {
    "imagenet-resnet50": ("resnet50", 25_557_032, 4.089),
    "imagenet-resnet101": ("resnet101", 44_549_160, 7.801),
    "imagenet-resnet152": ("resnet152", 60_192_808, 11.514),
}


@functools.cache
def on_meta(name: str) -> torch.nn.Module:
    """elth's model of `name` for ImageNet (3 channels, 1000 classes), shapes only."""
    with torch.device("meta"):
        return build(name, 3, 1000)


@functools.cache
def torchvision_on_meta(function: str) -> torch.nn.Module:
    from torchvision import models

    with torch.device("meta"):
        return getattr(models, function)()


def bottleneck_name(blocks: tuple[int, ...]) -> str:
    return "imagenet-bottleneck-" + "-".join(map(str, blocks))


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_resnet50_101_152_have_torchvisions_tensors_and_parameter_count(name: str) -> None:
    function, num_params, _ = TORCHVISION[name]
    ours, ref = on_meta(name).state_dict(), torchvision_on_meta(function).state_dict()
    assert list(ours) == list(ref)
    assert all(ours[k].shape == ref[k].shape for k in ours)
    assert sum(p.numel() for p in on_meta(name).parameters()) == num_params


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_the_flops_accountant_counts_torchvisions_published_multiply_adds(name: str) -> None:
    _, _, gmacs = TORCHVISION[name]
    flops = sum(layer_flops(on_meta(name), (3, 224, 224)).values())
    assert round(flops / 2 / 1e9, 3) == gmacs  # 2 FLOPs per multiply-add


@pytest.mark.parametrize("channels,classes", [(3, 1000), (1, 10)])
def test_a_small_bottleneck_resnet_equals_torchvisions_tensor_for_tensor_and_output_for_output(channels: int,
                                                                                              classes: int) -> None:
    """torchvision.models.resnet.ResNet(Bottleneck, [1, 1, 2, 1]), its stem made to take the dataset's
    channels as elth's does, under the same seeded initialisation."""
    from torchvision.models.resnet import Bottleneck, ResNet

    ours = build("imagenet-bottleneck-1-1-2-1", channels, classes)
    ref = ResNet(Bottleneck, [1, 1, 2, 1], num_classes=classes)
    ref.conv1 = torch.nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in ref.named_modules()]
    assert_same_as_torchvisions(ours, ref, channels)


@pytest.mark.parametrize("name,blocks", [("imagenet-resnet50", (3, 4, 6, 3)), ("imagenet-resnet101", (3, 4, 23, 3)),
                                         ("imagenet-resnet152", (3, 8, 36, 3)),
                                         ("imagenet-bottleneck-1-3-2-5", (1, 3, 2, 5))])
def test_bottleneck_names_give_the_block_config_and_a_family_of_their_own(name: str, blocks: tuple) -> None:
    # He et al. (2016), Table 1: ResNet-50/101/152 stack 3-4-6-3, 3-4-23-3 and 3-8-36-3 bottleneck blocks.
    assert parse(name).family == "imagenet-bottleneck" and parse(name).args == (blocks,)
    assert parse("imagenet-resnet34").family == "imagenet-resnet"
    assert on_meta(name).structure.depths == blocks
    assert layout(name) == tuple(tuple(u.fixed for u in s.units) for s in on_meta(name).structure.stages)


@pytest.mark.parametrize("bad,message", [("imagenet-resnet20", r"\[18, 26, 34\] \(BasicBlock\) and \[50, 101, 152\]"),
                                         ("imagenet-bottleneck-3-0-6-3", "at least one block"),
                                         ("imagenet-bottleneck-3-4-6", "unknown model")])
def test_bad_bottleneck_names_say_what_would_work(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(bad)


@pytest.mark.parametrize("source,target", [("imagenet-resnet34", "imagenet-resnet50"),
                                           ("imagenet-resnet-3-4-6-3", "imagenet-bottleneck-3-4-6-3")])
def test_a_transfer_between_block_types_is_refused_at_dag_build_naming_both_models(source: str, target: str) -> None:
    config = {"models": [source, target],
              "ett": [{"scheme": "default", "spec": "default", "pairs": [f"{source}->{target}"]}]}
    with pytest.raises(ConfigError, match=f"{source} .* into {target} .*only within one family"):
        ett_jobs(config)
    config["ett"][0]["pairs"] = "all"  # every ordered pair: of one family only, so none here
    assert ett_jobs(config) == []


# App. A's default: append the earliest elastic blocks, as many distinct ones as possible, as few
# times as possible. ResNet-50 -> 101 adds 17 blocks to stage 3's 5 elastic ones: three whole rounds
# of B1-B5, then B1 and B2 once more, appended right after B5 (the last block they replicate).
R50_TO_R101_STAGE3 = (0, 1, 2, 3, 4, 5) + (1, 2, 3, 4, 5) * 3 + (1, 2)


def test_resnet50_to_101_default_appends_whole_rounds_then_the_earliest_blocks() -> None:
    plan = depth_plan("default", "imagenet-resnet50", "imagenet-resnet101")
    assert plan.stages == ((0, 1, 2), (0, 1, 2, 3), R50_TO_R101_STAGE3, (0, 1, 2))
    assert depth_plan("default", "imagenet-resnet101", "imagenet-resnet50").stages[2] == (0, 1, 2, 3, 4, 5)


def test_resnet50_to_101_maps_every_tensor_to_a_source_tensor_of_its_shape() -> None:
    source, target = on_meta("imagenet-resnet50"), on_meta("imagenet-resnet101")
    mapping = key_map(source, target, depth_plan("default", "imagenet-resnet50", "imagenet-resnet101"))
    src, tgt = source.state_dict(), target.state_dict()
    assert set(mapping) == set(tgt) and all(src[v].shape == tgt[k].shape for k, v in mapping.items())
    assert mapping["layer3.22.conv3.weight"] == "layer3.2.conv3.weight"
    assert mapping["layer3.21.bn2.running_var"] == "layer3.1.bn2.running_var"
    assert mapping["layer3.0.downsample.0.weight"] == "layer3.0.downsample.0.weight"
    assert mapping["conv1.weight"] == "conv1.weight" and mapping["fc.weight"] == "fc.weight"


@pytest.mark.parametrize("spec,expected", [
    ("Append 12345", "nearest valid: '0:0;1:1,6,11,16,21;2:2,7,12,17,22;3:3,8,13,18;4:4,9,14,19;5:5,10,15,20'"),
    ("Inter 12345", "nearest valid: 'Inter 12x5, Inter 345x4'"),
    ("Inter 12", "nearest valid: 'Inter 1x10, Inter 2x9'"),
    ("Append 1", "nearest valid: 'Append 1x18'"),
])
def test_an_uneven_append_or_inter_is_refused_with_a_spec_that_makes_the_count(spec: str, expected: str) -> None:
    full = f"default | default | {spec} | default"
    with pytest.raises(ConfigError, match=re.escape(f"makes {6 + len(spec.split()[1])} units, imagenet-resnet101 "
                                                    f"needs 23; {expected}")):
        depth_plan(full, "imagenet-resnet50", "imagenet-resnet101")
    nearest = expected.split("'")[1]
    assert len(depth_plan(f"default | default | {nearest} | default", "imagenet-resnet50",
                          "imagenet-resnet101").stages[2]) == 23


def test_inter_steps_compose_to_an_uneven_stretch() -> None:
    spec = "default | default | Inter 12x5, Inter 345x4 | default"
    plan = depth_plan(spec, "imagenet-resnet50", "imagenet-resnet101")
    assert plan.stages[2] == (0,) + (1,) * 5 + (2,) * 5 + (3,) * 4 + (4,) * 4 + (5,) * 4


CONFIGS = st.tuples(*[st.integers(1, 40)] * 4)


@settings(max_examples=80, deadline=None)
@given(source=CONFIGS, target=CONFIGS, data=st.data())
def test_any_explicit_map_between_two_bottleneck_depths_is_a_spec(source: tuple, target: tuple,
                                                                  data: st.DataObject) -> None:
    """The spec language says any plan the structure allows (each elastic target block copies any
    elastic source block), in the explicit form the authors' scripts use, `|` between stages."""
    stages = []
    for n, m in zip(source, target):
        if m > 1 and n == 1:
            return  # no plan exists: a target elastic block has no elastic source block to copy
        copies = st.lists(st.integers(1, n - 1), min_size=m - 1, max_size=m - 1) if m > 1 else st.just([])
        stages.append((0, *data.draw(copies)))
    plan = Plan(tuple(stages))
    assert depth_plan(plan.explicit(), bottleneck_name(source), bottleneck_name(target)) == plan


def inverse_drop(plan: Plan) -> str:
    """Per stage, drop every target block that is not the first copy of its source block."""
    parts = []
    for stage in plan.stages:
        firsts = {stage.index(i) for i in set(stage)}
        dropped = [j for j in range(len(stage)) if j not in firsts]
        many = any(j > 9 for j in dropped)  # '10.12', and '10.' for unit 10 alone ('10' is units 1 and 0)
        units = ".".join(map(str, dropped)) + ("." if many and len(dropped) == 1 else "") if many else "".join(
            map(str, dropped))
        parts.append(f"Drop {units}" if dropped else "default")
    return " | ".join(parts)


@settings(max_examples=80, deadline=None)
@given(source=st.tuples(*[st.integers(2, 12)] * 4), data=st.data())
def test_stretch_then_the_inverse_drop_returns_every_source_block_in_place(source: tuple, data: st.DataObject) -> None:
    """At the level of plans, for any depths: stretched by Append or Inter steps or the default, then
    squeezed by dropping the copies, every block of the source is back at its own position."""
    parts, target = [], []
    for n in source:
        op = data.draw(st.sampled_from(["Append", "Inter", "default"]), label="op")
        if op == "default":
            m = data.draw(st.integers(n, 3 * n), label="target blocks")
            parts.append("default")
        else:
            idx = data.draw(st.lists(st.integers(1, n - 1), min_size=1, unique=True).map(sorted), label="blocks")
            times = data.draw(st.integers(2, 4), label="times")
            m = n + len(idx) * (times - 1)
            # The dotted form ('10.' is unit 10; '10' would be units 1 and 0), as the README writes it.
            parts.append(f"{op} {'.'.join(map(str, idx))}.x{times}")
        target.append(m)
    src, tgt = bottleneck_name(source), bottleneck_name(tuple(target))
    stretch = depth_plan(" | ".join(parts), src, tgt)
    back = depth_plan(inverse_drop(stretch), tgt, src)
    assert all([s[j] for j in b] == list(range(n)) for s, b, n in zip(stretch.stages, back.stages, source))


def test_the_identity_transformation_reproduces_a_bottleneck_ticket_exactly() -> None:
    src = make_ticket("imagenet-bottleneck-1-2-2-1")
    out, mapping, _ = transform(src, src.model, "default")
    assert all(k == v for k, v in mapping.items())
    assert all(torch.equal(out.state[k], v) for k, v in src.state.items()) and out.mask == src.mask


@pytest.mark.parametrize("target,spec", [("imagenet-bottleneck-1-2-4-1", "default"),
                                         ("imagenet-bottleneck-1-3-5-1", "default | Inter 1 | Inter 1x4 | default")])
def test_a_stretched_bottleneck_ticket_dropped_back_is_the_source_ticket(target: str, spec: str) -> None:
    src = make_ticket("imagenet-bottleneck-1-2-2-1")
    stretched, _, plan = transform(src, target, spec)
    back, _, _ = transform(stretched, src.model, inverse_drop(plan))
    assert all(torch.equal(back.state[k], v) for k, v in src.state.items()) and back.mask == src.mask


def test_a_transformed_bottleneck_ticket_trains_with_its_pruned_weights_at_zero() -> None:
    src = make_ticket("imagenet-bottleneck-1-2-2-1")
    src.step = 0
    out, _, _ = transform(src, "imagenet-bottleneck-1-2-4-1", "default")
    model = out.build_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, tiny_data(n_train=16, n_test=8), Recipe(epochs=1, batch_size=16, lr=0.05), seed=0, mask=out.mask)
    params = dict(model.named_parameters())
    assert all(bool((params[k][~out.mask[k]] == 0).all()) for k in out.mask)
    assert not torch.equal(params["layer3.3.conv2.weight"], before["layer3.3.conv2.weight"])  # it trained


def test_stacked_bottleneck_resnets_compute_each_copy_side_by_side() -> None:
    models = [build_for("imagenet-bottleneck-1-1-1-1", "fashion-mnist", seed=s).eval() for s in range(2)]
    x = torch.randn(3, 1, 28, 28)
    out = stack_models(models).eval()(x.repeat(1, 2, 1, 1)).view(3, 2, -1)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[:, k], model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_the_gradient_baselines_keep_the_imp_tickets_count_on_a_bottleneck_resnet(method: str) -> None:
    """SNIP, GraSP (double backprop) and SynFlow (eval mode on |w|) run through the Bottleneck's graph."""
    model = build_for("imagenet-bottleneck-1-1-1-1", "fashion-mnist", seed=0)
    reference = random_mask(model, 0.2, seed=1)
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(2, 1, 28, 28, generator=g), torch.randint(0, 10, (2,), generator=g))]
    options = {"iterations": 1} if method == "synflow" else {}
    mask = METHODS[method](model, reference, batches, torch.Generator().manual_seed(0), **options)
    assert set(mask) == set(reference) and mask.remaining == reference.remaining


def test_units_past_nine_are_written_with_dots_as_the_readme_shows() -> None:
    """README: "`10.12` is units 10 and 12, `10.` unit 10 alone (`10` would be units 1 and 0)"."""
    src, tgt = "imagenet-bottleneck-2-2-13-2", "imagenet-bottleneck-2-2-15-2"
    dotted = depth_plan("default | default | Append 10.12x2 | default", src, tgt).stages[2]
    assert dotted == (*range(13), 10, 12)
    alone = depth_plan("default | default | Append 10.x3 | default", src, tgt).stages[2]
    assert alone == (*range(11), 10, 10, 11, 12)
