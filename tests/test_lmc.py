"""Linear mode connectivity: the ends of the line are the two copies, the mask holds along it, BN
statistics are recomputed deterministically, and the instability is Frankle et al.'s."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from snakemake.utils import validate

from elth import config as study
from elth import lmc
from elth import train as training
from elth.checkpoint import Checkpoint, build_for
from elth.data import DeviceData, Split, info
from elth.errors import CheckpointError, ConfigError
from elth.prune import Mask, prunable
from elth.recipe import Recipe
from elth.report import lmc as report
from elth.report.figures import save
from elth.report.markdown import report as report_page
from elth.train import evaluate

from conftest import ROOT, class_images

MODEL = "resnet8-w0.25"
RECIPE = Recipe(epochs=2, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-3, milestones=(1,))
META = {"method": "imp", "level": 1, "seed": 0}


def tiny_data() -> DeviceData:
    def split(n: int, seed: int) -> Split:
        images, labels = class_images(n, 28, 1, seed)
        return Split(torch.from_numpy(images), torch.from_numpy(labels).long())
    return DeviceData(split(96, 0), split(40, 1), info("fashion-mnist"), ("crop", "flip"), torch.device("cpu"))


def ticket(seed: int = 0) -> Checkpoint:
    """A rewind state with a random half of the prunable weights masked."""
    model = build_for(MODEL, "fashion-mnist", seed=seed)
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(seed)
    mask = Mask({n: torch.rand(params[n].shape, generator=g) < 0.5 for n in prunable(model)})
    mask.apply_(model)
    return Checkpoint(MODEL, "fashion-mnist", 0, model.state_dict(), mask, dict(META))


def copy_of(start: Checkpoint, data: DeviceData, noise: int) -> Checkpoint:
    model = start.build_model()
    result = training.train(model, data, RECIPE, noise, mask=start.mask)
    return Checkpoint(start.model, start.dataset, 6, model.state_dict(), result.mask, dict(start.meta))


@pytest.fixture(scope="module")
def pair() -> tuple[Checkpoint, Checkpoint, DeviceData]:
    torch.set_num_threads(1)
    data = tiny_data()
    start = ticket()
    return copy_of(start, data, 1), copy_of(start, data, 2), data


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes, so -0.0 and 0.0 count as different."""
    return t.reshape(-1).view(torch.uint8)


def test_alpha_0_and_1_are_the_endpoints_bit_for_bit(pair) -> None:
    a, b, _ = pair
    for alpha, end in ((0.0, a), (1.0, b)):
        state = lmc.interpolate(a.state, b.state, alpha)
        floats = [k for k, v in end.state.items() if v.is_floating_point()]
        assert len(floats) > len(a.mask) and all(torch.equal(bits(state[k]), bits(end.state[k])) for k in floats)


def test_alpha_0_and_1_measure_what_the_endpoints_measure(pair) -> None:
    a, b, data = pair
    rows = pd.DataFrame(lmc.measure(a, b, data, [0.0, 0.5, 1.0], bn_count=2, batch_size=32, noise=(1, 2)))
    plain = rows[rows["bn"] == "interpolated"].set_index("alpha")
    for alpha, end in ((0.0, a), (1.0, b)):
        model = end.build_model().to(memory_format=torch.channels_last)
        loss, acc = evaluate(model, data.test_batches())
        assert plain.loc[alpha, "test_acc"] == acc.item() and plain.loc[alpha, "test_loss"] == loss.item()
    assert set(rows["noise_a"]) == {1} and set(rows["noise_b"]) == {2} and set(rows["method"]) == {"imp"}
    assert rows["sparsity"].iloc[0] == pytest.approx(a.mask.sparsity) and rows["train_acc"].isna().all()


def test_pruned_weights_are_exactly_zero_at_every_alpha(pair) -> None:
    a, b, _ = pair
    model = a.build_model()
    params = dict(model.named_parameters())
    for alpha in lmc.alphas(11):
        model.load_state_dict(lmc.interpolate(a.state, b.state, alpha))
        for name, keep in a.mask.items():
            assert bool((params[name][~keep] == 0).all()), (alpha, name)
            assert bool((params[name][keep] != 0).any()), (alpha, name)


def test_integer_buffers_come_from_the_first_copy(pair) -> None:
    a, b, _ = pair
    b_state = {k: v + 7 if not v.is_floating_point() else v for k, v in b.state.items()}
    mid = lmc.interpolate(a.state, b_state, 0.5)
    counts = [k for k, v in a.state.items() if not v.is_floating_point()]
    assert counts and all(torch.equal(mid[k], a.state[k]) for k in counts)
    floats = [k for k, v in a.state.items() if v.is_floating_point() and not torch.equal(v, b.state[k])]
    assert floats and all(torch.allclose(mid[k], (a.state[k] + b.state[k]) / 2) for k in floats)


