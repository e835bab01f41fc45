"""Pruning baselines: each pinned by what makes it that method, and all matched to IMP's sparsity."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from elth.baseline import make
from elth.checkpoint import Checkpoint, build_for
from elth.prune import Mask
from elth.prune.baselines import GRASP_TEMPERATURE, METHODS, grasp, random, snip, synflow
from elth.prune.magnitude import keep_top

from conftest import ROOT


def two_layer(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False))


def reference_for(model: nn.Module, density: float, seed: int = 0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < density for n, p in model.named_parameters() if n.endswith("weight")})


def batch(seed: int = 0, n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g))]


def test_snip_keeps_the_largest_hand_computed_g_times_w() -> None:
    model = two_layer()
    ref = reference_for(model, 0.4)
    (x, y), = batch()
    w1, w2 = model[0].weight.detach(), model[1].weight.detach()
    # By hand: logits = W2 W1 x; dL/dlogits = (softmax - onehot)/n; dL/dW2 = delta^T h; dL/dW1 = (delta W2)^T x.
    h = x @ w1.T
    delta = (torch.softmax(h @ w2.T, dim=1) - F.one_hot(y, 3).float()) / len(y)
    g2 = delta.T @ h
    g1 = (delta @ w2).T @ x
    scores = torch.cat([(g1 * w1).abs().flatten(), (g2 * w2).abs().flatten()])
    expected = torch.zeros_like(scores, dtype=torch.bool)
    expected[torch.argsort(scores, descending=True)[:ref.remaining]] = True
    mask = snip(model, ref, [(x, y)], torch.Generator())
    assert torch.equal(torch.cat([mask["0.weight"].flatten(), mask["1.weight"].flatten()]), expected)


def test_grasp_removes_the_weights_the_papers_formula_ranks_highest() -> None:
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    ref = Mask({"0.weight": torch.rand(4, 5) < 0.5, "2.weight": torch.rand(3, 4) < 0.5})
    data = batch(1)
    names = list(ref)
    shapes = [dict(model.named_parameters())[n].shape for n in names]
    theta = torch.cat([dict(model.named_parameters())[n].detach().flatten() for n in names])

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        w0, w2 = flat[:20].view(shapes[0]), flat[20:].view(shapes[1])
        x, y = data[0]
        out = F.linear(torch.tanh(F.linear(x, w0, model[0].bias)), w2, model[2].bias)
        return F.cross_entropy(out / GRASP_TEMPERATURE, y)

    # Independently of double backprop: the full Hessian times the gradient, then S = -theta * Hg.
    g = torch.autograd.functional.jacobian(loss_of, theta)
    hessian = torch.autograd.functional.hessian(loss_of, theta)
    score = -theta * (hessian @ g)
    removed = torch.argsort(score, descending=True)[:theta.numel() - ref.remaining]
    mask = grasp(model, ref, data, torch.Generator())
    kept = torch.cat([mask[n].flatten() for n in names])
    assert not kept[removed].any() and int(kept.sum()) == ref.remaining


def test_synflow_needs_no_data_and_ignores_what_it_is_given() -> None:
    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    ref = reference_for(model, 0.2)
    blank = synflow(model, ref, [], torch.Generator(), iterations=5, input_shape=(1, 28, 28))
    noise = synflow(model, ref, [(torch.randn(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))], torch.Generator(), iterations=5)
    assert blank == noise and blank.remaining == ref.remaining


def test_synflow_leaves_the_callers_model_untouched() -> None:
    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synflow(model, reference_for(model, 0.3), [], torch.Generator(), iterations=3, input_shape=(1, 28, 28))
    assert all(torch.equal(before[k], v) and v.dtype == before[k].dtype for k, v in model.state_dict().items())


def test_random_keeps_every_layers_count_and_moves_the_mask() -> None:
    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    ref = reference_for(model, 0.3)
    mask = random(model, ref, [], torch.Generator().manual_seed(0))
    assert all(int(mask[n].sum()) == int(ref[n].sum()) for n in ref) and mask != ref


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("density", [0.5, 0.2, 0.05])
def test_every_baseline_matches_the_imp_tickets_sparsity(method: str, density: float) -> None:
    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    ref = reference_for(model, density, seed=3)
    data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
    extra = {"iterations": 10} if method == "synflow" else {}
    mask = METHODS[method](model, ref, data, torch.Generator().manual_seed(0), **extra)
    assert set(mask) == set(ref) and mask.remaining == ref.remaining  # exact, not just within rounding


def test_magnitude_keeps_the_largest_rewind_weights() -> None:
    model = two_layer()
    ref = reference_for(model, 0.5)
    mask = METHODS["magnitude"](model, ref, [], torch.Generator())
    w = torch.cat([p.detach().abs().flatten() for p in model.parameters()])
    kept = torch.cat([mask[n].flatten() for n in ref])
    assert w[kept].min() >= w[~kept].max()


def test_keep_top_breaks_ties_by_position_and_counts_exactly() -> None:
    mask = keep_top({"a": torch.ones(4), "b": torch.ones(4)}, 3)
    assert mask["a"].tolist() == [True, True, True, False] and mask.remaining == 3


def rewind_and_reference(tmp_path: Path) -> tuple[Path, Path, Checkpoint]:
    net = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    rewind = Checkpoint("resnet8-w0.25", "fashion-mnist", 5, net.state_dict(), meta={"seed": 0})
    ref = Checkpoint(rewind.model, rewind.dataset, 5, rewind.state, reference_for(net, 0.25), {"method": "imp", "level": 2, "seed": 0})
    rewind.save(tmp_path / "rewind.pt")
    ref.save(tmp_path / "ref.pt", "ticket")
    return tmp_path / "rewind.pt", tmp_path / "ref.pt", ref


def test_reinit_keeps_the_mask_and_redraws_the_weights_from_the_initialiser(tmp_path: Path) -> None:
    _, _, ref = rewind_and_reference(tmp_path)
    rewind = Checkpoint(ref.model, ref.dataset, ref.step, ref.state)
    out = make("reinit", rewind, ref, [], seed=0, iterations=1)
    assert out.mask == ref.mask and out.step == ref.step and out.meta["method"] == "reinit"
    assert not torch.equal(out.state["conv1.weight"], ref.state["conv1.weight"])
    fresh = build_for(ref.model, ref.dataset, seed=0).state_dict()["conv1.weight"]
    assert not torch.equal(out.state["conv1.weight"], fresh)  # its own seed stream, not the run's init
    assert abs(float(out.state["conv1.weight"].std()) - float(fresh.std())) < 0.5 * float(fresh.std())
    others = make("magnitude", rewind, ref, [], seed=0, iterations=1)
    assert all(torch.equal(others.state[k], v) for k, v in ref.state.items())


def test_the_cli_matches_the_reference_and_reads_batches_for_snip(tmp_path: Path, fashion_root: Path) -> None:
    rewind, ref, reference = rewind_and_reference(tmp_path)
    data = '{"root": "%s", "augment": []}' % fashion_root
    run = subprocess.run([sys.executable, "-m", "elth.baseline", "snip", "--rewind", str(rewind), "--reference", str(ref),
                          "--data", data, "--batch-size", "16", "--batches", "2", "-o", str(tmp_path / "b.pt")],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    out = Checkpoint.load(tmp_path / "b.pt", "ticket", model="resnet8-w0.25")
    assert out.mask.remaining == reference.mask.remaining and out.meta["level"] == 2
    other = build_for("resnet14-w0.25", "fashion-mnist", seed=0)
    Checkpoint("resnet14-w0.25", "fashion-mnist", 5, other.state_dict()).save(tmp_path / "other.pt")
    bad = subprocess.run([sys.executable, "-m", "elth.baseline", "random", "--rewind", str(tmp_path / "other.pt"),
                          "--reference", str(ref), "-o", str(tmp_path / "c.pt")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "expected resnet14-w0.25" in bad.stderr and not (tmp_path / "c.pt").exists()


def test_one_process_makes_each_methods_ticket_as_its_own_command_would(tmp_path: Path, fashion_root: Path) -> None:
    rewind, ref, _ = rewind_and_reference(tmp_path)
    data = '{"root": "%s", "augment": []}' % fashion_root
    common = ["--rewind", str(rewind), "--reference", str(ref), "--data", data, "--batch-size", "16", "--batches", "2",
              "--iterations", "3", "--seed", "1", "--level", "2"]
    methods = ["random", "snip", "synflow"]
    shared = subprocess.run([sys.executable, "-m", "elth.baseline", *methods, *common,
                             *(f"-o{tmp_path / m}.pt" for m in methods)], capture_output=True, text=True, cwd=ROOT)
    assert shared.returncode == 0, shared.stderr
    for method in methods:
        alone = subprocess.run([sys.executable, "-m", "elth.baseline", method, *common, "-o", str(tmp_path / "alone.pt")],
                               capture_output=True, text=True, cwd=ROOT)
        assert alone.returncode == 0, alone.stderr
        one, other = (Checkpoint.load(tmp_path / f, "ticket") for f in (f"{method}.pt", "alone.pt"))
        assert one.mask == other.mask and one.meta == other.meta, method
        assert all(torch.equal(one.state[k], v) for k, v in other.state.items()), method
    unmatched = subprocess.run([sys.executable, "-m", "elth.baseline", "random", "snip", *common,
                                "-o", str(tmp_path / "x.pt")], capture_output=True, text=True, cwd=ROOT)
    assert unmatched.returncode == 2 and "one -o per method" in unmatched.stderr


# --- Where the random baseline starts (random_start) ------------------------------------------------------


def test_random_from_the_pruned_model_starts_every_newly_kept_weight_at_zero(tmp_path: Path) -> None:
    """lottery/branch/randomly_prune.py (open_lth): the weights come from the level's saved pruned
    model, rewind weights times the IMP mask, so what the permuted mask newly keeps starts at 0."""
    _, _, ref = rewind_and_reference(tmp_path)
    rewind = Checkpoint(ref.model, ref.dataset, ref.step, ref.state)
    pruned = make("random", rewind, ref, [], seed=4, random_start="pruned")
    zeros = newly = 0
    for n, kept in pruned.mask.items():
        new = kept & ~ref.mask[n]
        assert bool((pruned.state[n][new] == 0).all())
        assert torch.equal(pruned.state[n][kept & ref.mask[n]], ref.state[n][kept & ref.mask[n]])
        zeros += int((pruned.state[n][kept] == 0).sum())
        newly += int(new.sum())
    assert zeros == newly > 0  # the rewind weights are nonzero: every zero the ticket starts with is a moved entry
    assert all(torch.equal(pruned.state[k], v) for k, v in ref.state.items() if k not in ref.mask)
    assert pruned.meta["random_start"] == "pruned"
    rewound = make("random", rewind, ref, [], seed=4)
    assert rewound.mask == pruned.mask and rewound.meta["random_start"] == "rewind"
    assert all(torch.equal(rewound.state[k], v) for k, v in ref.state.items())  # today's start: the rewind weights


# --- SNIP and GraSP as the authors ran them: mode, GraSP's ranking, a whole epoch ---------------------------


def bn_model() -> nn.Module:
    """A model whose BN running statistics are far from any batch's, so eval and train mode differ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6, bias=False), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3, bias=False))
    with torch.no_grad():
        model[1].running_mean.copy_(torch.linspace(-2.0, 2.0, 6))
        model[1].running_var.copy_(torch.linspace(0.2, 3.0, 6))
    return model


