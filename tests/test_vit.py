"""Vision Transformers: torchvision's layout and function, elastic tickets across depths, and every
pruning method, RigL, the FLOPs accountant, the recipe and the DAG's checks on the family."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from elth import config as study
from elth.dst.rigl import RigL, Schedule
from elth.errors import ConfigError
from elth.flops import layer_flops
from elth.models.names import layout, parse, width
from elth.models.registry import build, prunable_names
from elth.prune import Mask, prunable
from elth.prune.baselines import METHODS
from elth.prune.magnitude import global_magnitude, keep_top
from elth.recipe import Recipe
from elth.train import train
from elth.transform.apply import transform

from conftest import ROOT
from test_dag import micro_config, snakemake
from test_train import tiny_data
from test_transform import make_ticket

TINY = "vit-d2-w32-p7"  # 2 layers of width 32, one head, MLP 128, 16 patches of 7x7 and a class token


def tiny(name: str = TINY, seed: int = 0, channels: int = 1) -> torch.nn.Module:
    return build(name, channels, 10, in_features=channels * 28 * 28, seed=seed)


def test_torchvisions_vit_b_16_state_dict_loads_strictly_into_vit_b16() -> None:
    from torchvision.models import vit_b_16

    with torch.device("meta"):
        ref, ours = vit_b_16(), build("vit-b16", 3, 1000, in_features=3 * 224 * 224)
    theirs = ref.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
    ours.load_state_dict(theirs, strict=True, assign=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_small_vit_computes_what_torchvisions_computes_with_the_same_weights(mode: str) -> None:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    ref = VisionTransformer(image_size=28, patch_size=7, num_layers=3, num_heads=2, hidden_dim=64, mlp_dim=256,
                            num_classes=10)
    torch.nn.init.normal_(ref.heads.head.weight)  # torchvision zeroes its head, which would hide the encoder
    ours = build("vit-d3-w64-p7", 3, 10, in_features=3 * 28 * 28)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 3, 28, 28)
    ref.train(mode == "train")
    ours.train(mode == "train")
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)


def test_the_patch_embedding_takes_the_datasets_channels_and_image_size() -> None:
    model = tiny()
    assert model.conv_proj.weight.shape == (32, 1, 7, 7)
    assert model.encoder.pos_embedding.shape == (1, 17, 32)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_a_seeded_vit_is_a_function_of_its_seed_and_follows_torchvisions_init() -> None:
    a, b, c = tiny(seed=3), tiny(seed=3), tiny(seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.encoder.pos_embedding, c.encoder.pos_embedding)
    block = a.encoder.layers.encoder_layer_0
    # torchvision/models/vision_transformer.py: class token zeros, position embedding N(0, 0.02^2),
    # LayerNorm (eps 1e-6) ones and zeros, nn.MultiheadAttention's biases zero, MLP biases N(0, 1e-6^2).
    assert not a.class_token.any() and block.ln_1.eps == 1e-6 and bool((block.ln_2.weight == 1).all())
    assert not block.self_attention.in_proj_bias.any() and not block.self_attention.out_proj.bias.any()
    assert float(block.mlp[0].bias.detach().abs().max()) < 1e-5
    assert 0.015 < float(a.encoder.pos_embedding.detach().std()) < 0.025
    # elth's one departure, for SNIP, GraSP and SynFlow at step 0: the head is not zero.
    assert a.heads.head.weight.abs().sum() > 0 and not a.heads.head.bias.any()


def test_vit_names_parse_without_torch_and_describe_the_built_structure() -> None:
    assert parse("vit-d4-w64-p7").args == (4, 64, 7, 2, 256)
    assert parse("vit-d4-w96-p7-h3").args == (4, 96, 7, 3, 384)
    assert parse("vit-b16").args == (12, 768, 16, 12, 3072)  # torchvision's vit_b_16
    assert width("vit-d4-w64-p7") == 64 and layout("vit-d3-w64-p7") == ((False, False, False),)
    model = tiny("vit-d3-w32-p7")
    assert layout("vit-d3-w32-p7") == tuple(tuple(u.fixed for u in s.units) for s in model.structure.stages)
    assert [u.prefix for u in model.structure.stages[0].units] == [f"encoder.layers.encoder_layer_{i}." for i in range(3)]


@pytest.mark.parametrize("bad,message", [("vit-d4-w48-p7", "name the heads"), ("vit-d4-w64-p7-h3", "does not split"),
                                         ("vit-d0-w64-p7", "positive")])
def test_bad_vit_names_say_what_would_work(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(bad)


def test_prunable_weights_are_the_projections_and_mlp_and_never_norms_embeddings_or_biases() -> None:
    names = prunable_names(tiny())
    layer = "encoder.layers.encoder_layer_1."
    assert {layer + "self_attention.in_proj_weight", layer + "self_attention.out_proj.weight", layer + "mlp.0.weight",
            layer + "mlp.3.weight", "conv_proj.weight", "heads.head.weight"} <= set(names)
    assert len(names) == 2 + 4 * 2
    assert not any(k in n for n in names for k in ("ln", "bias", "embedding", "token"))


def test_an_identity_transformation_reproduces_a_vit_ticket_exactly() -> None:
    src = make_ticket("vit-d3-w32-p7")
    out, mapping, _ = transform(src, src.model, "default")
    assert all(k == v for k, v in mapping.items())
    assert all(torch.equal(out.state[k], v) for k, v in src.state.items()) and out.mask == src.mask


def test_layernorms_travel_with_their_layer() -> None:
    src = make_ticket("vit-d2-w32-p7")
    out, mapping, _ = transform(src, "vit-d3-w32-p7", "Append 0")  # layers 0 0 1
    for part in ("ln_1.weight", "ln_2.bias", "self_attention.in_proj_weight"):
        for target, source in ((0, 0), (1, 0), (2, 1)):
            assert mapping[f"encoder.layers.encoder_layer_{target}.{part}"] == f"encoder.layers.encoder_layer_{source}.{part}"
    assert mapping["encoder.ln.weight"] == "encoder.ln.weight" and mapping["class_token"] == "class_token"


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 5), data=st.data())
def test_stretch_then_the_inverse_drop_returns_the_vit_ticket(n: int, data: st.DataObject) -> None:
    target_n = data.draw(st.integers(n + 1, 6), label="target layers")
    op = data.draw(st.sampled_from(["Append", "Inter"]))
    idx = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).map(sorted))
    extra = target_n - n
    if extra % len(idx):
        return
    spec = f"{op} {''.join(map(str, idx))}x{1 + extra // len(idx)}"
    src = make_ticket(f"vit-d{n}-w32-p7")
    stretched, _, plan = transform(src, f"vit-d{target_n}-w32-p7", spec)
    first = [plan.stages[0].index(i) for i in range(n)]
    back, _, _ = transform(stretched, src.model, "Drop " + ".".join(str(j) for j in range(target_n) if j not in first))
    assert all(torch.equal(back.state[k], v) for k, v in src.state.items()) and back.mask == src.mask


def test_a_transformed_vit_ticket_trains_with_every_pruned_weight_at_zero() -> None:
    src = make_ticket("vit-d2-w32-p7", density=0.3)
    src.step = 0
    out, _, _ = transform(src, "vit-d3-w32-p7", "default")
    assert "encoder.layers.encoder_layer_2.self_attention.in_proj_weight" in out.mask
    model = out.build_model()
    recipe = Recipe(epochs=1, batch_size=32, lr=1e-3, weight_decay=0.05, warmup="1it", optimizer="adamw", decay="cosine")
    train(model, tiny_data(), recipe, seed=0, mask=out.mask)
    params = dict(model.named_parameters())
    assert all(bool((params[k][~out.mask[k]] == 0).all()) for k in out.mask)
    assert all(bool((params[k][out.mask[k]] != src.state[k.replace("_2.", "_0.")][out.mask[k]]).any())
               for k in out.mask if "encoder_layer_2" in k)  # the kept weights trained


def test_adamw_takes_its_first_step_of_lr_on_every_weight_with_a_gradient() -> None:
    # Adam (Kingma & Ba 2015, Sec 2.1): with bias correction the first step is lr * g / (|g| + eps)
    # per weight: lr, but for the few gradients near eps = 1e-8.
    model = tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = tiny_data(n_train=32)
    train(model, data, Recipe(epochs=1, batch_size=32, lr=1e-3, weight_decay=0.0, optimizer="adamw"), seed=0)
    moved = (model.encoder.layers.encoder_layer_0.mlp[0].weight.detach() - before["encoder.layers.encoder_layer_0.mlp.0.weight"]).abs()
    assert float(moved.max()) == pytest.approx(1e-3, rel=1e-4) and float((moved > 0.999e-3).float().mean()) > 0.99


def test_the_cosine_decay_runs_from_the_rate_after_warmup_to_zero_at_the_end() -> None:
    recipe = Recipe(epochs=10, batch_size=8, lr=0.5, warmup="10it", decay="cosine")
    lr = recipe.schedule(11)  # 110 steps: 10 of warmup, then 100 of cosine
    assert lr(9) == pytest.approx(0.5) and lr(10) == pytest.approx(0.5)
    assert lr(60) == pytest.approx(0.25) and lr(110) == pytest.approx(0.0, abs=1e-12)
    assert Recipe(epochs=2, batch_size=8, lr=0.1).optimizer == "sgd" and Recipe(epochs=2, batch_size=8, lr=0.1).decay == "step"
    with pytest.raises(ConfigError, match="remove the milestones"):
        Recipe.from_dict({"epochs": 4, "batch_size": 8, "lr": 0.1, "milestones": [2], "decay": "cosine"})


def reference_mask(model: torch.nn.Module, fraction: float = 0.6) -> Mask:
    names = prunable(model, ["conv_proj.weight"])
    return global_magnitude(dict(model.named_parameters()), Mask.ones(model, names), fraction)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_baseline_makes_a_vit_mask_at_the_requested_count(method: str) -> None:
    model = tiny()
    ref = reference_mask(model)
    batches = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
    options = {"iterations": 3} if method == "synflow" else {}
    mask = METHODS[method](model, ref, batches, torch.Generator().manual_seed(0), **options)
    assert set(mask) == set(ref) and mask.remaining == ref.remaining
    assert all(mask[n].shape == ref[n].shape for n in ref)
    if method in ("snip", "grasp", "synflow"):  # scores that carry information, not a tie broken by position
        assert mask != keep_top({n: torch.zeros(t.shape) for n, t in ref.items()}, ref.remaining)


def test_rigl_rewires_a_vit_under_adamw_keeping_every_layers_count() -> None:
    model = tiny()
    names = prunable(model)
    g = torch.Generator().manual_seed(0)
    params = dict(model.named_parameters())
    mask = Mask({n: torch.rand(params[n].shape, generator=g) < 0.3 for n in names})
    recipe = Recipe(epochs=1, batch_size=16, lr=1e-3, optimizer="adamw", decay="cosine")
    result = train(model, tiny_data(), recipe, seed=0, mask=mask, rewire=RigL(Schedule(6, delta_t=2, alpha=0.5)))
    assert result.mask != mask
    assert all(int(result.mask[n].sum()) == int(mask[n].sum()) for n in names)
    assert all(bool((params[n][~result.mask[n]] == 0).all()) for n in names)


def test_flops_count_attentions_projections_and_its_two_matmuls() -> None:
    """One layer, L = 16 patches + the class token = 17 tokens of width E = 32, MLP 128, 1 channel,
    10 classes; 2 FLOPs per multiply-add: patch embedding 2 x 16 x (1 x 7 x 7) x 32 (one output
    per patch and channel, summing a 7x7 patch); in_proj 2 x L x E x 3E; out_proj 2 x L x E x E;
    Q K^T and A V 2 x L x L x E each; MLP 2 x L x E x 128 twice; head 2 x E x 10 (class token only)."""
    counts = layer_flops(tiny("vit-d1-w32-p7"), (1, 28, 28))
    layer = "encoder.layers.encoder_layer_0."
    assert counts == {"conv_proj.weight": 2 * 16 * 49 * 32,
                      layer + "self_attention.in_proj_weight": 2 * 17 * 32 * 96,
                      layer + "self_attention.out_proj.weight": 2 * 17 * 32 * 32,
                      layer + "self_attention.attention": 2 * 2 * 17 * 17 * 32,
                      layer + "mlp.0.weight": 2 * 17 * 32 * 128, layer + "mlp.3.weight": 2 * 17 * 128 * 32,
                      "heads.head.weight": 2 * 32 * 10}


def vit_config(**edits) -> dict:
    config = {"experiment": "vit", "dataset": {"name": "fashion-mnist", "root": "data"}, "seeds": [0],
              "models": ["vit-d2-w64-p7", "vit-d3-w64-p7"],
              "recipes": {"vit": {"epochs": 2, "batch_size": 64, "lr": 1e-3, "optimizer": "adamw", "decay": "cosine"},
                          "cifar-resnet": {"epochs": 2, "batch_size": 64, "lr": 0.1}},
              "pruning": {"levels": 2, "fraction": 0.36},
              "ett": [{"scheme": "default", "spec": "default", "pairs": "all"}]}
    return config | edits


def test_pairs_all_transforms_between_the_depths_of_one_vit_width_only() -> None:
    config = vit_config(models=["vit-d2-w64-p7", "vit-d3-w64-p7", "vit-d2-w128-p7", "vit-d2-w64-p4"])
    assert sorted((s, t) for s, t, _, _ in study.ett_jobs(config)) == [("vit-d2-w64-p7", "vit-d3-w64-p7"),
                                                                       ("vit-d3-w64-p7", "vit-d2-w64-p7")]


@pytest.mark.parametrize("models,pair,message", [
    (["vit-d2-w64-p7", "resnet8"], "vit-d2-w64-p7->resnet8", "tickets transform only within one family"),
    (["vit-d2-w64-p7", "vit-d3-w128-p7"], "vit-d2-w64-p7->vit-d3-w128-p7", "width 64 vs 128"),
    (["vit-d2-w64-p7", "vit-d3-w64-p4"], "vit-d2-w64-p7->vit-d3-w64-p4", "patch 7 vs 4"),
])
def test_an_impossible_vit_transfer_is_refused_naming_both_models(models: list, pair: str, message: str) -> None:
    config = vit_config(models=models, ett=[{"scheme": "default", "spec": "default", "pairs": [pair]}])
    with pytest.raises(ConfigError, match=message) as err:
        study.check(config)
    assert all(m in str(err.value) for m in models)


@pytest.mark.parametrize("edits,message", [
    ({"engine": {"tickets_per_job": 4}}, "ViT models cannot be stacked"),
    ({"models": ["vit-d2-w64-p5"], "ett": []}, "patch 5 does not tile"),
])
def test_what_a_vit_cannot_do_is_refused_before_any_job(edits: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        study.check(vit_config(**edits))


def test_the_dag_refuses_a_vit_to_resnet_transfer_before_any_job(fashion_root: Path, tmp_path: Path) -> None:
    path = micro_config(fashion_root, tmp_path)
    config = yaml.safe_load(path.read_text())
    config["models"].append("vit-d2-w64-p7")
    config["recipes"]["vit"] = {"epochs": 1, "batch_size": 64, "lr": 1e-3, "optimizer": "adamw", "decay": "cosine"}
    config["ett"] = [{"scheme": "default", "spec": "default", "pairs": ["vit-d2-w64-p7->resnet8-w0.25"]}]
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "--configfile", str(path), "-n")
    assert run.returncode != 0
    message = run.stdout + run.stderr
    assert "cannot transform vit-d2-w64-p7 (vit) into resnet8-w0.25" in message
    assert not (tmp_path / "results").exists()


def test_the_vit_proxy_study_config_is_valid() -> None:
    config = yaml.safe_load((ROOT / "config" / "proxy" / "fashion-mnist-vit.yaml").read_text())
    study.check(config)
    depths = [parse(m).args[0] for m in config["models"]]
    assert len(depths) == 3 and len({width(m) for m in config["models"]}) == 1
    assert len(study.ett_jobs(config)) == 6
    assert config["pruning"]["levels"] == 5 and config["pruning"]["fraction"] == 0.36
    assert math.isclose(1 - 0.64 ** 3, 0.737856) and math.isclose(1 - 0.64 ** 5, 0.8926258176)
