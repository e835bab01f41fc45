"""Elastic Ticket Transformations, pinned as properties against an independent reading of the specs."""

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
from elth.transform.spec import depth_plan

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


def reading(spec: str, n: int) -> list[int]:
    """An independent reading of the paper's named specs for one ResNet stage of n source blocks,
    written from the paper's words (Sec 3.1, App. A, Fig 13's note), not from the implementation."""
    m = re.fullmatch(r"(Append|Inter|Drop) (\d+)(?:x(\d+))?", spec)
    op, idx, times = m[1], [int(c) for c in m[2]], int(m[3] or 2)
    blocks = list(range(n))
    if op == "Drop":
        return [b for b in blocks if b not in idx]
    if op == "Append":  # B0 B1 B2 then the listed blocks again, as a group, (times - 1) more times
        return blocks + idx * (times - 1)
    out = []  # Inter: each listed block followed right away by its copies
    for b in blocks:
        out += [b] * (times if b in idx else 1)
    return out


CASES = [("Append 12", "resnet20", "resnet32"), ("Append 1234", "resnet32", "resnet56"), ("Inter 1234", "resnet32", "resnet56"),
         ("Inter 12x4", "resnet20", "resnet56"), ("Append 12x3", "resnet20", "resnet44"), ("Drop 34", "resnet32", "resnet20"),
         ("Drop 13", "resnet32", "resnet20"), ("Drop 1234", "resnet56", "resnet32"), ("Append 1", "resnet14", "resnet20"),
         ("Inter 23x3", "resnet32", "resnet56")]


def unit_state(ticket: Checkpoint, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in ticket.state.items() if k.startswith(prefix)}


def unit_mask(ticket: Checkpoint, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in ticket.mask.items() if k.startswith(prefix)}


@pytest.mark.parametrize("spec,source,target", CASES)
def test_every_target_block_equals_the_source_block_the_spec_names(spec: str, source: str, target: str) -> None:
    src = make_ticket(source.replace("resnet", "resnet") + "-w0.25")
    out, _, _ = transform(src, target + "-w0.25", spec)
    n = (int(source[6:]) - 2) // 6
    expected = reading(spec, n)
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


@pytest.mark.parametrize("spec,source,target,depths", [
    ("default", "resnet20", "resnet56", [(0, 1, 2, 1, 2, 1, 2, 1, 2)] * 3),
    ("default", "resnet56", "resnet20", [(0, 1, 2)] * 3),
    ("default", "resnet14", "resnet32", [(0, 1, 1, 1, 1)] * 3),
    ("Inter 12x2, Append", "resnet20", "resnet56", [(0, 1, 1, 2, 2, 1, 1, 2, 2)] * 3),
    ("default", "imagenet-resnet18", "imagenet-resnet34", [(0, 1, 1), (0, 1, 1, 1), (0, 1, 1, 1, 1, 1), (0, 1, 1)]),
    ("default", "imagenet-resnet34", "imagenet-resnet18", [(0, 1)] * 4),
    ("default", "imagenet-resnet-2-3-4-3", "imagenet-resnet34", [(0, 1, 1), (0, 1, 2, 1), (0, 1, 2, 3, 1, 2), (0, 1, 2)]),
    ("Append 1 | Append 2 | default", "resnet20", "resnet26", [(0, 1, 2, 1), (0, 1, 2, 2), (0, 1, 2, 1)]),
    ("0:0;1:1,3;2:2,4", "resnet20", "resnet32", [(0, 1, 2, 1, 2)] * 3),
    ("default", "vgg16", "vgg19", [(0, 1), (0, 1), (0, 1, 2, 1), (0, 1, 2, 1), (0, 1, 2, 1), ()]),
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