def test_bn_recompute_changes_the_running_statistics_and_is_deterministic(pair) -> None:
    a, b, data = pair
    mid = lmc.interpolate(a.state, b.state, 0.5)
    stats = []
    for _ in range(2):
        model = a.build_model()
        model.load_state_dict(mid)
        assert lmc.recompute_bn(model, lmc.bn_batches(data, 32, 5)) == 5  # 3 batches per epoch: two epochs
        assert not model.training and all(m.momentum == 0.1 for m in lmc.norm_layers(model))
        stats.append({k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k})
    assert all(torch.equal(stats[0][k], stats[1][k]) for k in stats[0])
    assert all(not torch.equal(stats[0][k], mid[k]) for k in stats[0] if "running" in k)
    assert all(int(v) == 5 for k, v in stats[0].items() if "num_batches" in k)


def test_bn_recompute_averages_the_batches_statistics_equally() -> None:
    bn = torch.nn.BatchNorm1d(1)
    batches = [(torch.full((4, 1), 1.0), None), (torch.full((4, 1), 5.0), None)]
    lmc.recompute_bn(bn, batches)
    assert bn.running_mean.item() == pytest.approx(3.0) and bn.momentum == 0.1


def test_instability_is_the_worst_error_above_the_mean_of_the_ends() -> None:
    assert lmc.instability([0.0, 0.5, 1.0], [0.1, 0.4, 0.2]) == pytest.approx(0.25)
    assert lmc.instability([0.0, 0.25, 0.5, 0.75, 1.0], [0.2, 0.18, 0.17, 0.16, 0.1]) == pytest.approx(0.05)
    rows = [{**dict.fromkeys(lmc.IDENTITY, ""), "alpha": alpha, "bn": bn, "test_acc": acc, "test_loss": 0.0,
             "train_acc": None, "train_loss": None}
            for bn, accs in (("interpolated", (0.9, 0.3, 0.8)), ("recomputed", (0.9, 0.85, 0.8)))
            for alpha, acc in zip((0.0, 0.5, 1.0), accs)]
    summary = lmc.summarize(rows, alphas=3)
    plain, fixed = summary["instability"]["interpolated"]["test"], summary["instability"]["recomputed"]["test"]
    assert plain["instability"] == pytest.approx(0.55) and plain["at_alpha"] == 0.5
    assert plain["error_a"] == pytest.approx(0.1) and plain["error_b"] == pytest.approx(0.2)
    assert fixed["instability"] == pytest.approx(0.05) and fixed["at_alpha"] == 1.0
    assert "train" not in summary["instability"]["recomputed"] and summary["alphas"] == 3


def test_alphas_include_both_ends_exactly() -> None:
    points = lmc.alphas(21)
    assert len(points) == 21 and points[0] == 0.0 and points[-1] == 1.0 and points[10] == 0.5


@pytest.mark.parametrize("edit,named", [
    (lambda c: setattr(c, "model", "resnet14-w0.25"), "model"),
    (lambda c: setattr(c, "dataset", "mnist"), "dataset"),
    (lambda c: setattr(c, "mask", Mask({n: ~t for n, t in c.mask.items()})), "masks differ"),
    (lambda c: setattr(c, "mask", None), "only one has a mask"),
    (lambda c: c.meta.update(method="snip"), "method ('imp' against 'snip')"),
])
def test_checkpoints_of_different_tickets_are_refused_with_the_difference_named(pair, edit, named: str) -> None:
    a, b, _ = pair
    other = Checkpoint(b.model, b.dataset, b.step, dict(b.state), b.mask, dict(b.meta))
    edit(other)
    with pytest.raises(CheckpointError) as err:
        lmc.check_pair(a, other)
    assert named in str(err.value)


def test_weights_outside_the_mask_are_refused(pair) -> None:
    a, b, _ = pair
    name = next(iter(a.mask))
    state = dict(b.state)
    state[name] = torch.ones_like(state[name])
    with pytest.raises(CheckpointError, match="nonzero weights outside its mask"):
        lmc.check_pair(a, Checkpoint(b.model, b.dataset, b.step, state, b.mask, dict(b.meta)))


