"""Which of the paper's claims a study's runs support, each decided by comparisons drawn from
runs.csv (and lmc_runs.csv) alone, so a verdict can be traced to the runs behind it.

The claims, as the paper makes them (Sec 4) and as they are tested here:

- `ett_near_imp`: an elastic ticket trains about as well as the target's own IMP ticket. Every
  (target, source, level) with both: the ETT's mean accuracy is at most `near_pp` below IMP's.
- `ett_above_pai`: at high sparsity the elastic ticket beats pruning at initialisation. At each
  target's sparsest level with ETTs: every ETT above the best pruning-at-initialisation baseline
  (Random, Magnitude, SNIP, GraSP, SynFlow) of the same target and level.
- `neighbour_above_far`: a source of nearby depth transfers better than a distant one. Every
  (target, level) with sources at two or more depth distances: the nearest source's ETT above the
  farthest's.
- `imp_lmc_stable`: IMP tickets are stable to SGD noise: instability (Frankle et al. 2020) with BN
  statistics recomputed after interpolating at most `stable_pp`, their threshold of 2%.
- `far_ett_less_stable`: the ETT from the farthest source is less stable than the target's IMP
  ticket: its instability above IMP's.

Each comparison is one row of claims.csv; a claim holds when all of its comparisons do, holds in
part when some do, and is not measured when the study has none. Accuracies are means over seeds
(and noise pairs), so with few seeds a difference smaller than the `std` columns is noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from elth import files
from elth.errors import ElthError, cli_errors
from elth.models.names import layout
from elth.report.figures import depth_label, label, model_title
from elth.report.html import convert
from elth.report.lmc import instabilities

PAI = ["random", "magnitude", "snip", "grasp", "synflow"]
COLUMNS = ["claim", "model", "level", "sparsity", "subject", "reference", "subject_value", "subject_std",
           "reference_value", "reference_std", "difference", "holds", "seeds"]
CLAIMS = {
    "ett_near_imp": "ETT near IMP: an ETT ticket at most {near_pp:g} pp below the target's IMP ticket",
    "ett_above_pai": "ETT above pruning at initialisation at the highest sparsity",
    "neighbour_above_far": "A neighbour depth's ETT above a far depth's",
    "imp_lmc_stable": "IMP tickets stable to SGD noise: instability at most {stable_pp:g} pp",
    "far_ett_less_stable": "The far-depth ETT less stable than IMP",
}


def depth(model: str) -> int:
    """How far apart two models of a study are: the layer count the paper names its models by
    ('resnet20-w0.25' -> 20), else the units of the model's structure (a ViT's encoder layers:
    'vit-d4-w64-p7' -> 4, 'vit-b16' -> 12; a block config's blocks: 'imagenet-bottleneck-3-4-6-3' -> 16)."""
    label = depth_label(model)
    return int(label) if label.isdigit() else sum(map(len, layout(model)))


def _row(claim: str, model: str, level: int, sparsity: float, subject: str, reference: str,
         a: pd.Series, b: pd.Series | float, holds: bool) -> dict:
    """One comparison; `a` and `b` are per-seed values in percent (b may be a fixed threshold)."""
    b_mean = float(b.mean()) if isinstance(b, pd.Series) else float(b)
    b_std = float(b.std(ddof=0)) if isinstance(b, pd.Series) else 0.0
    return {"claim": claim, "model": model, "level": int(level), "sparsity": float(sparsity), "subject": subject,
            "reference": reference, "subject_value": float(a.mean()), "subject_std": float(a.std(ddof=0)),
            "reference_value": b_mean, "reference_std": b_std, "difference": float(a.mean()) - b_mean,
            "holds": bool(holds), "seeds": len(a)}


def _per_seed(runs: pd.DataFrame) -> pd.Series:
    return runs.groupby("seed")["test_acc"].mean() * 100


