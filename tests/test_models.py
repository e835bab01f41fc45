"""Models: published parameter counts, every family builds and runs, and the elastic structure
names every tensor of every unit so that a depth transformation is a mapping of names."""

from __future__ import annotations

import pytest
import torch

from elth.errors import ConfigError
from elth.models.names import parse
from elth.models.init import initialize
from elth.models.registry import build, prunable_names

NAMES = ["resnet8", "resnet14", "resnet20", "resnet32", "resnet20-w2", "resnet14-w0.5", "vgg11", "vgg13",
         "vgg16", "vgg19", "vgg13-fc2", "vgg13-fc5", "mlp1", "mlp3", "imagenet-resnet18", "imagenet-resnet-2-3-4-3"]


def make(name: str, seed: int | None = 0):
    return build(name, in_channels=3, num_classes=10, in_features=3 * 32 * 32, seed=seed)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,published", [
    ("resnet20", 0.27e6), ("resnet32", 0.46e6), ("resnet44", 0.66e6), ("resnet56", 0.85e6), ("resnet110", 1.7e6),
])
def test_cifar_resnet_parameter_counts_match_he_et_al(name: str, published: float) -> None:
    # He et al. (2016), Table 6, to the two significant figures they print.
    assert abs(count(make(name)) - published) / published < 0.02


@pytest.mark.parametrize("name,exact", [("imagenet-resnet18", 11_689_512), ("imagenet-resnet34", 21_797_672)])
def test_imagenet_resnet_parameter_counts_match_torchvision(name: str, exact: int) -> None:
    assert count(build(name, 3, 1000)) == exact


def test_mlp1_is_lenet_300_100() -> None:
    assert count(build("mlp1", 1, 10, in_features=784)) == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


def test_vgg16_has_open_lth_cifar_size() -> None:
    assert abs(count(make("vgg16")) - 14.73e6) < 0.01e6


@pytest.mark.parametrize("name", NAMES)
def test_every_model_runs_forward_on_its_input(name: str) -> None:
    model = make(name).eval()
    size = 64 if name.startswith("imagenet") else 32
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10)


