"""Aggregation into tidy rows, the summary over seeds, and the figure renderer."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from conftest import ROOT
from elth.report.aggregate import COLUMNS, collect, summarize
from elth.report.aggregate import main as aggregate
from elth.report.figures import depth_label, fig3, missing, model_title, save


def fake_run(tmp_path: Path, model: str, method: str, level: int, seed: int, acc: float, **extra) -> str:
    path = tmp_path / model / f"seed{seed}" / method / str(extra.get("scheme", "")) / f"level{level}" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    sparsity = extra.pop("sparsity", 1 - 0.8 ** level)
    path.write_text(json.dumps({"model": model, "dataset": "cifar10", "seed": seed, "method": method, "level": level,
                                "sparsity": sparsity, "sparsity_all": sparsity, "test_acc": acc, "best_acc": acc + 0.01,
                                "test_loss": 0.5, "epochs": 160, "steps": 62400, "wall_s": 10.0, "device": "cpu",
                                "source": "", "scheme": "", **extra}))
    return str(path)


@pytest.fixture
def runs(tmp_path: Path) -> pd.DataFrame:
    paths = []
    for model in ("resnet20", "resnet32"):
        for seed in (0, 1):
            paths.append(fake_run(tmp_path, model, "dense", 0, seed, 0.91 + 0.01 * seed))
            for level in (1, 2, 3):
                paths.append(fake_run(tmp_path, model, "imp", level, seed, 0.90 - 0.01 * level))
                paths.append(fake_run(tmp_path, model, "snip", level, seed, 0.85 - 0.02 * level))
                other = "resnet32" if model == "resnet20" else "resnet20"
                paths.append(fake_run(tmp_path, model, "ett", level, seed, 0.89 - 0.01 * level, source=other,
                                      scheme="default", sparsity=1 - 0.8 ** level + 0.003 * seed))
    return collect(paths, "test")


def test_aggregation_makes_one_tidy_row_per_run(runs: pd.DataFrame) -> None:
    assert list(runs.columns) == COLUMNS and len(runs) == 2 * 2 * (1 + 3 * 3)
    assert set(runs["method"]) == {"dense", "imp", "snip", "ett"} and set(runs["experiment"]) == {"test"}
    assert not runs.duplicated(["model", "method", "source", "scheme", "level", "seed"]).any()
    ett = runs[runs["method"] == "ett"]
    assert set(zip(ett["model"], ett["source"])) == {("resnet20", "resnet32"), ("resnet32", "resnet20")}


def test_summary_gives_mean_and_std_over_seeds(runs: pd.DataFrame) -> None:
    summary = summarize(runs)
    dense = summary[(summary["model"] == "resnet20") & (summary["method"] == "dense")].iloc[0]
    assert dense["seeds"] == 2 and dense["test_acc_mean"] == pytest.approx(0.915) and dense["test_acc_std"] == pytest.approx(0.005)
    assert len(summary) == 2 * (1 + 3 * 3)


def test_a_study_run_in_pieces_joins_into_the_table_it_would_have_made_in_one(runs: pd.DataFrame,
                                                                              tmp_path: Path) -> None:
    seed0 = sorted(str(p) for p in tmp_path.glob("*/seed0/**/summary.json"))
    runs[runs["seed"] == 1].to_csv(tmp_path / "elsewhere.csv", index=False)
    out = tmp_path / "joined"
    aggregate([*seed0, "--include", str(tmp_path / "elsewhere.csv"), "--experiment", "test",
               "-o", str(out / "runs.csv"), "--summary", str(out / "summary.csv")])
    assert (out / "runs.csv").read_text() == runs.to_csv(index=False)
    assert (out / "summary.csv").read_text() == summarize(runs).to_csv(index=False)
    aggregate(["--include", str(tmp_path / "elsewhere.csv"), "--experiment", "test", "-o", str(out / "one.csv"),
               "--summary", str(out / "one-summary.csv")])
    assert pd.read_csv(out / "one.csv")["seed"].unique().tolist() == [1]


@pytest.mark.parametrize("piece,named", [("twice", "in more than one place, the first"),
                                         ("other", "runs of experiment 'other'"),
                                         ("columns", "is not a runs.csv of this version"),
                                         ("missing", "no such file")])
def test_joining_pieces_refuses_a_run_found_twice_another_study_or_another_format(
        runs: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture, piece: str, named: str) -> None:
    seed0 = sorted(str(p) for p in tmp_path.glob("*/seed0/**/summary.json"))
    table = {"twice": runs, "other": runs[runs["seed"] == 1].assign(experiment="other"),
             "columns": runs[runs["seed"] == 1].drop(columns="device"), "missing": runs}[piece]
    if piece != "missing":
        table.to_csv(tmp_path / "piece.csv", index=False)
    out = tmp_path / "joined"
    with pytest.raises(SystemExit):
        aggregate([*seed0, "--include", str(tmp_path / "piece.csv"), "--experiment", "test",
                   "-o", str(out / "runs.csv"), "--summary", str(out / "summary.csv")])
    assert named in capsys.readouterr().err
    assert not (out / "runs.csv").exists()


def test_a_runs_csv_without_sparsity_all_joins_with_it_filled_where_no_config_is_needed(
        runs: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    vgg = runs[runs["model"] == "resnet20"].assign(model="vgg16", sparsity_all=float("nan"))
    old = pd.concat([runs, vgg]).drop(columns="sparsity_all")
    old.to_csv(tmp_path / "old.csv", index=False)
    out = tmp_path / "joined"
    aggregate(["--include", str(tmp_path / "old.csv"), "--experiment", "test", "-o", str(out / "runs.csv"),
               "--summary", str(out / "summary.csv")])
    assert f"left it empty for {(vgg['level'] > 0).sum()} runs" in capsys.readouterr().out
    joined = pd.read_csv(out / "runs.csv")
    assert list(joined.columns) == COLUMNS
    resnets, vggs = joined[joined["model"] != "vgg16"], joined[joined["model"] == "vgg16"]
    assert (resnets["sparsity_all"] == resnets["sparsity"]).all()  # ResNets leave nothing unpruned
    assert (vggs.loc[vggs["method"] == "dense", "sparsity_all"] == 0).all()
    assert vggs.loc[vggs["method"] != "dense", "sparsity_all"].isna().all()  # its unpruned fc is the config's
    # The joined table, empty cells and all, joins again as it is.
    aggregate(["--include", str(out / "runs.csv"), "--experiment", "test", "-o", str(out / "again.csv"),
               "--summary", str(out / "again-summary.csv")])
    assert (out / "again.csv").read_text() == (out / "runs.csv").read_text()
    assert "sparsity_all" in pd.read_csv(out / "again-summary.csv").columns


@pytest.mark.parametrize("table", sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("reports/**/runs.csv")))
def test_the_committed_reports_runs_tables_still_join(table: str, tmp_path: Path) -> None:
    experiment = pd.read_csv(ROOT / table)["experiment"].iloc[0]
    aggregate(["--include", str(ROOT / table), "--experiment", experiment, "-o", str(tmp_path / "runs.csv"),
               "--summary", str(tmp_path / "summary.csv")])
    joined, committed = pd.read_csv(tmp_path / "runs.csv"), pd.read_csv(ROOT / table)
    # A table from before sparsity_all is of ResNets, pruned whole: the two sparsities agree.
    expected = committed["sparsity_all"] if "sparsity_all" in committed else committed["sparsity"]
    assert len(joined) == len(committed) and (joined["sparsity_all"].to_numpy() == expected.to_numpy()).all()


def test_the_renderer_writes_a_pdf_and_png_with_one_panel_per_model(runs: pd.DataFrame, tmp_path: Path) -> None:
    figure = fig3(runs, "test")
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["ResNet-20", "ResNet-32"]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[:2] == ["Dense", "IMP"] and "ETTs ← 32" in legend and "SNIP" in legend
    save(figure, str(tmp_path / "f.pdf"), str(tmp_path / "f.png"))
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF" and (tmp_path / "f.png").stat().st_size > 10_000


def test_baselines_are_dashed_and_tickets_solid(runs: pd.DataFrame) -> None:
    figure = fig3(runs)
    styles = {line.get_label(): line.get_linestyle() for line in figure.legends[0].get_lines()}
    assert styles["SNIP"] == "--" and styles["IMP"] == "-"


@pytest.mark.parametrize("name,title", [("resnet20-w0.5", "ResNet-20 (w0.5)"), ("vgg13-fc3", "VGG-13 (fc3)"),
                                        ("mlp2", "MLP-2"), ("imagenet-resnet18", "ResNet-18"),
                                        ("imagenet-resnet50", "ResNet-50")])
def test_model_titles_read_as_the_paper_writes_them(name: str, title: str) -> None:
    assert model_title(name) == title


@pytest.mark.parametrize("name,title,depth", [
    ("imagenet-bottleneck-3-4-8-3", "ResNet (Bottleneck 3-4-8-3)", "3-4-8-3"),
    ("imagenet-resnet-2-3-4-3", "ResNet (2-3-4-3)", "2-3-4-3"),
    ("vit-d4-w64-p7", "ViT-4 (w64, p7)", "4 layers"), ("vit-d6-w128-p7-h8", "ViT-6 (w128, p7, h8)", "6 layers"),
    ("vit-b16", "ViT-B/16", "B/16"), ("resnet32-w0.25", "ResNet-32 (w0.25)", "32")])
def test_models_past_the_paper_have_titles_and_legend_labels_that_tell_them_apart(name: str, title: str,
                                                                                 depth: str) -> None:
    assert model_title(name) == title and depth_label(name) == depth


def test_a_figure_with_missing_runs_says_so(runs: pd.DataFrame) -> None:
    partial = runs[~((runs["method"] == "snip") & (runs["level"] == 3)) & ~((runs["method"] == "imp") & (runs["seed"] == 1)
                                                                         & (runs["level"] == 2))]
    notes = missing(partial, ["resnet20", "resnet56"])
    assert "no runs for ResNet-56" in notes
    assert any("SNIP: 2 of 3 levels" in n for n in notes) and any("IMP: fewer than 2 seeds at level(s) 2" in n for n in notes)
    figure = fig3(partial, "t", models=["resnet20", "resnet56"])
    assert any("no runs for ResNet-56" in t.get_text() for t in figure.texts)
    assert missing(runs, ["resnet20", "resnet32"]) == []


def test_tickets_made_only_at_the_compared_levels_are_not_missing_the_others(runs: pd.DataFrame) -> None:
    compared = runs[(runs["method"].isin(["dense", "imp"])) | (runs["level"] != 2)]
    assert missing(compared, []) == []
    short = compared[~((compared["method"] == "snip") & (compared["level"] == 3))]
    assert missing(short, []) == ["ResNet-20 SNIP: 1 of 2 levels", "ResNet-32 SNIP: 1 of 2 levels"]


def test_a_long_title_is_wrapped_to_a_one_panel_figure() -> None:
    from elth.report.figures import suptitle

    figure = plt.figure(figsize=(5.5, 4))
    suptitle(figure, "proxy-fashion-mnist: fashion-mnist, 1 (seed, noise pair) combination(s)")
    lines = figure.texts[0].get_text().splitlines()
    assert len(lines) == 2 and max(map(len, lines)) <= 60
    plt.close(figure)


def imagenet_runs(tmp_path: Path) -> pd.DataFrame:
    paths = []
    for seed in (0, 1):
        for model in ("imagenet-resnet18", "imagenet-resnet26"):
            paths.append(fake_run(tmp_path, model, "dense", 0, seed, 0.70))
            for level in (5, 6, 7):
                paths.append(fake_run(tmp_path, model, "imp", level, seed, 0.71))
                # Measured SNIP beats IMP here; the paper has IMP above SNIP: a flag.
                paths.append(fake_run(tmp_path, model, "snip", level, seed, 0.72 + 0.001 * seed))
        paths.append(fake_run(tmp_path, "imagenet-resnet26", "ett", 6, seed, 0.705, source="imagenet-resnet18",
                              scheme="default"))
    return collect(paths, "test")


def test_table2_compares_at_the_nearest_level_beside_the_paper_and_flags_orderings(tmp_path: Path) -> None:
    from elth.report.tables import markdown, paper_numbers, printed_table2, table_at

    table = table_at(imagenet_runs(tmp_path), 0.7379, printed_table2(paper_numbers()["table2"]))
    imp = table[(table["row"] == "IMP") & (table["model"] == "imagenet-resnet18")].iloc[0]
    assert imp["level"] == 6 and imp["paper"] == 70.22 and imp["mean"] == pytest.approx(71.0) and imp["seeds"] == 2
    ett = table[(table["row"] == "ETTs ← 18") & (table["model"] == "imagenet-resnet26")].iloc[0]
    assert ett["paper"] == 71.29
    snip = table[(table["row"] == "SNIP") & (table["model"] == "imagenet-resnet26")].iloc[0]
    assert "above IMP (paper: below)" in snip["flag"] and "above ETTs ← 18 (paper: below)" in snip["flag"]
    text = markdown(table, "t")
    assert "| IMP | 71.00 ± 0.00 (70.22) ⚑ | 71.00 ± 0.00 (72.94) ⚑ |" in text and "⚑ Ordering differs" in text


def test_table3_is_a_grid_of_sources_by_targets(tmp_path: Path) -> None:
    from elth.report.tables import table3

    grid = table3(imagenet_runs(tmp_path), 0.7379).pivot(index="source", columns="target", values="mean")
    assert grid.loc["imagenet-resnet18", "imagenet-resnet26"] == pytest.approx(70.5)
    assert grid.loc["imagenet-resnet26", "imagenet-resnet26"] == pytest.approx(71.0)


def test_figs_9_to_13_have_a_panel_per_target_and_source_with_every_scheme(runs: pd.DataFrame) -> None:
    from elth.report.figures import schemes

    extra = runs[runs["method"] == "ett"].assign(scheme="inter", test_acc=lambda d: d["test_acc"] - 0.01)
    figure = schemes(pd.concat([runs, extra]))
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles == ["ResNet-20 ← ResNet-32", "ResNet-32 ← ResNet-20"]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert {"ETT default", "ETT inter", "IMP", "SNIP"} <= set(legend)


def test_table3_sets_the_papers_grid_beside_ours(tmp_path: Path) -> None:
    from elth.report.tables import paper_numbers, table3

    paths = [fake_run(tmp_path, "mlp2", "imp", 10, 0, 0.98), fake_run(tmp_path, "mlp3", "imp", 10, 0, 0.97),
             fake_run(tmp_path, "mlp3", "ett", 10, 0, 0.965, source="mlp2", scheme="default")]
    table = table3(collect(paths, "t"), 0.8926, paper_numbers()["table3"]).set_index(["source", "target"])
    assert table.loc[("mlp2", "mlp3"), "paper"] == 97.95 and table.loc[("mlp2", "mlp3"), "mean"] == pytest.approx(96.5)
    assert table.loc[("mlp2", "mlp2"), "paper"] == 98.06
    # For target MLP-3 the paper has MLP-2's ticket (97.95) above MLP-3's own IMP (97.83); here it is below.
    assert table.loc[("mlp2", "mlp3"), "flag"] == "below mlp3 (paper: above)"
    assert table.loc[("mlp3", "mlp3"), "flag"] == "above mlp2 (paper: below)" and table.loc[("mlp2", "mlp2"), "flag"] == ""


def test_table3_reads_in_the_papers_order_and_names_with_the_sparsity_used(tmp_path: Path) -> None:
    """The paper's Table 3 orders its CIFAR-10 ResNets by depth (ResNet-20, 32, 44, 56, 110) and names them so;
    a grid sorted as text would put resnet110 first and print the raw names. Its numbers stand in parentheses;
    for a pair it never ran the footnote says there are none."""
    from elth.report.tables import paper_numbers, table3, table3_markdown

    paths = []
    for model in ("resnet20", "resnet110"):
        paths.append(fake_run(tmp_path, model, "imp", 10, 0, 0.9))
    paths.append(fake_run(tmp_path, "resnet110", "ett", 10, 0, 0.91, source="resnet20", scheme="default"))
    text = table3_markdown(table3(collect(paths, "t"), 0.8926, paper_numbers()["table3"]), 0.8926)
    assert "| source | ResNet-20 | ResNet-110 |" in text
    assert text.index("| ResNet-20 |") < text.index("| ResNet-110 |")
    assert "| ResNet-110 | - | 90.00" in text and "Sparsity used: ResNet-20: 89.26%, ResNet-110: 89.26%" in text
    ours = [fake_run(tmp_path / "w", m, "imp", 10, 0, 0.9) for m in ("resnet14-w0.5", "resnet20-w0.5")]
    alone = table3_markdown(table3(collect(ours, "t"), 0.8926, paper_numbers()["table3"]), 0.8926)
    assert "the paper printed no number for these rows and models" in alone and "⚑" not in alone
    assert "parentheses" not in alone and "| ResNet-14 (w0.5) |" in alone


def test_table5_lists_each_width_scheme_beside_the_paper(tmp_path: Path) -> None:
    from elth.report.tables import paper_numbers, printed_table5, table_at, width_label

    paths = [fake_run(tmp_path, "resnet20-w2", "dense", 0, 0, 0.93), fake_run(tmp_path, "resnet20-w2", "imp", 10, 0, 0.935)]
    for scheme, acc in (("replicate", 0.91), ("gaussian", 0.92), ("permute", 0.90)):
        paths.append(fake_run(tmp_path, "resnet20-w2", "ett", 10, 0, acc, source="resnet20", scheme=scheme))
    table = table_at(collect(paths, "t"), 0.8926, printed_table5(paper_numbers()["table5"]), scheme=None,
                     labeler=width_label).set_index("row")
    assert table.loc["ETT gaussian", "paper"] == 92.12 and table.loc["ETT gaussian", "mean"] == pytest.approx(92.0)
    assert table.loc["IMP", "paper"] == 93.76 and table.loc["Dense", "paper"] == 93.71


def test_the_table_and_figure_rules_do_not_import_torch() -> None:
    """A report job reads CSVs and writes tables and figures; importing torch (about 3 s here) would be
    most of its start. Their writes go through elth.files, which has no torch."""
    import subprocess
    import sys

    modules = ["elth.files", *(f"elth.report.{m}" for m in ("aggregate", "tables", "markdown", "figures", "benchmarks"))]
    code = f"import sys, {', '.join(modules)}; print([m for m in sys.modules if m == 'torch'])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert run.stdout.strip() == "[]"