def accuracy_claims(runs: pd.DataFrame, near_pp: float, ett_scheme: str = "default") -> list[dict]:
    """The three claims runs.csv decides: ETT against IMP, against the PaI baselines, and by depth."""
    rows = []
    etts = runs[(runs["method"] == "ett") & (runs["scheme"] == ett_scheme)]
    for (target, level), here in etts.groupby(["model", "level"]):
        at = runs[(runs["model"] == target) & (runs["level"] == level)]
        imp = at[at["method"] == "imp"]
        sparsity = imp["sparsity"].mean() if len(imp) else here["sparsity"].mean()
        sources = {source: _per_seed(group) for source, group in here.groupby("source")}
        if len(imp):
            imp_acc = _per_seed(imp)
            for source, acc in sources.items():
                rows.append(_row("ett_near_imp", target, level, sparsity, _label("ett", source), "IMP",
                                 acc, imp_acc, acc.mean() - imp_acc.mean() >= -near_pp))
        distances = {source: abs(depth(source) - depth(target)) for source in sources}
        if len(set(distances.values())) > 1:
            near = min(sources, key=lambda s: (distances[s], s))
            far = max(sources, key=lambda s: (distances[s], s))
            rows.append(_row("neighbour_above_far", target, level, sparsity, _label("ett", near), _label("ett", far),
                             sources[near], sources[far], sources[near].mean() > sources[far].mean()))
    for target, here in etts.groupby("model"):
        level = here["level"].max()
        at = runs[(runs["model"] == target) & (runs["level"] == level)]
        baselines = {m: _per_seed(g) for m, g in at[at["method"].isin(PAI)].groupby("method")}
        if not baselines:
            continue
        best = max(baselines, key=lambda m: baselines[m].mean())
        imp = at[at["method"] == "imp"]
        sparsity = imp["sparsity"].mean() if len(imp) else at["sparsity"].mean()
        for source, group in here[here["level"] == level].groupby("source"):
            acc = _per_seed(group)
            rows.append(_row("ett_above_pai", target, level, sparsity, _label("ett", source), _label(best, ""),
                             acc, baselines[best], acc.mean() > baselines[best].mean()))
    return rows


def lmc_claims(interpolations: pd.DataFrame, stable_pp: float, ett_scheme: str = "default") -> list[dict]:
    """The two claims lmc_runs.csv decides, on instability with BN statistics recomputed."""
    per_pair = instabilities(interpolations)
    per_pair = per_pair[(per_pair["bn"] == "recomputed")
                        & ((per_pair["method"] != "ett") | (per_pair["scheme"] == ett_scheme))]
    rows = []
    for (model, level), here in per_pair.groupby(["model", "level"]):
        imp = here[here["method"] == "imp"]["instability"] * 100
        if imp.empty:
            continue
        sparsity = here[here["method"] == "imp"]["sparsity"].mean()
        rows.append(_row("imp_lmc_stable", model, level, sparsity, "IMP", f"{stable_pp:g} pp threshold",
                         imp, stable_pp, imp.mean() <= stable_pp))
        etts = here[here["method"] == "ett"]
        if etts.empty:
            continue
        far = max(etts["source"].unique(), key=lambda s: (abs(depth(s) - depth(model)), s))
        far_instability = etts[etts["source"] == far]["instability"] * 100
        rows.append(_row("far_ett_less_stable", model, level, sparsity, _label("ett", far), "IMP",
                         far_instability, imp, far_instability.mean() > imp.mean()))
    return rows


def _label(method: str, source: str) -> str:
    return label(pd.Series({"method": method, "source": source}))


def judge(runs: pd.DataFrame, interpolations: pd.DataFrame | None = None, near_pp: float = 1.0,
          stable_pp: float = 2.0, ett_scheme: str = "default") -> pd.DataFrame:
    """Every comparison behind every claim, one row each (see the module's docstring)."""
    rows = accuracy_claims(runs, near_pp, ett_scheme)
    if interpolations is not None and len(interpolations):
        rows += lmc_claims(interpolations, stable_pp, ett_scheme)
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(comparisons: pd.DataFrame) -> str:
    if comparisons.empty:
        return "not measured"
    held, total = int(comparisons["holds"].sum()), len(comparisons)
    if held == total:
        return f"holds ({total} of {total})"
    return f"does not hold (0 of {total})" if held == 0 else f"holds in part ({held} of {total})"


