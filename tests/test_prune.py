"""Masks and global magnitude pruning: IMP's sparsity schedule, exact counts, and the mask type."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from elth.errors import ConfigError
from elth.models.registry import build
from elth.prune import Mask, global_magnitude, imp_sparsity, prunable


def random_weights(seed: int, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) for n, s in shapes.items()}


SHAPES = {"a.weight": (64, 32), "b.weight": (16, 8, 3, 3), "c.weight": (10, 100)}


@pytest.mark.parametrize("level,expected", [(6, 0.7379), (10, 0.8926), (16, 0.9719)])
def test_imp_sparsity_after_k_rounds_is_one_minus_point8_to_the_k(level: int, expected: float) -> None:
    weights = random_weights(0, SHAPES)
    mask = Mask({n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()})
    for k in range(1, level + 1):
        # Each round sees new trained weights, as IMP does after retraining.
        weights = {n: w * torch.rand_like(w) for n, w in weights.items()}
        mask = global_magnitude(weights, mask, 0.2)
        assert abs(mask.sparsity - imp_sparsity(k, 0.2)) <= k / mask.total
    assert round(mask.sparsity, 4) == pytest.approx(expected, abs=1e-4)
    assert imp_sparsity(level, 0.2) == pytest.approx(expected, abs=5e-5)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), fraction=st.floats(0.01, 0.95), rounds=st.integers(1, 4))
def test_each_round_prunes_the_smallest_remaining_weights_exactly(seed: int, fraction: float, rounds: int) -> None:
    weights = random_weights(seed, SHAPES)
    mask = Mask({n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()})
    for _ in range(rounds):
        new = global_magnitude(weights, mask, fraction)
        removed = {n: mask[n] & ~new[n] for n in mask}
        assert all(not bool((new[n] & ~mask[n]).any()) for n in mask), "a pruned weight came back"
        assert sum(int(r.sum()) for r in removed.values()) == round(fraction * mask.remaining)
        kept_scores = torch.cat([weights[n].abs()[new[n]] for n in mask])
        removed_scores = torch.cat([weights[n].abs()[removed[n]] for n in mask])
        if len(kept_scores) and len(removed_scores):
            assert removed_scores.max() <= kept_scores.min()
        mask = new


def test_pruning_ranks_globally_not_per_layer() -> None:
    weights = {"small.weight": torch.full((10,), 0.01), "large.weight": torch.full((10,), 5.0)}
    mask = Mask({n: torch.ones(10, dtype=torch.bool) for n in weights})
    new = global_magnitude(weights, mask, 0.5)
    assert int(new["small.weight"].sum()) == 0 and int(new["large.weight"].sum()) == 10


def test_unpruned_globs_exclude_layers_and_a_typo_is_an_error() -> None:
    model = build("vgg11", 3, 10)
    names = prunable(model, ["fc.weight"])
    assert "fc.weight" not in names and "stages.0.0.conv.weight" in names
    with pytest.raises(ConfigError, match="fc.wieght"):
        prunable(model, ["fc.wieght"])


def test_mask_reports_global_and_per_layer_sparsity_in_both_conventions() -> None:
    mask = Mask({"a": torch.tensor([True, False, False, False]), "b": torch.tensor([True, True, True, True])})
    assert mask.sparsity == pytest.approx(3 / 8)
    assert mask.layer_sparsity() == {"a": 0.75, "b": 0.0}
    summary = mask.summary(nn.Sequential(nn.Linear(2, 2)))  # a model whose one 2x2 layer the mask leaves out
    assert summary["remaining"] == 5 and summary["total"] == 8 and summary["total_all"] == 12
    assert summary["sparsity"] == pytest.approx(3 / 8) and summary["sparsity_all"] == pytest.approx(3 / 12)
    assert set(summary["sparsity_conventions"]) == {"sparsity", "sparsity_all"}


def test_mask_apply_zeroes_exactly_the_pruned_weights() -> None:
    model = build("mlp1", 1, 10, in_features=16, seed=0)
    names = prunable(model)
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: torch.rand(dict(model.named_parameters())[n].shape, generator=g) > 0.5 for n in names})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask.apply_(model)
    for n, p in model.named_parameters():
        if n in mask:
            assert bool((p[~mask[n]] == 0).all()) and torch.equal(p[mask[n]], before[n][mask[n]])
        else:
            assert torch.equal(p, before[n])


def test_fraction_outside_zero_one_is_refused() -> None:
    mask = Mask({"a": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="fraction"):
        global_magnitude({"a": torch.ones(4)}, mask, 1.5)