def test_cli_trains_nothing_and_writes_rows_and_instability(fashion_root: Path, tmp_path: Path) -> None:
    start = ticket()
    start.save_ticket(tmp_path / "ticket.pt")
    data = json.dumps({"root": str(fashion_root), "augment": []})
    recipe = json.dumps({"epochs": 1, "batch_size": 64, "lr": 0.05})
    for noise in (1, 2):
        training.main(["--model", MODEL, "--dataset", "fashion-mnist", "--seed", "0", "--recipe", recipe, "--data", data,
                       "--ticket", str(tmp_path / "ticket.pt"), "--data-seed", str(noise), "--device", "cpu",
                       "--out", str(tmp_path / f"noise{noise}")])
    out = tmp_path / "lmc"
    lmc.main([str(tmp_path / "noise1" / "final.pt"), str(tmp_path / "noise2" / "final.pt"), "--noise-seeds", "1", "2",
              "--data", data, "--alphas", "5", "--bn-batches", "2", "--batch-size", "64", "--train-eval", "100",
              "--device", "cpu", "--csv", str(out / "interpolation.csv"), "--json", str(out / "instability.json")])
    rows = pd.read_csv(out / "interpolation.csv", keep_default_na=False)
    assert list(rows.columns) == lmc.COLUMNS and len(rows) == 5 * 2
    assert sorted(set(rows["alpha"])) == [0.0, 0.25, 0.5, 0.75, 1.0] and set(rows["bn"]) == set(lmc.BN_MODES)
    assert rows[["test_acc", "train_acc"]].apply(lambda c: c.between(0, 1)).all().all()
    assert set(rows["model"]) == {MODEL} and set(rows["seed"]) == {0} and set(rows["level"]) == {1}
    summary = json.loads((out / "instability.json").read_text())
    assert summary["noise_a"] == 1 and summary["noise_b"] == 2 and summary["alphas"] == 5
    for mode, curve in rows.groupby("bn"):
        for split in ("test", "train"):
            errors = 1.0 - curve[f"{split}_acc"]
            ends = errors[curve["alpha"].isin([0.0, 1.0])]
            assert summary["instability"][mode][split]["instability"] == pytest.approx(errors.max() - ends.mean())


def test_cli_refuses_copies_of_different_tickets_before_loading_data(tmp_path: Path, capsys) -> None:
    ticket(0).save(tmp_path / "a.pt")
    ticket(1).save(tmp_path / "b.pt")
    with pytest.raises(SystemExit) as exit_:
        lmc.main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--noise-seeds", "1", "2", "--data",
                  json.dumps({"root": str(tmp_path / "nowhere")}), "--csv", str(tmp_path / "c.csv"),
                  "--json", str(tmp_path / "c.json")])
    assert exit_.value.code == 2 and "masks differ" in capsys.readouterr().err
    assert not (tmp_path / "c.csv").exists()


def fake_interpolation(tmp_path: Path, method: str, source: str, dip: float, seed: int = 0) -> str:
    """An interpolation.csv of a ResNet-32 ticket on CIFAR-10 whose accuracy dips by `dip` at alpha
    0.5 with interpolated BN statistics, and by a tenth of it with recomputed ones."""
    rows = [{"dataset": "cifar10", "model": "resnet32", "seed": seed, "method": method, "source": source,
             "scheme": "default" if method == "ett" else "", "level": 10, "sparsity": 0.8926, "noise_a": 1,
             "noise_b": 2, "alpha": alpha, "bn": bn, "test_acc": 0.9 - (dip if bn == "interpolated" else dip / 10)
             * (1 - abs(2 * alpha - 1)), "test_loss": 0.3, "train_acc": None, "train_loss": None}
            for bn in lmc.BN_MODES for alpha in lmc.alphas(5)]
    path = tmp_path / f"{method}{source}{seed}.csv"
    path.write_text(lmc.rows_csv(rows))
    return str(path)


@pytest.fixture
def lmc_runs(tmp_path: Path) -> pd.DataFrame:
    paths = [fake_interpolation(tmp_path, "imp", "", 0.01, seed) for seed in (0, 1)]
    paths += [fake_interpolation(tmp_path, "ett", "resnet20", 0.08), fake_interpolation(tmp_path, "ett", "resnet14", 0.6)]
    return report.collect(paths, "test")


def test_interpolations_aggregate_into_one_tidy_table(lmc_runs: pd.DataFrame) -> None:
    assert list(lmc_runs.columns) == ["experiment", *lmc.COLUMNS] and len(lmc_runs) == 4 * 5 * 2
    assert not lmc_runs.duplicated(["method", "source", "seed", "noise_a", "noise_b", "alpha", "bn"]).any()
    assert set(lmc_runs.loc[lmc_runs["method"] == "imp", "source"]) == {""}