def test_models_take_dataset_channels_and_classes() -> None:
    model = build("resnet14", in_channels=1, num_classes=7)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    assert build("vgg11", 1, 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", NAMES)
def test_structure_owns_each_key_at_most_once_and_units_of_a_stage_are_interchangeable(name: str) -> None:
    model = make(name)
    structure = model.structure
    state = model.state_dict()
    owners = {}
    for key in state:
        hits = [(s, u) for s, stage in enumerate(structure.stages) for u, unit in enumerate(stage.units) if unit.owns(key)]
        assert len(hits) <= 1, key
        owners[key] = hits[0] if hits else None
    for s, stage in enumerate(structure.stages):
        elastic = stage.elastic
        signatures = []
        for u in elastic:
            unit = stage.units[u]
            keys = structure.unit_keys(state, s, u)
            assert keys, f"unit {unit.prefix} owns no tensor"
            signatures.append({k[len(unit.prefix):]: tuple(state[k].shape) for k in keys})
        # Every elastic unit of a stage has the same tensor names and shapes: any can stand in for any.
        assert all(sig == signatures[0] for sig in signatures)
    shared = structure.shared_keys(state)
    assert set(shared) == {k for k, o in owners.items() if o is None}


@pytest.mark.parametrize("name,depths", [
    ("resnet14", (2, 2, 2)), ("resnet20", (3, 3, 3)), ("resnet56", (9, 9, 9)), ("resnet8", (1, 1, 1)),
    ("imagenet-resnet-2-3-4-3", (2, 3, 4, 3)), ("vgg16", (2, 2, 3, 3, 3, 0)), ("vgg13-fc5", (2, 2, 2, 2, 2, 4)),
    ("mlp3", (3,)),
])
def test_structure_depths_follow_the_name(name: str, depths: tuple[int, ...]) -> None:
    assert make(name).structure.depths == depths


def test_resnet_block0_of_every_stage_is_fixed_and_the_rest_elastic() -> None:
    structure = make("resnet20").structure
    for stage in structure.stages:
        assert [u.fixed for u in stage.units] == [True, False, False]
    assert structure.stages[1].units[0].prefix == "layer2.0."
    assert "layer2.0.downsample.0.weight" in make("resnet20").state_dict()


def test_bn_running_statistics_belong_to_their_unit() -> None:
    structure = make("resnet20").structure
    assert structure.locate("layer3.2.bn1.running_var") == (2, 2)
    assert structure.locate("layer3.2.bn1.num_batches_tracked") == (2, 2)
    assert structure.locate("conv1.weight") is None and structure.locate("fc.bias") is None


def test_prunable_weights_are_conv_and_linear_weights_only() -> None:
    names = prunable_names(make("resnet20"))
    assert "conv1.weight" in names and "fc.weight" in names and "layer2.0.downsample.0.weight" in names
    assert not any(n.endswith("bias") or ".bn" in n for n in names)


def test_seeded_init_is_a_function_of_the_seed_alone() -> None:
    a, b, c = make("resnet14", seed=3), make("resnet14", seed=3), make("resnet14", seed=4)
    torch.manual_seed(123)  # the global RNG must not matter
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    bn = a.layer1[0].bn1.weight
    assert bool(((bn >= 0) & (bn < 1)).all()) and torch.equal(a.layer1[0].bn1.bias, torch.zeros_like(bn))


@pytest.mark.parametrize("bad,expected", [
    ("resnet21", r"6n\+2"), ("resnte20", "Did you mean 'resnet20'"), ("vgg12", "one of"), ("mlp0", "at least one"),
    ("imagenet-resnet20", "block config"), ("transformer", "unknown model"),
])
def test_bad_model_names_say_what_would_work(bad: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse(bad)


def torchvision_reference(name: str, in_channels: int, num_classes: int) -> torch.nn.Module:
    """The model as torchvision's own BasicBlock and ResNet build it (what elth built before it wrote
    its own block, so that no job imports torchvision for a model)."""
    from torchvision.models.resnet import BasicBlock, ResNet

    from elth.models.names import parse

    spec = parse(name)
    if spec.family == "imagenet-resnet":
        model = ResNet(BasicBlock, list(spec.args[0]), num_classes=num_classes)
        if in_channels != 3:
            model.conv1 = torch.nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return model
    model = build(name, in_channels, num_classes)
    for i in (1, 2, 3):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            ref = BasicBlock(block.conv1.in_channels, block.conv1.out_channels, block.conv1.stride[0], block.downsample)
            getattr(model, f"layer{i}")[j] = ref
    return model


@pytest.mark.parametrize("name,channels,classes", [("resnet20", 3, 10), ("resnet14-w0.5", 1, 10),
                                                   ("imagenet-resnet18", 3, 1000),
                                                   ("imagenet-resnet-2-3-4-3", 1, 10)])
def test_resnets_equal_torchvisions_tensor_for_tensor_and_output_for_output(name: str, channels: int,
                                                                            classes: int) -> None:
    assert_same_as_torchvisions(build(name, channels, classes), torchvision_reference(name, channels, classes), channels)


def assert_same_as_torchvisions(ours: torch.nn.Module, ref: torch.nn.Module, channels: int) -> None:
    """After one seeded initialisation, the same tensors in the same order, and the same outputs in both modes."""
    for model in (ours, ref):
        initialize(model, torch.Generator().manual_seed(3))
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
    x = torch.randn(2, channels, 32, 32)
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(ref, mode)()
        assert torch.equal(ours(x), ref(x))


def test_no_model_imports_torchvision() -> None:
    """torchvision costs about 1.9 s per process; a job that builds a model should not pay it."""
    import subprocess
    import sys

    code = ("import sys; from elth.checkpoint import build_for; build_for('imagenet-resnet18', 'imagenet'); "
            "build_for('resnet20', 'cifar10'); print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
