"""IMP's pruning count: elth's `nearest` and the authors' `open_lth`, and the two sparsity conventions.

open_lth's `pruning/sparse_global.py` (unchanged in the authors' VITA-Group/ElasticLTH fork):

    current_mask = Mask.ones_like(trained_model).numpy() if current_mask is None else current_mask.numpy()
    number_of_remaining_weights = np.sum([np.sum(v) for v in current_mask.values()])
    number_of_weights_to_prune = np.ceil(
        pruning_hparams.pruning_fraction * number_of_remaining_weights).astype(int)
    ...
    prunable_tensors -= set(pruning_hparams.pruning_layers_to_ignore.split(','))
    ...
    weight_vector = np.concatenate([v[current_mask[k] == 1] for k, v in weights.items()])
    threshold = np.sort(np.abs(weight_vector))[number_of_weights_to_prune]
    new_mask = Mask({k: np.where(np.abs(v) > threshold, current_mask[k], np.zeros_like(v)) ...

`Mask.ones_like` holds every conv and linear weight, the ignored layers too, so they count in
`number_of_remaining_weights`; the threshold is the n-th smallest kept magnitude (0-based) and every
weight at or below it goes: n + 1 weights when the magnitudes are distinct.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from elth import imp
from elth.checkpoint import Checkpoint, build_for
from elth.errors import ConfigError
from elth.prune import Mask, global_magnitude, imp_sparsity, prunable
from elth.prune.magnitude import keep_top, prune_count
from elth.recipe import Recipe
from elth.train import Result, save_run

# (model, dataset, layers left unpruned, open_lth's level-1 count, elth's nearest level-1 count)
LEVEL1 = [("mlp1", "mnist", ["fc.weight"], 53_241, 53_040),
          ("vgg16", "cifar10", ["fc.weight"], 2_943_118, 2_942_093),
          ("resnet20", "cifar10", [], 54_181, 54_179)]


def first_mask(model: nn.Module, unpruned: list[str]) -> Mask:
    return Mask.ones(model, prunable(model, unpruned))


def open_lth_mask(weights: dict[str, Tensor], mask: Mask, fraction: float, unmasked: int) -> Mask:
    """open_lth's threshold rule, written out in numpy on the masked weights."""
    vectors = {n: weights[n].detach().numpy() for n in mask}
    keep = {n: mask[n].numpy() for n in mask}
    n = int(np.ceil(fraction * (sum(int(k.sum()) for k in keep.values()) + unmasked)))
    threshold = np.sort(np.abs(np.concatenate([v[keep[k]] for k, v in vectors.items()])))[n]
    return Mask({k: torch.from_numpy(keep[k] & (np.abs(v) > threshold)) for k, v in vectors.items()})


@pytest.mark.parametrize("name,dataset,unpruned,authors,nearest", LEVEL1)
def test_level_one_prunes_open_lths_count_on_the_papers_models(name: str, dataset: str, unpruned: list[str],
                                                               authors: int, nearest: int) -> None:
    model = build_for(name, dataset, seed=0)  # random init: distinct magnitudes
    mask = first_mask(model, unpruned)
    weights = dict(model.state_dict())
    unmasked = mask.unmasked(model)
    assert unmasked == sum(weights[n].numel() for n in unpruned)
    new = global_magnitude(weights, mask, 0.2, "open_lth", unmasked)
    assert mask.remaining - new.remaining == authors == math.ceil(0.2 * (mask.total + unmasked)) + 1
    assert new == open_lth_mask(weights, mask, 0.2, unmasked)
    assert mask.remaining - global_magnitude(weights, mask, 0.2, "nearest", unmasked).remaining == nearest
    assert mask.remaining - global_magnitude(weights, mask, 0.2).remaining == nearest


def ckpt(model: nn.Module, name: str, dataset: str, mask: Mask | None = None, **meta) -> Checkpoint:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return Checkpoint(name, dataset, 0, state, mask, {"seed": 0, **meta})