@pytest.mark.parametrize("method", ["snip", "grasp"])
def test_eval_mode_scores_with_the_rewind_points_bn_statistics_and_leaves_them(method: str) -> None:
    """training/train.py's `accumulate` (SNIP) and `grasp` call model.eval() before every batch."""
    ref = Mask({"0.weight": torch.rand(6, 5, generator=torch.Generator().manual_seed(1)) < 0.5,
                "3.weight": torch.rand(3, 6, generator=torch.Generator().manual_seed(2)) < 0.5})
    data = [(torch.randn(8, 5, generator=torch.Generator().manual_seed(s)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
            for s in range(3)]
    model = bn_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluated = METHODS[method](model, ref, data, torch.Generator(), mode="eval")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    trained_model = bn_model()
    in_train = METHODS[method](trained_model, ref, data, torch.Generator(), mode="train")
    assert not torch.equal(trained_model[1].running_mean, before["1.running_mean"])  # train mode moves them
    assert evaluated != in_train
    if method == "snip":  # eval mode's scores are |g * w| of the model that normalises by the running statistics
        model = bn_model().eval()
        weights = [model[0].weight, model[3].weight]
        g = [torch.zeros_like(w) for w in weights]
        for x, y in data:
            for acc, gi in zip(g, torch.autograd.grad(F.cross_entropy(model(x), y), weights)):
                acc += gi
        expected = keep_top({n: (gi * w).detach().abs() for n, gi, w in zip(ref, g, weights)}, ref.remaining)
        assert evaluated == expected


def test_grasp_elasticlth_ranking_keeps_the_largest_magnitude_of_w_times_hg() -> None:
    """pruning/grasp_global.py: score = param.grad * param.data with param.grad = Hg (training/train.py's
    `grasp`: gnorm = g . dL/dw, backward), divided by |sum| + 1e-10, then keeps np.abs(score) > the
    threshold; Wang et al. remove the largest -w * Hg instead."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    ref = Mask({"0.weight": torch.rand(4, 5) < 0.5, "2.weight": torch.rand(3, 4) < 0.5})
    data = batch(1) + batch(2)
    names = list(ref)
    shapes = [dict(model.named_parameters())[n].shape for n in names]
    theta = torch.cat([dict(model.named_parameters())[n].detach().flatten() for n in names])

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        w0, w2 = flat[:20].view(shapes[0]), flat[20:].view(shapes[1])
        return sum(F.cross_entropy(F.linear(torch.tanh(F.linear(x, w0, model[0].bias)), w2, model[2].bias)
                                   / GRASP_TEMPERATURE, y) for x, y in data)

    # Independently of double backprop: the port's score w * Hg, Hg from the full Hessian.
    hessian = torch.autograd.functional.hessian(loss_of, theta)
    score = theta * (hessian @ torch.autograd.functional.jacobian(loss_of, theta))
    assert (score > 0).any() and (score < 0).any()  # signs matter here
    port = grasp(model, ref, data, torch.Generator(), ranking="elasticlth")
    kept = torch.cat([port[n].flatten() for n in names])
    assert torch.equal(kept.nonzero().flatten().sort().values,
                       torch.argsort(score.abs(), descending=True)[:ref.remaining].sort().values)
    wang = grasp(model, ref, data, torch.Generator(), ranking="wang")
    assert wang != port and wang.remaining == port.remaining == ref.remaining


def counting(model: nn.Module) -> list[int]:
    """Every batch size `model` is called on, appended as it runs."""
    seen: list[int] = []
    model.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    return seen


def test_an_epoch_of_batches_is_the_runs_first_epoch_read_once_by_snip_and_twice_by_grasp() -> None:
    """training/train.py's `accumulate` (SNIP) loops over one whole epoch of the train loader; its `grasp`
    loops over it twice, g without a graph, then Hg."""
    from elth.baseline import EpochBatches
    from test_train import tiny_data

    data = tiny_data(n_train=100)
    epoch = EpochBatches(data, seed=2, batch_size=16, count=None)
    steps = data.steps_per_epoch(16)
    assert steps == 6
    for a, b in zip(list(epoch), data.epoch(2, 0, 16), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert len(list(EpochBatches(data, seed=2, batch_size=16, count=4))) == 4
    model = build_for("resnet8-w0.25", "fashion-mnist", seed=0)
    ref = reference_for(model, 0.3)
    seen = counting(model)
    snip(model, ref, epoch, torch.Generator(), mode="eval")
    assert seen == [16] * steps
    seen.clear()
    grasp(model, ref, epoch, torch.Generator(), mode="eval")
    assert seen == [16] * (2 * steps)
    with pytest.raises(TypeError, match="twice"):
        grasp(model, ref, iter(epoch), torch.Generator())


def test_the_cli_scores_a_whole_epoch_in_eval_mode_and_records_the_settings(tmp_path: Path, fashion_root: Path) -> None:
    from elth.baseline import batch_count, main

    rewind, ref, reference = rewind_and_reference(tmp_path)
    data = '{"root": "%s", "augment": []}' % fashion_root
    main(["grasp", "--rewind", str(rewind), "--reference", str(ref), "--data", data, "--batch-size", "64",
          "--batches", "epoch", "--mode", "eval", "--grasp", "elasticlth", "-o", str(tmp_path / "g.pt")])
    out = Checkpoint.load(tmp_path / "g.pt", "ticket")
    assert out.mask.remaining == reference.mask.remaining
    assert (out.meta["batches"], out.meta["mode"], out.meta["ranking"]) == ("epoch", "eval", "elasticlth")
    assert batch_count("3") == 3
    for bad in ("0", "-1", "all"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive number of mini-batches or 'epoch'"):
            batch_count(bad)
