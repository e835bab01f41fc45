"""Many tickets in one process: K stacked copies train to the weights each has trained alone, keep
their own masks, and the bf16 path keeps fp32 weights with pruned weights at zero."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch
import yaml
from test_dag import job_counts, snakemake
from test_train import random_mask, tiny_data, tiny_model

from elth.checkpoint import Checkpoint
from elth.errors import ConfigError
from elth.models.registry import build
from elth.recipe import Recipe
from elth.stack import stack_models, stack_state, unstack_state
from elth.train import evaluate, main, train, train_together

SHORT = Recipe(epochs=2, batch_size=16, lr=0.05, momentum=0.9, weight_decay=1e-3, milestones=(1,))


@pytest.mark.parametrize("name,channels", [("resnet8-w0.25", 1), ("vgg11", 3), ("mlp2", 1)])
def test_a_stacked_forward_is_the_copies_forwards_side_by_side(name: str, channels: int) -> None:
    size = 32 if name.startswith("vgg") else 28
    models = [build(name, in_channels=channels, num_classes=10, in_features=size * size * channels, seed=s).eval()
              for s in range(3)]
    x = torch.randn(5, channels, size, size)
    stacked = stack_models(models).eval()
    out = stacked(x.repeat(1, 3, 1, 1)).view(5, 3, -1)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[:, k], model(x), rtol=1e-5, atol=1e-5)


def test_stacking_and_unstacking_a_state_is_the_identity() -> None:
    models = [tiny_model(s) for s in range(4)]
    stacked = stack_models(models)
    back = unstack_state(stack_state([m.state_dict() for m in models], stacked.state_dict()), models[0].state_dict(), 4)
    for model, state in zip(models, back):
        for name, tensor in model.state_dict().items():
            assert torch.equal(state[name], tensor), name


@pytest.mark.parametrize("seeds", [[3, 3, 3], [0, 1, 2]], ids=["shared-batches", "own-batches"])
def test_tickets_trained_together_match_each_trained_alone(seeds: list[int]) -> None:
    data = tiny_data(n_train=64, augment=("crop", "flip"))
    alone, together, masks = [], [], []
    for k, seed in enumerate(seeds):
        model = tiny_model(10 + k)
        masks.append(random_mask(model, 0.3 + 0.2 * k, seed=k))
        alone.append(model)
        twin = tiny_model(10 + k)
        together.append(twin)
    results_alone = [train(m, data, SHORT, s, mask=mask, start_step=1) for m, s, mask in zip(alone, seeds, masks)]
    results = train_together(together, data, SHORT, seeds, masks, start_step=1)
    for a, b, mask, ra, rb in zip(alone, together, masks, results_alone, results):
        for name, tensor in a.state_dict().items():
            torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
        for name in mask:
            assert torch.equal(rb.mask[name], mask[name]), name
            assert torch.count_nonzero(b.state_dict()[name][~mask[name]]) == 0, name
        assert rb.history[-1]["test_acc"] == pytest.approx(ra.history[-1]["test_acc"], abs=1 / 40 + 1e-9)


def test_a_dense_snapshot_is_unstacked_per_copy() -> None:
    data = tiny_data(n_train=64)
    alone = [tiny_model(s) for s in (0, 1)]
    together = [tiny_model(s) for s in (0, 1)]
    snaps = [train(m, data, SHORT, s, snapshot_step=3).snapshot for m, s in zip(alone, (0, 1))]
    results = train_together(together, data, SHORT, [0, 1], [None, None], snapshot_step=3)
    for snap, result in zip(snaps, results):
        assert result.mask is None
        for name, tensor in snap.items():
            torch.testing.assert_close(result.snapshot[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_models_of_different_architectures_cannot_be_trained_together() -> None:
    other = build("resnet14-w0.25", in_channels=1, num_classes=10, seed=0)
    with pytest.raises(ConfigError, match="one architecture"):
        train_together([tiny_model(0), other], tiny_data(), SHORT, [0, 0], [None, None])


def test_bf16_autocast_keeps_fp32_weights_and_pruned_weights_at_zero_and_learns() -> None:
    data = tiny_data(n_train=96, augment=())
    model = tiny_model(0)
    mask = random_mask(model, 0.5, seed=0)
    _, before = evaluate(model, data.test_batches())
    result = train(model, data, Recipe(epochs=4, batch_size=16, lr=0.05), 0, mask=mask, precision="bf16")
    params = dict(model.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())
    for name in mask:
        assert torch.count_nonzero(params[name][~mask[name]]) == 0, name
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["test_acc"] > before.item()


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ConfigError, match="precision"):
        train(tiny_model(0), tiny_data(), SHORT, 0, precision="fp8")


def test_the_cli_retrains_several_tickets_at_once_into_their_own_directories(fashion_root, tmp_path) -> None:
    outs = []
    args = ["--model", "resnet8-w0.25", "--dataset", "fashion-mnist", "--seed", "0",
            "--recipe", json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.05}),
            "--data", json.dumps({"root": str(fashion_root), "augment": []}), "--device", "cpu"]
    for k, density in enumerate((0.2, 0.6)):
        model = build("resnet8-w0.25", in_channels=1, num_classes=10, seed=0)
        ticket = tmp_path / f"t{k}" / "ticket.pt"
        Checkpoint("resnet8-w0.25", "fashion-mnist", 0, model.state_dict(), random_mask(model, density, k),
                   {"method": f"m{k}", "level": 1}).save_ticket(ticket)
        outs.append(ticket.parent)
        args += ["--ticket", str(ticket), "--out", str(ticket.parent)]
    main(args)
    for out, density in zip(outs, (0.2, 0.6)):
        summary = json.loads((out / "summary.json").read_text())
        final = Checkpoint.load(out / "final.pt")
        assert summary["method"] == out.name.replace("t", "m")
        assert summary["sparsity"] == pytest.approx(1 - density, abs=0.05)
        assert final.mask.sparsity == summary["sparsity"]
        assert not (out / "resume.pt").exists()


def test_tickets_per_job_groups_every_ticket_of_a_level_into_jobs_of_that_size(fashion_root, tmp_path) -> None:
    config = {
        "experiment": "together", "dataset": {"name": "fashion-mnist", "root": str(fashion_root)}, "seeds": [0, 1],
        "models": ["resnet14-w0.25", "resnet20-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 2, "fraction": 0.5}, "engine": {"tickets_per_job": 3, "precision": "bf16"},
        "baselines": {"methods": ["random", "magnitude", "snip"]},
        "ett": [{"scheme": "default", "spec": "default", "pairs": "all"}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "-p", "--configfile", str(tmp_path / "c.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    # Four stacking tickets per model and level (one ETT, three baselines): a group of 3 and one of 1;
    # IMP's tickets retrain alone (level 1 in its round, which prunes level 2).
    for model in ("resnet14_w0_25", "resnet20_w0_25"):
        assert counts[f"retrain_together_{model}_0"] == counts[f"retrain_together_{model}_1"] == 2 * 2
    assert counts["retrain"] == counts["imp_round"] == 2 * 2
    assert run.stdout.count("--precision bf16") == 2 * 2 + 2 * 2 * 2 + 4 * 2 * 2
    assert "--ticket results/fashion-mnist/resnet20-w0.25/seed1/ett/from-resnet14-w0.25/default/level2/ticket.pt" in run.stdout


def test_tickets_per_job_makes_tickets_only_at_the_compared_levels(fashion_root, tmp_path) -> None:
    config = {
        "experiment": "together", "dataset": {"name": "fashion-mnist", "root": str(fashion_root)}, "seeds": [0],
        "models": ["resnet14-w0.25", "resnet20-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 3, "fraction": 0.5, "compare_at": [2]}, "engine": {"tickets_per_job": 8},
        "baselines": {"methods": ["random", "snip"]},
        "ett": [{"scheme": "default", "spec": "default", "pairs": "all"}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "-p", "--configfile", str(tmp_path / "c.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    # Level 2: one ETT and two baselines per model in one job; IMP alone at every level.
    assert counts["retrain_together_resnet14_w0_25_0"] == counts["retrain_together_resnet20_w0_25_0"] == 1
    assert counts["retrain"] == 2 and counts["imp_round"] == 2 * 2  # the last level; the others prune the next
    assert counts["baselines"] == 2 and counts["ett"] == 2
    for level in (1, 3):
        assert f"baselines/random/level{level}" not in run.stdout
        assert f"level{level}/ticket.pt --out" not in run.stdout  # no group at an uncompared level


def test_with_tickets_per_job_an_imp_round_waits_only_for_its_own_model(fashion_root, tmp_path) -> None:
    config = {
        "experiment": "together", "dataset": {"name": "fashion-mnist", "root": str(fashion_root)}, "seeds": [0],
        "models": ["resnet14-w0.25", "resnet20-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 2, "fraction": 0.5}, "engine": {"tickets_per_job": 8},
        "baselines": {"methods": ["random"]},
        "ett": [{"scheme": "default", "spec": "default", "pairs": "all"}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    target = "results/fashion-mnist/resnet14-w0.25/seed0/imp/level2/ticket.pt"
    run = snakemake(tmp_path, target, "-n", "--configfile", str(tmp_path / "c.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resnet20" not in run.stdout.split("Job stats:")[1]
    assert "retrain_together" not in run.stdout


def job_priorities(output: str) -> dict[str, set[int]]:
    """Each rule's job priorities in a dry run's listing (a job without the line has priority 0)."""
    found: dict[str, set[int]] = {}
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule:
            priority = re.search(r"^\s+priority: (\d+)$", block, re.M)
            found.setdefault(rule[1], set()).add(int(priority[1]) if priority else 0)
    return found


@pytest.mark.parametrize("tickets_per_job", [1, 8])
def test_imps_chain_runs_before_the_tickets_made_from_it(fashion_root, tmp_path, tickets_per_job: int) -> None:
    config = {
        "experiment": "together", "dataset": {"name": "fashion-mnist", "root": str(fashion_root)}, "seeds": [0],
        "models": ["resnet14-w0.25", "resnet20-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 2, "fraction": 0.5}, "engine": {"tickets_per_job": tickets_per_job},
        "baselines": {"methods": ["random", "snip"]},
        "ett": [{"scheme": "default", "spec": "default", "pairs": "all"}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "c.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]
    found = job_priorities(run.stdout)
    chain = found["dense"] | found["imp_round_1"]
    tickets = found["ett"] | found["baselines"]
    if tickets_per_job > 1:
        chain |= found["retrain"]  # IMP's tickets alone: the others stack
        tickets |= found["retrain_together_resnet14_w0_25_0"] | found["retrain_together_resnet20_w0_25_0"]
    else:
        assert len(found["retrain"]) == 1  # one rule retrains every kind of ticket alike
    assert min(chain) > max(tickets), found


def lmc_config(fashion_root, tmp_path, tickets_per_job: int) -> str:
    config = {
        "experiment": "together", "dataset": {"name": "fashion-mnist", "root": str(fashion_root), "augment": []},
        "seeds": [0], "models": ["resnet8-w0.25", "resnet14-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 1, "fraction": 0.5}, "engine": {"tickets_per_job": tickets_per_job},
        "baselines": {"methods": ["random"]},
        "ett": [{"scheme": "default", "spec": "default", "pairs": ["resnet14-w0.25->resnet8-w0.25"]}],
        "lmc": {"models": ["resnet8-w0.25"], "methods": ["imp", "ett"], "noise_seeds": [[0, 1], [0, 2]],
                "alphas": 3, "bn_batches": 1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    return str(tmp_path / "c.yaml")


def test_with_tickets_per_job_a_levels_lmc_copies_train_stacked_one_job_per_noise_seed(fashion_root, tmp_path) -> None:
    run = snakemake(tmp_path, "-n", "-p", "--configfile", lmc_config(fashion_root, tmp_path, 2))
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    # The IMP ticket and the ETT from ResNet-14, copied under noise seeds 1 and 2 (0 is the run's own).
    assert counts["lmc_copies_resnet8_w0_25_level1_0"] == 2 and "lmc_copy" not in counts
    assert counts["lmc"] == 2 * 2  # two tickets, two pairs of noise seeds
    run_dir = "results/fashion-mnist/resnet8-w0.25/seed0"
    for noise in (1, 2):
        assert (f"--data-seed {noise} --recipe" in run.stdout
                and f"--ticket {run_dir}/imp/level1/ticket.pt --out {run_dir}/imp/level1/lmc/noise{noise}" in run.stdout
                and f"--ticket {run_dir}/ett/from-resnet14-w0.25/default/level1/ticket.pt"
                    f" --out {run_dir}/ett/from-resnet14-w0.25/default/level1/lmc/noise{noise}" in run.stdout)
    alone = job_counts(snakemake(tmp_path, "-n", "--configfile", lmc_config(fashion_root, tmp_path, 1)).stdout)
    assert alone["lmc_copy"] == 4 and not any(job.startswith("lmc_copies") for job in alone)


def test_stacked_lmc_copies_run_end_to_end_and_each_keeps_its_own_ticket(fashion_root, tmp_path) -> None:
    config = lmc_config(fashion_root, tmp_path, 2)
    run = snakemake(tmp_path, "results/tables/lmc_runs.csv", "--cores", "2", "--configfile", config)
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = tmp_path / "results" / "fashion-mnist" / "resnet8-w0.25" / "seed0"
    for ticket in ("imp/level1", "ett/from-resnet14-w0.25/default/level1"):
        mask = Checkpoint.load(run_dir / ticket / "ticket.pt", "ticket").mask
        for noise in (1, 2):
            copy = Checkpoint.load(run_dir / ticket / "lmc" / f"noise{noise}" / "final.pt")
            assert copy.meta["data_seed"] == noise and copy.mask == mask
    lmc = pd.read_csv(tmp_path / "results" / "tables" / "lmc_runs.csv")
    assert set(zip(lmc["method"], lmc["noise_b"], strict=True)) == {("imp", 1), ("imp", 2), ("ett", 1), ("ett", 2)}


@pytest.mark.parametrize("models,device,stacked", [
    (["resnet14-w0.25", "resnet20-w0.25"], "cpu", True),  # 16 channels at most: stacking measured to pay
    (["resnet14-w0.25", "resnet20"], "cpu", False),       # a full-width model: measured slower stacked
    (["resnet14-w0.25", "resnet20-w0.25"], "auto", False),  # nothing measured on a GPU yet
])
def test_tickets_per_job_auto_stacks_where_it_was_measured_to_pay(fashion_root, tmp_path, models, device,
                                                                  stacked) -> None:
    from elth.config import AUTO_STACK, tickets_per_job

    config = {
        "experiment": "together", "dataset": {"name": "fashion-mnist", "root": str(fashion_root)}, "seeds": [0],
        "models": models, "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 1, "fraction": 0.5}, "engine": {"tickets_per_job": "auto"},
        "resources": {"device": device}, "baselines": {"methods": ["random", "snip"]},
        "ett": [{"scheme": "default", "spec": "default", "pairs": "all"}],
    }
    assert tickets_per_job(config) == (AUTO_STACK if stacked else 1)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "c.yaml"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert any(rule.startswith("retrain_together_") for rule in job_counts(run.stdout)) == stacked