def test_the_table_gives_each_tickets_instability_in_both_bn_modes_beside_the_papers_drop(lmc_runs) -> None:
    table = report.table(lmc_runs).set_index(["ticket", "bn"])
    assert table.loc[("IMP", "interpolated"), "instability"] == pytest.approx(1.0)
    assert table.loc[("IMP", "interpolated"), "pairs"] == 2
    assert table.loc[("ETTs ← 14", "interpolated"), "instability"] == pytest.approx(60.0)
    assert table.loc[("ETTs ← 14", "recomputed"), "instability"] == pytest.approx(6.0)
    assert table.loc[("ETTs ← 20", "recomputed"), "paper"] == 8.72 and pd.isna(table.loc[("IMP", "recomputed"), "paper"])
    text = report.markdown(report.table(lmc_runs))
    assert "| ResNet-32 | 89.26% | ETTs ← 14 | 90.00 | 6.00 ± 0.00 | 60.00 ± 0.00 | 69.72 |" in text
    assert text.index("| IMP |") < text.index("ETTs ← 14")


def test_fig7_draws_every_ticket_in_both_bn_modes(lmc_runs: pd.DataFrame, tmp_path: Path) -> None:
    figure = report.fig7(lmc_runs, "test")
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["ResNet-32, 89.26% sparse (level 10)"]
    assert len(panels[0].get_lines()) == 3 * 2
    styles = {line.get_label(): line.get_linestyle() for line in figure.legends[0].get_lines()}
    assert styles["BN recomputed"] == "-" and styles["BN interpolated"] == "--"
    assert {"IMP", "ETTs ← 14", "ETTs ← 20"} <= set(styles)
    save(figure, str(tmp_path / "fig7.pdf"), str(tmp_path / "fig7.png"))
    assert (tmp_path / "fig7.pdf").read_bytes()[:4] == b"%PDF" and (tmp_path / "fig7.png").stat().st_size > 10_000


def test_the_report_has_a_section_for_linear_mode_connectivity(tmp_path: Path) -> None:
    runs = pd.DataFrame([{"experiment": "x", "dataset": "cifar10", "model": "resnet32", "method": "imp", "seed": 0,
                          "device": "cpu", "wall_s": 1.0}])
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "lmc.md").write_text("### instability table\n")
    text = report_page(runs, [], [], str(tmp_path / "report.md"),
                  [str(tmp_path / "figures" / "fig7.png"), str(tmp_path / "tables" / "lmc.md")])
    assert "## Linear mode connectivity (Fig 7)" in text and "![fig7](figures/fig7.png)" in text
    assert "### instability table" in text
    assert "Linear mode connectivity" not in report_page(runs, [], [], str(tmp_path / "report.md"))


def test_the_lmc_section_names_tickets_by_their_directory_under_the_run() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert study.lmc_tickets(config) == [("resnet20-w0.5", "imp/level2"),
                                         ("resnet20-w0.5", "ett/from-resnet14-w0.5/default/level2")]
    config["lmc"] = {"levels": [1], "methods": ["snip"], "schemes": ["default"], "noise_seeds": [[1, 2]]}
    assert study.lmc_tickets(config) == [("resnet14-w0.5", "baselines/snip/level1"),
                                         ("resnet20-w0.5", "baselines/snip/level1")]
    del config["lmc"]
    assert study.lmc_tickets(config) == []


def test_a_fig7_panel_is_titled_with_the_imp_tickets_sparsity_not_the_mean_of_its_tickets(lmc_runs) -> None:
    runs = lmc_runs.copy()
    runs.loc[runs["method"] == "ett", "sparsity"] = 0.95
    figure = report.fig7(runs, "test")
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["ResNet-32, 89.26% sparse (level 10)"]
    figure = report.fig7(runs[runs["method"] == "ett"], "test")
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["ResNet-32, 95.00% sparse (level 10)"]


def test_lmc_seeds_default_to_every_seed_and_refuse_one_the_study_lacks() -> None:
    config = {"seeds": [0, 1, 2], "lmc": {"noise_seeds": [[1, 2]]}}
    assert study.lmc_seeds(config) == [0, 1, 2]
    assert study.lmc_seeds({**config, "lmc": {"seeds": [1]}}) == [1]
    with pytest.raises(ConfigError, match=r"lmc.seeds: seed 5 is not in `seeds` \[0, 1, 2\]"):
        study.lmc_seeds({**config, "lmc": {"seeds": [5]}})