def trained_again(model: nn.Module, level: int) -> nn.Module:
    """New weights of the same model, as the next level's training would leave them."""
    g = torch.Generator().manual_seed(100 + level)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.rand(p.shape, generator=g))
    return model


def test_the_second_round_counts_the_unpruned_layers_weights_as_remaining() -> None:
    model = build_for("mlp1", "mnist", seed=0)
    rewind = ckpt(model, "mlp1", "mnist")
    one = imp.next_ticket(rewind, rewind, None, 1, 0.2, ["fc.weight"], "open_lth")
    two = imp.next_ticket(rewind, ckpt(trained_again(model, 1), "mlp1", "mnist"), one, 2, 0.2, ["fc.weight"],
                          "open_lth")
    # 266,200 conv and linear weights, 1,000 of them fc's: level 1 keeps 212,959 of them.
    assert one.mask.remaining + 1_000 == 212_959
    assert one.mask.remaining - two.mask.remaining == math.ceil(0.2 * 212_959) + 1 == 42_593
    assert two.meta["count"] == "open_lth"


def test_the_all_weights_sparsity_reads_one_minus_point8_to_the_k_under_open_lth() -> None:
    model = build_for("mlp1", "mnist", seed=0)
    rewind, ticket, total_all = ckpt(model, "mlp1", "mnist"), None, 266_200
    trained = rewind
    for k in range(1, 7):
        ticket = imp.next_ticket(rewind, trained, ticket, k, 0.2, ["fc.weight"], "open_lth")
        nominal = imp_sparsity(k, 0.2)
        # Each round removes 1 to 2 weights more than 20% of the rest: at most 10 in all.
        assert 0 < ticket.mask.sparsity_all(model) - nominal <= 10 / total_all
        # The prunable weights' sparsity is larger by fc's share, far beyond that rounding.
        assert ticket.mask.sparsity - nominal > 100 / total_all
        trained = ckpt(trained_again(model, k), "mlp1", "mnist")
    assert round(ticket.mask.sparsity_all(model), 4) == 0.7379


def test_a_ticket_json_states_both_sparsities_and_what_each_measures(tmp_path: Path) -> None:
    model = build_for("mlp1", "mnist", seed=0)
    rewind = ckpt(model, "mlp1", "mnist")
    imp.next_ticket(rewind, rewind, None, 1, 0.2, ["fc.weight"], "open_lth").save_ticket(tmp_path / "t.pt")
    info = json.loads((tmp_path / "t.json").read_text())
    pruned = 53_241
    assert info["total"] == 265_200 and info["total_all"] == 266_200 and info["count"] == "open_lth"
    assert info["sparsity"] == pytest.approx(pruned / 265_200)
    assert info["sparsity_all"] == pytest.approx(pruned / 266_200)
    assert "prunable" in info["sparsity_conventions"]["sparsity"]
    assert "all conv and linear" in info["sparsity_conventions"]["sparsity_all"]


def test_a_runs_summary_json_carries_both_sparsities(tmp_path: Path) -> None:
    model = build_for("vgg11", "cifar10", seed=0)
    mask = global_magnitude(dict(model.state_dict()), first_mask(model, ["fc.weight"]), 0.5)
    history = [{"epoch": 1, "test_acc": 0.5, "test_loss": 1.0}]
    save_run(tmp_path, "vgg11", "cifar10", 0, Recipe.from_dict({"epochs": 1, "batch_size": 64, "lr": 0.1}), 10, 0,
             {"method": "imp", "level": 1}, model, Result(history, None, 1.0, mask), None, "cpu")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert summary["sparsity_all"] == pytest.approx(mask.sparsity_all(model))
    assert summary["sparsity_all"] < summary["sparsity"]  # VGG's fc is left unpruned


