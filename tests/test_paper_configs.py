"""The paper configs follow the authors' code where issue 17 found elth's defaults differ from it.

Each setting is named after the file of the authors' code (GitHub facebookresearch/open_lth, and
its fork VITA-Group/ElasticLTH whose scripts are in xhchrn/open_lth) that it reproduces; the README's
table "Differences from the authors' code" gives elth's default beside each.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import ROOT

PAPER = sorted((ROOT / "config" / "paper").glob("*.yaml"))


def datasets(config: dict) -> list[dict]:
    return [config["dataset"]] + ([config["transfer"]["from"]] if "transfer" in config else [])


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_a_paper_config_uses_the_authors_conventions(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    # pruning/sparse_global.py: ceil(fraction x every conv and linear weight left), then <= threshold.
    assert config["pruning"]["count"] == "open_lth"
    # lottery/branch/randomly_prune.py, change_depth_random_mask.py: start from the pruned model.
    assert config["random_start"] == "pruned"
    if "baselines" in config:
        # training/train.py's SNIP and GraSP: one epoch, model.eval(); pruning/grasp_global.py ranks |score|.
        assert (config["baselines"]["batches"], config["baselines"]["mode"], config["baselines"]["grasp"]) == \
            ("epoch", "eval", "elasticlth")
    for dataset in datasets(config):
        assert dataset["last_batch"] == "keep"  # datasets/base.py: ceil(len / batch), no drop_last
        if dataset["name"] == "cifar10":
            assert dataset["normalize"] == "imagenet"  # datasets/cifar10.py normalises with ImageNet's
    for family, recipe in config["recipes"].items():
        if recipe.get("rewind", "0it") not in ("0it", "0ep"):
            assert recipe["momentum_at_rewind"] == "reset"  # lottery/runner.py: level 0 from R, fresh optimizer
        if recipe.get("warmup", "0it") not in ("0it", "0ep"):
            assert recipe["warmup_rule"] == "open_lth"  # training/optimizers.py: lr * step / W
    if "rigl" in config:
        assert config["rigl"]["distribution"] == "uniform"  # google-research/rigl: first layer dense


def test_the_demo_keeps_elths_own_defaults() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert "count" not in config["pruning"] and "random_start" not in config
