"""The protocol choices where open_lth (the framework the authors' code forks) differs from elth:
each is an option whose default is elth's, and whose other value does what open_lth's code does.
The facts quoted are from facebookresearch/open_lth (unchanged in the authors' fork)."""

from __future__ import annotations

import bisect
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate

from elth import config as study
from elth.data import DeviceData, Split, StreamingData, info
from elth.datasets import normalization, steps_per_epoch
from elth.errors import ConfigError
from elth.flops import comparison
from elth.recipe import Recipe
from elth.train import train, train_together

from conftest import ROOT, class_images
from test_dag import micro_config, snakemake
from test_train import random_mask, tiny_model

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def tiny_data(n_train: int = 96, last_batch: str = "drop", augment: tuple[str, ...] = ("crop", "flip")) -> DeviceData:
    def split(n: int, seed: int) -> Split:
        images, labels = class_images(n, 28, 1, seed)
        return Split(torch.from_numpy(images), torch.from_numpy(labels).long())
    return DeviceData(split(n_train, 0), split(40, 1), info("fashion-mnist"), augment, torch.device("cpu"),
                      last_batch=last_batch)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# Warmup --------------------------------------------------------------------------------------------

def test_the_open_lth_warmup_rule_is_open_lths_lambda_lr_step_for_step() -> None:
    """open_lth training/optimizers.py, get_lr_schedule: a LambdaLR of `min(1.0, it / warmup_iters)`
    times `gamma ** bisect.bisect(milestones, it)`, stepped once after every training step, so step
    s trains at lr * s / W (0 at step 0). elth's default rule trains step s at lr * (s + 1) / W."""
    spe, w = 10, 50
    elth = Recipe(epochs=90, batch_size=1, lr=0.4, milestones=(30, 60, 80), warmup="5ep")
    olth = replace(elth, warmup_rule="open_lth")
    assert [elth.lr_at(s, spe) for s in (0, 1, w - 1, w)] == pytest.approx([0.4 / w, 0.8 / w, 0.4, 0.4])
    assert [olth.lr_at(s, spe) for s in (0, 1, w - 1, w)] == pytest.approx([0.0, 0.4 / w, 0.4 * (w - 1) / w, 0.4])

    milestones = [m * spe for m in elth.milestones]
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: min(1.0, it / w) * 0.1 ** bisect.bisect(milestones, it))
    lr = olth.schedule(spe)
    for step in range(elth.total_steps(spe)):
        assert lr(step) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12, abs=1e-15), step
        optimizer.step()
        schedule.step()


def test_under_the_open_lth_rule_the_first_step_of_a_warmup_leaves_the_weights_alone() -> None:
    recipe = Recipe(epochs=1, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-3, warmup="3it")
    for rule, moved in (("open_lth", False), ("elth", True)):
        model = tiny_model()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        snapshot = train(model, tiny_data(), replace(recipe, warmup_rule=rule), seed=0, snapshot_step=1).snapshot
        assert any(not torch.equal(snapshot[n], p) for n, p in before.items()) is moved, rule


def test_an_unknown_warmup_rule_or_momentum_rule_is_refused_with_its_key() -> None:
    base = {"epochs": 2, "batch_size": 8, "lr": 0.1}
    with pytest.raises(ConfigError, match="warmup_rule 'linear' is not one of elth, open_lth"):
        Recipe.from_dict(base | {"warmup_rule": "linear"})
    with pytest.raises(ConfigError, match="momentum_at_rewind 'keep' is not one of carry, reset"):
        Recipe.from_dict(base | {"momentum_at_rewind": "keep"})


# The dense run's momentum at the rewind step --------------------------------------------------------

RESTART = Recipe(epochs=2, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-3, milestones=(1,), rewind="2it",
                 momentum_at_rewind="reset")


def test_reset_at_rewind_is_open_lths_level_0_restarted_from_the_rewind_weights() -> None:
    """open_lth lottery/desc.py makes `--rewinding_steps` the training_steps of a pretraining run;
    lottery/runner.py's `_pretrain` trains step 0 to R, and `_train_level(0)` loads the weights at R
    and calls standard_train(start_step=R), whose train() builds a new optimizer
    (optimizers.get_optimizer): momentum starts again at R. Level 1 is pruned from that run."""
    data = tiny_data()
    dense = tiny_model()
    snapshot = train(dense, data, RESTART, seed=0, snapshot_step=2).snapshot
    level0 = tiny_model()
    level0.load_state_dict(snapshot)
    train(level0, data, RESTART, seed=0, start_step=2)  # a retraining: fresh momentum at its start step
    assert same_weights(dense, level0)
    carried = tiny_model()
    train(carried, data, replace(RESTART, momentum_at_rewind="carry"), seed=0, snapshot_step=2)
    assert not same_weights(carried, level0)