def test_the_cli_takes_the_count_and_records_it(tmp_path: Path) -> None:
    model = build_for("resnet20", "cifar10", seed=0)
    ckpt(model, "resnet20", "cifar10").save(tmp_path / "rewind.pt")
    common = ["--rewind", str(tmp_path / "rewind.pt"), "--trained", str(tmp_path / "rewind.pt"), "--level", "1"]
    for count, pruned in (("open_lth", 54_181), ("nearest", 54_179)):
        imp.main([*common, "--count", count, "-o", str(tmp_path / count / "ticket.pt")])
        info = json.loads((tmp_path / count / "ticket.json").read_text())
        assert info["count"] == count and info["total"] - info["remaining"] == pruned
        assert info["sparsity_all"] == info["sparsity"]  # a ResNet leaves nothing unpruned
    imp.main([*common, "-o", str(tmp_path / "default" / "ticket.pt")])
    assert json.loads((tmp_path / "default" / "ticket.json").read_text())["count"] == "nearest"
    with pytest.raises(SystemExit):
        imp.main([*common, "--count", "ceil", "-o", str(tmp_path / "bad" / "ticket.pt")])


def test_levels_of_one_imp_run_take_one_count() -> None:
    model = build_for("resnet20", "cifar10", seed=0)
    rewind = ckpt(model, "resnet20", "cifar10")
    one = imp.next_ticket(rewind, rewind, None, 1, 0.2, [])  # nearest, as tickets made before the rule
    del one.meta["count"]
    with pytest.raises(ConfigError, match="'nearest' count, not 'open_lth'"):
        imp.next_ticket(rewind, rewind, one, 2, 0.2, [], "open_lth")


def test_the_count_rules_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="nearest, open_lth"):
        prune_count(100, 0.2, "ceil")
    # open_lth would index past its weights: 5 prunable remain, ceil(0.5 x 105) + 1 = 54 to remove.
    with pytest.raises(ConfigError, match="remove 54 weights but only 5"):
        prune_count(5, 0.5, "open_lth", unmasked=100)


def test_ties_with_open_lths_threshold_lose_exactly_n_plus_one_weights_by_position() -> None:
    # open_lth would remove all eight (every |w| equals the threshold); elth removes n + 1 = 3, the last by position.
    weights = {"a.weight": torch.ones(8)}
    mask = Mask({"a.weight": torch.ones(8, dtype=torch.bool)})
    new = global_magnitude(weights, mask, 0.2, "open_lth")
    assert new["a.weight"].tolist() == keep_top({"a.weight": torch.ones(8)}, 5)["a.weight"].tolist()
    assert new["a.weight"].tolist() == [True] * 5 + [False] * 3


def test_a_retraining_that_prunes_the_next_level_makes_the_ticket_elth_imp_makes_from_its_files(
        tmp_path: Path, fashion_root: Path) -> None:
    """The workflow's IMP round k retrains level k and prunes level k+1 in one process; its ticket is
    the one `python -m elth.imp` makes from the round's written final.pt, as a separate job once did."""
    from elth import train

    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    rewind = tmp_path / "rewind.pt"
    Checkpoint("resnet8-w0.25", "fashion-mnist", 0, model.state_dict(), meta={"seed": 0}).save(rewind)
    level1 = tmp_path / "level1" / "ticket.pt"
    imp.main(["--rewind", str(rewind), "--trained", str(rewind), "--level", "1", "--fraction", "0.5",
              "--count", "open_lth", "-o", str(level1)])
    pruning = ["--rewind", str(rewind), "--fraction", "0.5", "--count", "open_lth"]
    train.main(["--model", "resnet8-w0.25", "--dataset", "fashion-mnist", "--seed", "0", "--device", "cpu",
                "--recipe", json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.05}),
                "--data", json.dumps({"root": str(fashion_root), "augment": []}),
                "--ticket", str(level1), "--out", str(level1.parent),
                "--next-ticket", str(tmp_path / "level2" / "ticket.pt"), *pruning])
    imp.main([*pruning, "--trained", str(level1.parent / "final.pt"), "--previous", str(level1), "--level", "2",
              "-o", str(tmp_path / "apart" / "ticket.pt")])
    fused, apart = (Checkpoint.load(tmp_path / d / "ticket.pt", "ticket") for d in ("level2", "apart"))
    assert fused.mask == apart.mask and fused.meta == apart.meta and fused.meta["level"] == 2
    assert all(torch.equal(fused.state[k], v) for k, v in apart.state.items())
    assert json.loads((tmp_path / "level2" / "ticket.json").read_text())["count"] == "open_lth"


