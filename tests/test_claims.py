"""The verdicts on the paper's claims: each decided by the comparisons its definition names, and
turned by a change in the runs that should turn it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from elth import lmc
from elth.report import claims
from elth.report.markdown import report as report_page

TARGETS = ("resnet14", "resnet20", "resnet32")


def study(acc: dict[tuple[str, str, str], float], seeds=(0, 1)) -> pd.DataFrame:
    """runs.csv rows for three depths at levels 3 and 5; `acc[(model, method, source)]` overrides the
    defaults (IMP 0.90, ETT 0.897 from a neighbour and 0.894 from far, SNIP 0.85, Random 0.80)."""
    rows = []
    for model in TARGETS:
        for seed in seeds:
            for level in (3, 5):
                entries = [("imp", ""), ("snip", ""), ("random", "")]
                entries += [("ett", s) for s in TARGETS if s != model]
                for method, source in entries:
                    default = {"imp": 0.90, "snip": 0.85, "random": 0.80}.get(method)
                    if method == "ett":
                        near = min((s for s in TARGETS if s != model), key=lambda s: abs(claims.depth(s) - claims.depth(model)))
                        default = 0.897 if source == near else 0.894
                    rows.append({"experiment": "t", "dataset": "cifar10", "model": model, "method": method,
                                 "source": source, "scheme": "default" if method == "ett" else "", "level": level,
                                 "sparsity": 1 - 0.64 ** level, "seed": seed,
                                 "test_acc": acc.get((model, method, source), default) + 0.001 * seed})
    return pd.DataFrame(rows)


def verdicts(table: pd.DataFrame) -> dict[str, str]:
    return {claim: claims.verdict(table[table["claim"] == claim]) for claim in claims.CLAIMS}


def test_a_study_that_matches_the_paper_holds_every_accuracy_claim() -> None:
    table = claims.judge(study({}))
    found = verdicts(table)
    assert found["ett_near_imp"] == "holds (12 of 12)"
    assert found["ett_above_pai"] == "holds (6 of 6)"
    assert found["neighbour_above_far"] == "holds (6 of 6)"
    assert found["imp_lmc_stable"] == found["far_ett_less_stable"] == "not measured"


def test_the_pai_comparison_is_at_each_targets_sparsest_level_against_its_best_baseline() -> None:
    table = claims.judge(study({}))
    pai = table[table["claim"] == "ett_above_pai"]
    assert set(pai["level"]) == {5} and set(pai["reference"]) == {"SNIP"}
    assert pai["reference_value"].tolist() == pytest.approx([85.05] * 6)


def test_the_neighbour_is_the_source_of_nearest_depth() -> None:
    table = claims.judge(study({}))
    depth = table[(table["claim"] == "neighbour_above_far") & (table["level"] == 3)].set_index("model")
    assert depth.loc["resnet14", ["subject", "reference"]].tolist() == ["ETTs ← 20", "ETTs ← 32"]
    assert depth.loc["resnet20", ["subject", "reference"]].tolist() == ["ETTs ← 14", "ETTs ← 32"]
    assert depth.loc["resnet32", ["subject", "reference"]].tolist() == ["ETTs ← 20", "ETTs ← 14"]


def test_an_ett_further_below_imp_than_the_tolerance_is_not_near() -> None:
    runs = study({("resnet32", "ett", "resnet14"): 0.88})
    assert verdicts(claims.judge(runs, near_pp=1.0))["ett_near_imp"] == "holds in part (10 of 12)"
    assert verdicts(claims.judge(runs, near_pp=2.5))["ett_near_imp"] == "holds (12 of 12)"


def test_a_baseline_above_every_ett_turns_the_pai_claim() -> None:
    runs = study({(m, "random", ""): 0.95 for m in TARGETS})
    table = claims.judge(runs)
    assert verdicts(table)["ett_above_pai"] == "does not hold (0 of 6)"
    assert set(table[table["claim"] == "ett_above_pai"]["reference"]) == {"Random"}


def test_a_far_source_that_transfers_better_turns_the_depth_claim() -> None:
    runs = study({("resnet14", "ett", "resnet32"): 0.899})
    assert verdicts(claims.judge(runs))["neighbour_above_far"] == "holds in part (4 of 6)"


def test_a_scheme_other_than_the_judged_one_is_left_out() -> None:
    runs = study({})
    other = runs[runs["method"] == "ett"].assign(scheme="inter", test_acc=0.1)
    assert claims.judge(pd.concat([runs, other])).equals(claims.judge(runs))


def interpolations(dips: dict[tuple[str, str], float]) -> pd.DataFrame:
    """lmc_runs.csv of ResNet-32 tickets at level 5 whose accuracy dips by `dips[(method, source)]`
    at alpha 0.5 with BN recomputed (ten times that with BN interpolated), two seeds."""
    rows = []
    for (method, source), dip in dips.items():
        for seed in (0, 1):
            for bn in lmc.BN_MODES:
                for alpha in lmc.alphas(5):
                    drop = (dip if bn == "recomputed" else 10 * dip) * (1 - abs(2 * alpha - 1))
                    rows.append({"experiment": "t", "dataset": "cifar10", "model": "resnet32", "seed": seed,
                                 "method": method, "source": source, "scheme": "default" if method == "ett" else "",
                                 "level": 5, "sparsity": 0.8926, "noise_a": 1, "noise_b": 2, "alpha": alpha, "bn": bn,
                                 "test_acc": 0.9 - drop, "test_loss": 0.3, "train_acc": None, "train_loss": None})
    return pd.DataFrame(rows)


def test_lmc_claims_judge_instability_with_bn_recomputed() -> None:
    dips = {("imp", ""): 0.005, ("ett", "resnet20"): 0.01, ("ett", "resnet14"): 0.05}
    table = claims.judge(study({}), interpolations(dips))
    imp = table[table["claim"] == "imp_lmc_stable"].iloc[0]
    assert imp["subject_value"] == pytest.approx(0.5) and imp["holds"]
    far = table[table["claim"] == "far_ett_less_stable"].iloc[0]
    assert far["subject"] == "ETTs ← 14" and far["subject_value"] == pytest.approx(5.0) and far["holds"]


def test_an_unstable_imp_ticket_and_a_stable_far_ett_turn_the_lmc_claims() -> None:
    dips = {("imp", ""): 0.03, ("ett", "resnet20"): 0.01, ("ett", "resnet14"): 0.02}
    found = verdicts(claims.judge(study({}), interpolations(dips), stable_pp=2.0))
    assert found["imp_lmc_stable"] == "does not hold (0 of 1)" and found["far_ett_less_stable"] == "does not hold (0 of 1)"


def test_the_cli_writes_the_comparisons_and_a_page_the_report_puts_first(tmp_path: Path) -> None:
    study({}).to_csv(tmp_path / "runs.csv", index=False)
    interpolations({("imp", ""): 0.005, ("ett", "resnet14"): 0.05}).to_csv(tmp_path / "lmc_runs.csv", index=False)
    claims.main(["--runs", str(tmp_path / "runs.csv"), "--lmc", str(tmp_path / "lmc_runs.csv"),
                 "--csv", str(tmp_path / "claims.csv"), "--md", str(tmp_path / "claims.md")])
    written = pd.read_csv(tmp_path / "claims.csv")
    assert list(written.columns) == claims.COLUMNS and len(written) == 12 + 6 + 6 + 2
    page = report_page(study({}).assign(device="cpu", wall_s=1.0), [], [], str(tmp_path / "report.md"),
                       claims=str(tmp_path / "claims.md"))
    assert "| ETT near IMP: an ETT ticket at most 1 pp below the target's IMP ticket | holds (12 of 12) |" in page
    assert page.index("## Claims") < page.index("## Figures")


@pytest.mark.parametrize("wrong", [False, True])
def test_the_cli_names_a_missing_or_wrong_table(tmp_path: Path, wrong: bool, capsys: pytest.CaptureFixture) -> None:
    claims.judge(study({})).to_csv(tmp_path / "claims.csv", index=False)  # a table, but not runs.csv
    runs = str(tmp_path / ("claims.csv" if wrong else "absent.csv"))
    with pytest.raises(SystemExit):
        claims.main(["--runs", runs, "--csv", str(tmp_path / "c.csv"), "--md", str(tmp_path / "c.md")])
    err = capsys.readouterr().err
    assert ("claims.csv: no column(s) method, source, scheme, seed, test_acc" in err if wrong
            else "absent.csv: file not found" in err)
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.parametrize("model,depth", [("resnet20-w0.25", 20), ("vgg16", 16), ("vit-d4-w64-p7", 4),
                                         ("vit-d6-w128-p7-h8", 6), ("vit-b16", 12),
                                         ("imagenet-bottleneck-3-4-6-3", 16), ("imagenet-resnet-2-2-2-2", 8)])
def test_neighbours_are_told_apart_by_depth_for_every_family(model: str, depth: int) -> None:
    """'Neighbour' and 'far' compare depths: a ViT's encoder layers, a block config's block count."""
    assert claims.depth(model) == depth


def test_claims_are_decided_for_a_vit_study() -> None:
    names = {"resnet14": "vit-d2-w64-p7", "resnet20": "vit-d4-w64-p7", "resnet32": "vit-d6-w64-p7"}
    runs = study({}).replace({"model": names, "source": names})
    table = claims.accuracy_claims(runs, near_pp=1.0)
    assert {row["claim"] for row in table} == {"ett_near_imp", "ett_above_pai", "neighbour_above_far"}
    assert all(row["holds"] for row in table)