@pytest.mark.parametrize("rewind", ["2it", "4it"], ids=["before-the-interruption", "after-it"])
def test_a_resumed_dense_run_with_reset_momentum_ends_where_an_uninterrupted_one_does(rewind: str,
                                                                                       tmp_path: Path) -> None:
    recipe = replace(RESTART, rewind=rewind)
    straight = tiny_model()
    expected = train(straight, tiny_data(), recipe, seed=0, snapshot_step=int(rewind[:-2])).snapshot

    def interrupt(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt  # after epoch 1's resume file (3 of 6 steps), before the end's
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), tiny_data(), recipe, seed=0, snapshot_step=int(rewind[:-2]), log=interrupt,
              resume=tmp_path / "resume.pt", fingerprint="reset")
    resumed = tiny_model()
    snapshot = train(resumed, tiny_data(), recipe, seed=0, snapshot_step=int(rewind[:-2]),
                     resume=tmp_path / "resume.pt", fingerprint="reset").snapshot
    assert same_weights(straight, resumed)
    assert all(torch.equal(expected[n], snapshot[n]) for n in expected)


# Normalisation -------------------------------------------------------------------------------------

def test_normalize_imagenet_is_open_lths_cifar10_normalisation() -> None:
    """open_lth datasets/cifar10.py: `Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])`,
    ImageNet's statistics, for CIFAR-10; elth's default is CIFAR-10's own."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    split = Split(images, torch.zeros(4, dtype=torch.int64))
    for rule, mean, std in (("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                            ("dataset", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))):
        cifar = DeviceData(split, split, info("cifar10"), (), torch.device("cpu"), normalize=rule)
        x, _ = cifar.test_batches()[0]
        expected = (images.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        torch.testing.assert_close(x.double(), expected, rtol=0, atol=1e-5)


def test_imagenet_statistics_on_a_one_channel_dataset_are_refused_before_any_job() -> None:
    with pytest.raises(ConfigError, match="fashion-mnist has 1 channel.*normalize: dataset"):
        normalization(info("fashion-mnist"), "imagenet")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())  # the demo: Fashion-MNIST
    config["dataset"]["normalize"] = "imagenet"
    validate(config, SCHEMA, set_default=True)
    with pytest.raises(ConfigError, match="config key dataset.normalize: normalize: imagenet gives 3 channels"):
        study.check(config)


# The last partial batch ----------------------------------------------------------------------------

def test_keeping_the_last_batch_gives_open_lths_step_counts() -> None:
    """open_lth datasets/base.py DataLoader: `iterations_per_epoch = np.ceil(len(dataset) / batch_size)`
    and no drop_last; CIFAR-10 at batch 128: 391 steps an epoch, 62,560 in 160 epochs, the decays
    of '80ep,120ep' at steps 31,280 and 46,920. elth drops the partial batch: 390 steps."""
    assert (steps_per_epoch(50_000, 128), steps_per_epoch(50_000, 128, "keep")) == (390, 391)
    recipe = Recipe(epochs=160, batch_size=128, lr=0.1, milestones=(80, 120))
    assert recipe.total_steps(391) == 62_560 and recipe.total_steps(390) == 62_400
    assert [recipe.lr_at(s, 391) for s in (31_279, 31_280, 46_919, 46_920)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    with pytest.raises(ConfigError, match="last_batch 'pad' is not one of drop, keep"):
        steps_per_epoch(50_000, 128, "pad")


def test_a_kept_epoch_serves_every_image_once_the_last_batch_partial() -> None:
    data = tiny_data(n_train=100, last_batch="keep", augment=())
    batches = list(data.epoch(seed=3, epoch=0, batch_size=32))
    assert data.steps_per_epoch(32) == 4 and [len(y) for _, y in batches] == [32, 32, 32, 4]
    seen = torch.cat([x for x, _ in batches]).flatten(1)
    every = data.normalize(data.train.images).flatten(1)
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, every.tolist()))
    assert [len(y) for _, y in data.epoch(seed=3, epoch=0, batch_size=32, start=3)] == [4]
    assert tiny_data(n_train=100).steps_per_epoch(32) == 3


def test_pruned_weights_stay_zero_through_the_partial_steps() -> None:
    model = tiny_model(1)
    mask = random_mask(model, 0.3, seed=1)
    params = dict(model.named_parameters())
    checks: list[bool] = []
    model.register_forward_pre_hook(lambda *_: checks.extend(bool((params[n][~mask[n]] == 0).all()) for n in mask))
    recipe = Recipe(epochs=2, batch_size=40, lr=0.1, momentum=0.9, weight_decay=1e-3, milestones=(1,))
    history = train(model, tiny_data(last_batch="keep"), recipe, seed=0, mask=mask).history
    assert [row["step"] for row in history] == [3, 6]  # 96 images: batches of 40, 40 and 16
    assert checks and all(checks)


def test_a_resumed_run_that_keeps_the_last_batch_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    recipe = Recipe(epochs=3, batch_size=40, lr=0.1, momentum=0.9, milestones=(2,), rewind="4it")
    straight = tiny_model()
    train(straight, tiny_data(last_batch="keep"), recipe, seed=0, snapshot_step=4)

    def interrupt(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), tiny_data(last_batch="keep"), recipe, seed=0, snapshot_step=4, log=interrupt,
              resume=tmp_path / "resume.pt", fingerprint="keep")
    epochs: list[int] = []
    resumed = tiny_model()
    train(resumed, tiny_data(last_batch="keep"), recipe, seed=0, snapshot_step=4,
          log=lambda row: epochs.append(row["epoch"]), resume=tmp_path / "resume.pt", fingerprint="keep")
    assert epochs == [2, 3] and same_weights(straight, resumed)


def test_stacked_copies_with_their_own_seeds_match_each_trained_alone_with_a_partial_batch() -> None:
    data = tiny_data(n_train=72, last_batch="keep")  # batches of 32, 32 and 8
    recipe = Recipe(epochs=1, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-3)
    masks = [random_mask(tiny_model(k), 0.4, seed=k) for k in range(2)]
    alone = [tiny_model(k) for k in range(2)]
    for model, mask, seed in zip(alone, masks, (0, 1)):
        train(model, data, recipe, seed, mask=mask)
    together = [tiny_model(k) for k in range(2)]
    train_together(together, data, recipe, [0, 1], masks)
    for a, b in zip(alone, together):
        for name, tensor in a.state_dict().items():
            torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_a_streamed_dataset_keeps_or_drops_its_last_batch(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        folder = tmp_path / "imagenet" / split / "n01"
        folder.mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (32, 32), (i, 2 * i, 3 * i)).save(folder / f"{i}.png")
    for last_batch, sizes in (("drop", [2, 2]), ("keep", [2, 2, 1])):
        stream = StreamingData(tmp_path, torch.device("cpu"), workers=0, last_batch=last_batch)
        assert stream.steps_per_epoch(2) == len(sizes)
        assert [len(y) for _, y in stream.epoch(seed=0, epoch=0, batch_size=2)] == sizes


def test_the_flops_accounting_counts_the_kept_partial_steps() -> None:
    def rows(last_batch: str) -> dict[str, float]:
        return dict(comparison("resnet8-w0.25", "resnet14-w0.25", "fashion-mnist", levels=1, fraction=0.2, epochs=2,
                               examples=1000, batch_size=300, delta_t=2, multipliers=(1,), last_batch=last_batch))
    drop, keep = rows("drop"), rows("keep")
    # An epoch trains on 900 examples in 3 steps, or on all 1,000 in 4; RigL updates every 2 steps
    # before 3/4 of its 6 or 8 steps: once at step 2, or at steps 2 and 4.
    assert keep["dense training of resnet14-w0.25"] == pytest.approx(drop["dense training of resnet14-w0.25"] * 10 / 9)
    assert "RigL 1x on resnet14-w0.25 (uniform, 1 updates every 2 steps)" in drop
    assert "RigL 1x on resnet14-w0.25 (uniform, 2 updates every 2 steps)" in keep


# The options reach the jobs ------------------------------------------------------------------------

def test_the_options_reach_every_training_job_and_the_flops_table(fashion_root: Path, tmp_path: Path) -> None:
    path = micro_config(fashion_root, tmp_path)
    config = yaml.safe_load(path.read_text())
    config["dataset"] |= {"last_batch": "keep"}
    config["recipes"]["cifar-resnet"] |= {"warmup": "2it", "warmup_rule": "open_lth", "momentum_at_rewind": "reset"}
    config["rigl"] = {"multipliers": [1]}
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "-p", "--configfile", str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    commands = [line for line in run.stdout.splitlines() if " -m elth." in line]
    training = [c for c in commands if " -m elth.train " in c or " -m elth.dst " in c]
    assert training and all('"last_batch":"keep"' in c and '"warmup_rule":"open_lth"' in c for c in training)
    assert all('"momentum_at_rewind":"reset"' in c for c in training)
    assert any(" -m elth.flops " in c and "--last-batch keep" in c for c in commands)