def test_a_dense_run_that_prunes_level_one_makes_the_ticket_elth_imp_makes_from_its_files(
        tmp_path: Path, fashion_root: Path) -> None:
    """The workflow's dense job prunes its trained weights into level 1's ticket in the same process; the
    ticket is the one `python -m elth.imp --level 1` makes from the run's written rewind.pt and final.pt,
    as the separate `imp_ticket` job once did, and a dense run refuses a --rewind (its own is the one)."""
    from elth import train

    dense = tmp_path / "dense"
    common = ["--model", "resnet8-w0.25", "--dataset", "fashion-mnist", "--seed", "0", "--device", "cpu",
              "--recipe", json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "2it"}),
              "--data", json.dumps({"root": str(fashion_root), "augment": [], "train_subset": 256})]
    train.main([*common, "--out", str(dense), "--next-ticket", str(tmp_path / "level1" / "ticket.pt"),
                "--fraction", "0.5", "--count", "open_lth"])
    imp.main(["--rewind", str(dense / "rewind.pt"), "--trained", str(dense / "final.pt"), "--level", "1",
              "--fraction", "0.5", "--count", "open_lth", "-o", str(tmp_path / "apart" / "ticket.pt")])
    fused, apart = (Checkpoint.load(tmp_path / d / "ticket.pt", "ticket") for d in ("level1", "apart"))
    assert fused.mask == apart.mask and fused.meta == apart.meta and fused.meta["level"] == 1
    assert fused.step == apart.step == 2 and fused.state.keys() == apart.state.keys()
    assert all(torch.equal(fused.state[k], v) for k, v in apart.state.items())
    assert 0.49 < fused.mask.sparsity < 0.51
    with pytest.raises(SystemExit) as stop:
        train.main([*common, "--out", str(tmp_path / "again"), "--next-ticket", str(tmp_path / "x.pt"),
                    "--fraction", "0.5", "--rewind", str(dense / "rewind.pt")])
    assert stop.value.code != 0 and not (tmp_path / "again").exists()


def test_only_an_imp_tickets_retraining_prunes_a_next_level(tmp_path: Path, fashion_root: Path) -> None:
    from elth import train

    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    rewind = tmp_path / "rewind.pt"
    Checkpoint("resnet8-w0.25", "fashion-mnist", 0, model.state_dict(), meta={"seed": 0}).save(rewind)
    mask = Mask.ones(model, prunable(model, []))
    Checkpoint("resnet8-w0.25", "fashion-mnist", 0, model.state_dict(), mask,
               {"method": "snip", "level": 1}).save_ticket(tmp_path / "snip" / "ticket.pt")
    with pytest.raises(SystemExit) as stop:
        train.main(["--model", "resnet8-w0.25", "--dataset", "fashion-mnist", "--seed", "0", "--device", "cpu",
                    "--recipe", json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.05}),
                    "--data", json.dumps({"root": str(fashion_root), "augment": []}),
                    "--ticket", str(tmp_path / "snip" / "ticket.pt"), "--out", str(tmp_path / "snip"),
                    "--next-ticket", str(tmp_path / "next.pt"), "--rewind", str(rewind), "--fraction", "0.5"])
    assert stop.value.code != 0 and not (tmp_path / "next.pt").exists()