def markdown(table: pd.DataFrame, near_pp: float, stable_pp: float) -> str:
    """The verdicts first, then every comparison, so a reader sees both the answer and its grounds."""
    lines = ["### The paper's claims, as these runs judge them", "", "| Claim | Verdict |", "| --- | --- |"]
    lines += [f"| {text.format(near_pp=near_pp, stable_pp=stable_pp)} | {verdict(table[table['claim'] == claim])} |"
              for claim, text in CLAIMS.items()]
    lines += ["", "| Claim | Model | Sparsity | Subject | Reference | Subject's value | Reference's value "
                  "| Difference (pp) | Holds |",
              "|" + " --- |" * 9]
    for _, r in table.iterrows():
        unit = "pp" if r["claim"] in ("imp_lmc_stable", "far_ett_less_stable") else "%"
        lines.append(f"| {r['claim']} | {model_title(r['model'])} | {r['sparsity']:.2%} | {r['subject']} | "
                     f"{r['reference']} | {r['subject_value']:.2f} ± {r['subject_std']:.2f} {unit} | "
                     f"{r['reference_value']:.2f} ± {r['reference_std']:.2f} {unit} | {r['difference']:+.2f} | "
                     f"{'yes' if r['holds'] else 'no'} |")
    lines += ["", ("Accuracies (%) and instabilities (pp, BN recomputed) are means ± std over seeds (and noise "
                   "pairs); a difference within the stds is not evidence either way. Definitions: "
                   "`python -m elth.report.claims --help` and the module's docstring.")]
    return "\n".join(lines) + "\n"


RUNS_COLUMNS = ["model", "method", "source", "scheme", "level", "sparsity", "seed", "test_acc"]
LMC_COLUMNS = ["model", "method", "source", "scheme", "level", "sparsity", "seed", "noise_a", "noise_b", "alpha",
               "bn", "test_acc"]


def read(path: str, columns: list[str], **options) -> pd.DataFrame:
    """A table the claims are drawn from, or an error naming the file and what it lacks."""
    if not Path(path).is_file():
        raise ElthError(f"{path}: file not found; run the `aggregate` (runs.csv) or `lmc_aggregate` (lmc_runs.csv) rule")
    table = pd.read_csv(path, **options)
    lacking = [c for c in columns if c not in table.columns]
    if lacking:
        raise ElthError(f"{path}: no column(s) {', '.join(lacking)}; is it runs.csv (for --runs) or "
                        "lmc_runs.csv (for --lmc)?")
    return table


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.claims", description=__doc__.splitlines()[0],
                                epilog="Each claim's test is in the docstring of elth/report/claims.py.")
    p.add_argument("--runs", required=True, help="runs.csv")
    p.add_argument("--lmc", help="lmc_runs.csv, when the study measured linear mode connectivity")
    p.add_argument("--near-pp", type=float, default=1.0, help="how far below IMP an ETT still counts as near")
    p.add_argument("--stable-pp", type=float, default=2.0, help="the largest instability that counts as stable")
    p.add_argument("--ett-scheme", default="default")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--html", help="the tables also as a page of their own, for Snakemake's report")
    args = p.parse_args(argv)
    runs = read(args.runs, RUNS_COLUMNS, keep_default_na=False)
    interpolations = None
    if args.lmc:
        interpolations = read(args.lmc, LMC_COLUMNS)
        interpolations[["source", "scheme"]] = interpolations[["source", "scheme"]].fillna("")
    table = judge(runs, interpolations, args.near_pp, args.stable_pp, args.ett_scheme)
    text = markdown(table, args.near_pp, args.stable_pp)
    files.write_text(args.csv, table.to_csv(index=False))
    files.write_text(args.md, text)
    if args.html:
        files.write_text(args.html, convert(text, "claims"))
    print(text)


if __name__ == "__main__":
    main()
