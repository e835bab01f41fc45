"""Dataset transfer (Sec 4.7, Table 4): the re-labelled ticket, the refusals, the DAG and table4."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from elth.checkpoint import Checkpoint
from elth.data import load_split
from elth.errors import ConfigError
from elth.report.tables import paper_numbers, table4
from elth.transfer import main, transfer
from elth.transform.apply import transform
from test_dag import job_counts, snakemake
from test_transform import make_ticket


def assert_same_ticket(a: Checkpoint, b: Checkpoint) -> None:
    assert a.model == b.model and a.step == b.step
    assert a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert a.mask == b.mask


def test_digits_loads_1437_training_and_360_test_images_of_one_28x28_channel() -> None:
    train, test = load_split("digits", "unused", True), load_split("digits", "unused", False)
    assert tuple(train.images.shape) == (1437, 1, 28, 28) and tuple(test.images.shape) == (360, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    assert set(train.labels.tolist()) == set(range(10)) and set(test.labels.tolist()) == set(range(10))
    again = load_split("digits", "unused", False)
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)


def test_a_direct_transfer_keeps_exactly_the_source_mask_and_weights() -> None:
    source = make_ticket("resnet8-w0.25")
    ticket, mapping, plan = transfer(source, "digits")
    assert ticket.dataset == "digits" and mapping is None and plan is None
    assert_same_ticket(ticket, source)
    ticket.build_model()  # fits the model built for the target dataset


def test_a_transfer_to_another_depth_is_exactly_the_etts_ticket() -> None:
    source = make_ticket("resnet14-w0.25")
    ticket, _, _ = transfer(source, "digits", "resnet20-w0.25", "Inter 1", seed=3)
    ett, _, _ = transform(source, "resnet20-w0.25", "Inter 1", 3)
    assert ticket.dataset == "digits"
    assert_same_ticket(ticket, ett)


@pytest.mark.parametrize("source_dataset, target_dataset, tensor", [
    ("fashion-mnist", "cifar10", "conv1.weight"),   # 1 against 3 input channels
    ("cifar10", "imagenet", "fc.weight"),           # 10 against 1000 classes
])
def test_a_channel_or_class_mismatch_is_refused_naming_both_datasets_and_the_tensor(
        source_dataset: str, target_dataset: str, tensor: str) -> None:
    source = make_ticket("resnet8-w0.25", dataset=source_dataset)
    with pytest.raises(ConfigError) as err:
        transfer(source, target_dataset)
    assert source_dataset in str(err.value) and target_dataset in str(err.value) and repr(tensor) in str(err.value)


def test_the_cli_records_what_the_ticket_is_and_checks_the_source_dataset(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "imp.pt"
    make_ticket("resnet14-w0.25").save(path, "ticket")
    out = tmp_path / "transfer" / "ticket.pt"
    main([str(path), "--from-dataset", "fashion-mnist", "--dataset", "digits", "--to", "resnet20-w0.25",
          "--scheme", "default", "--seed", "0", "-o", str(out)])
    ticket = Checkpoint.load(out, "ticket", model="resnet20-w0.25", dataset="digits")
    assert ticket.meta["method"] == "transfer" and ticket.meta["source"] == "fashion-mnist/resnet14-w0.25"
    assert ticket.meta["scheme"] == "default" and ticket.meta["level"] == 3
    assert ticket.meta["source_dataset"] == "fashion-mnist" and ticket.meta["source_model"] == "resnet14-w0.25"
    assert json.loads(out.with_suffix(".json").read_text())["plan"]
    with pytest.raises(SystemExit):
        main([str(path), "--from-dataset", "mnist", "--dataset", "digits", "-o", str(tmp_path / "x.pt")])
    assert "was made on fashion-mnist, expected mnist" in capsys.readouterr().err


def transfer_config(workdir: Path, **edits) -> Path:
    config = {
        "experiment": "micro-transfer",
        "dataset": {"name": "fashion-mnist", "root": "data", "train_subset": 100, "augment": []},
        "seeds": [0],
        "models": ["resnet14-w0.25", "resnet20-w0.25"],
        "recipes": {"cifar-resnet": {"epochs": 1, "batch_size": 64, "lr": 0.05, "rewind": "1it"}},
        "pruning": {"levels": 2, "fraction": 0.5},
        "transfer": {"from": {"name": "digits", "augment": []},
                     "pairs": ["resnet14-w0.25->resnet14-w0.25", "resnet14-w0.25->resnet20-w0.25"]},
        **edits,
    }
    path = workdir / "transfer.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_transfer_dag_lists_the_source_runs_the_transfers_and_their_retraining(tmp_path: Path) -> None:
    run = snakemake(tmp_path, "-n", "-p", "--configfile", str(transfer_config(tmp_path)))
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    # digits' ResNet-14 dense run, which prunes level 1's ticket, and level 1's retraining, which prunes
    # level 2's; two transfers (direct, ETT) per level; their retraining beside the study's own IMP (its
    # level 1 in a round of its own too).
    assert counts["prepare_data"] == 2 and counts["dense"] == 3 and "imp_ticket" not in counts
    assert counts["imp_round"] == 2 + 1 and counts["transfer"] == 4 and counts["retrain"] == 4 + 2
    assert counts["table"] == 3
    for path in ["results/digits/resnet14-w0.25/seed0/dense/final.pt",
                 "results/digits/resnet14-w0.25/seed0/imp/level2/ticket.pt",
                 "results/fashion-mnist/resnet14-w0.25/seed0/transfer/from-digits/resnet14-w0.25/direct/level2/summary.json",
                 "results/fashion-mnist/resnet20-w0.25/seed0/transfer/from-digits/resnet14-w0.25/default/level1/summary.json",
                 "results/tables/table4.md"]:
        assert path in run.stdout, path
    commands = [line for line in run.stdout.splitlines() if "-m elth.train" in line]
    assert all(('"train_subset":null' in c) == ("--dataset digits" in c) for c in commands)  # each its own options


def test_with_tickets_per_job_transferred_tickets_retrain_alone_beside_the_stacked_baselines(tmp_path: Path) -> None:
    config = transfer_config(tmp_path, engine={"tickets_per_job": 2}, baselines={"methods": ["random", "snip"]})
    run = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    counts = job_counts(run.stdout)
    # The study's two baselines per (model, level) stack; IMP (both datasets) and the four
    # transferred tickets retrain alone; digits gets no baselines.
    assert counts["retrain_together_resnet14_w0_25_0"] == counts["retrain_together_resnet20_w0_25_0"] == 2
    assert counts["transfer"] == 4 and counts["retrain"] == 4 + 2 and counts["imp_round"] == 2 + 1
    assert "results/digits/resnet14-w0.25/seed0/baselines" not in run.stdout


@pytest.mark.parametrize("edit, named", [
    ({"models": ["resnet14-w0.25"]}, "resnet20-w0.25 is not in `models`"),
    ({"dataset": {"name": "digits"}}, "is the study's own dataset"),
    ({"dataset": {"name": "cifar10"}}, "digits (1 channel, 10 classes, 28x28) and cifar10 (3 channels, 10 classes, 32x32) differ"),
])
def test_a_transfer_the_study_cannot_make_fails_before_any_job(tmp_path: Path, edit: dict, named: str) -> None:
    run = snakemake(tmp_path, "-n", "--configfile", str(transfer_config(tmp_path, **edit)))
    assert run.returncode != 0 and named in run.stdout + run.stderr, run.stderr[-2000:]


def test_table4_sets_each_transfer_beside_the_same_ticket_found_on_the_target_and_the_papers_numbers() -> None:
    def row(method: str, model: str, source: str, scheme: str, acc: float) -> dict:
        return {"experiment": "t", "dataset": "cifar10", "model": model, "method": method, "source": source,
                "scheme": scheme, "level": 10, "sparsity": 0.8926, "seed": 0, "test_acc": acc}

    runs = pd.DataFrame([row("imp", "resnet20", "", "", 0.91), row("imp", "resnet32", "", "", 0.92),
                         row("ett", "resnet32", "resnet20", "default", 0.915),
                         row("transfer", "resnet20", "svhn/resnet20", "direct", 0.87),
                         row("transfer", "resnet32", "svhn/resnet20", "default", 0.88)])
    table = table4(runs, 0.8926, paper_numbers()["table4"]).set_index(["source_dataset", "target_model"])
    assert table.loc[("svhn", "resnet20"), "mean"] == pytest.approx(87.0)
    assert table.loc[("svhn", "resnet32"), ["paper", "paper_imp"]].tolist() == [88.67, 92.22]
    assert table.loc[("cifar10", "resnet32"), "mean"] == pytest.approx(91.5)  # the ETT, on CIFAR-10 itself
    assert table.loc[("cifar10", "resnet20"), ["mean", "paper"]].tolist() == pytest.approx([91.0, 91.07])
    assert table["imp"].tolist() == pytest.approx([91.0, 91.0, 92.0, 92.0])


def test_a_tiny_transfer_runs_end_to_end_through_snakemake(fashion_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = transfer_config(work, dataset={"name": "digits", "augment": []}, models=["resnet8-w0.25"],
                             pruning={"levels": 1, "fraction": 0.5},
                             transfer={"from": {"name": "fashion-mnist", "root": str(fashion_root), "augment": []},
                                       "pairs": ["resnet8-w0.25->resnet8-w0.25"]})
    run = snakemake(work, "--configfile", str(config), "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    runs = pd.read_csv(work / "results" / "tables" / "runs.csv", keep_default_na=False)
    assert sorted(runs["method"]) == ["dense", "imp", "transfer"] and set(runs["dataset"]) == {"digits"}
    moved = runs[runs["method"] == "transfer"].iloc[0]
    assert (moved["source"], moved["scheme"], moved["level"]) == ("fashion-mnist/resnet8-w0.25", "direct", 1)
    imp = Checkpoint.load(work / "results" / "fashion-mnist" / "resnet8-w0.25" / "seed0" / "imp" / "level1" / "ticket.pt",
                          "ticket", dataset="fashion-mnist")
    ticket = Checkpoint.load(work / "results" / "digits" / "resnet8-w0.25" / "seed0" / "transfer" / "from-fashion-mnist"
                             / "resnet8-w0.25" / "direct" / "level1" / "ticket.pt", "ticket", dataset="digits")
    assert_same_ticket(ticket, imp)
    table = (work / "results" / "tables" / "table4.md").read_text()
    assert "ResNet-8 (w0.25) fashion-mnist | digits" in table
    assert "Table 4 shape" in (work / "results" / "report.md").read_text()
