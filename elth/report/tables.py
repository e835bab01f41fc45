"""The paper's tables, measured, beside the paper's own numbers, from runs.csv alone.

`table2`: one sparsity (73.79% in the paper), rows by method, columns by model; each cell the
mean test accuracy over seeds. Where the paper printed a number for the same row and model it
stands beside ours, and a row whose order against another row differs from the paper's (an ETT
below SNIP where the paper has it above, say) is flagged. `table3`: at one sparsity, the grid of
sources (rows) by targets (columns), IMP on the diagonal, as the paper's Table 3. `table5`: every
ETT scheme (the width schemes of App. B) as its own row, beside the paper's Table 5. `table4`:
every dataset transfer into the study's dataset, beside the same source model's ticket found on
the target dataset itself (IMP, or its ETT) and the target's IMP ticket, as the paper's Table 4.
"""

from __future__ import annotations

import argparse
from importlib import resources
from itertools import combinations

import pandas as pd
import yaml

from elth import files
from elth.errors import cli_errors
from elth.report.figures import label, model_order, model_title
from elth.report.html import convert

ROW_ORDER = ["Dense", "IMP", "Reinit", "Random", "Magnitude", "SNIP", "GraSP", "SynFlow"]


def paper_numbers() -> dict:
    return yaml.safe_load(resources.files("elth.report").joinpath("paper_numbers.yaml").read_text())


def nearest_level(runs: pd.DataFrame, model: str, sparsity: float) -> int | None:
    imp = runs[(runs["model"] == model) & (runs["method"] == "imp")]
    if imp.empty:
        return None
    levels = imp.groupby("level")["sparsity"].mean()
    return int((levels - sparsity).abs().idxmin())


def _paper_label(key: str) -> str:
    """'ett<-imagenet-resnet18' -> 'ETTs ← 18'; 'snip' -> 'SNIP': the labels our rows carry."""
    method, _, source = key.partition("<-")
    return label(pd.Series({"method": method, "source": source}))


def printed_table2(paper: dict) -> dict[tuple[str, str], float]:
    """The paper's Table 2 as {(row label, model): accuracy}."""
    return {(_paper_label(key), model): value for key, values in paper["rows"].items()
            for model, value in zip(paper["models"], values) if value is not None}


def printed_table5(paper: dict) -> dict[tuple[str, str], float]:
    """The paper's Table 5 as {(row label, model): accuracy}; width schemes are ETT rows."""
    return {(width_label(pd.Series({"method": "ett" if key not in ("dense", "imp") else key, "scheme": key, "source": ""})),
             paper["target"]): value for key, value in paper["rows"].items()}


def width_label(row: pd.Series) -> str:
    return f"ETT {row['scheme']}" if row["method"] == "ett" else label(row)


def table_at(runs: pd.DataFrame, sparsity: float, printed: dict | None = None, scheme: str | None = "default",
             labeler=label) -> pd.DataFrame:
    """Tidy rows (method, model, level, sparsity, seeds, mean, std, paper) at the level of each
    model closest to `sparsity`; dense runs at level 0. ETT rows are those of `scheme` (None: all),
    named by `labeler`; `printed` maps (row, model) to the paper's number."""
    if scheme is not None:
        runs = runs[(runs["method"] != "ett") | (runs["scheme"] == scheme)]
    runs = runs.copy()
    runs["row"] = runs.apply(labeler, axis=1)
    printed = printed or {}
    rows = []
    for model in model_order(list(runs["model"].unique())):
        level = nearest_level(runs, model, sparsity)
        here = runs[(runs["model"] == model) & ((runs["method"] == "dense") | (runs["level"] == level))]
        for row, group in here.groupby("row"):
            acc = group["test_acc"] * 100
            rows.append({"row": row, "model": model, "level": int(group["level"].iloc[0]),
                         "sparsity": float(group["sparsity"].mean()), "seeds": int(group["seed"].nunique()),
                         "mean": float(acc.mean()), "std": float(acc.std(ddof=0)), "paper": printed.get((row, model))})
    table = pd.DataFrame(rows, columns=["row", "model", "level", "sparsity", "seeds", "mean", "std", "paper"])
    table["flag"] = ordering_flags(table)
    return table


def ordering_flags(table: pd.DataFrame) -> list[str]:
    """For each row, the other rows it is ordered against differently than in the paper."""
    flags = {i: [] for i in table.index}
    both = table.dropna(subset=["paper"])
    for _, group in both.groupby("model"):
        for (i, a), (j, b) in combinations(group.iterrows(), 2):
            ours, theirs = a["mean"] - b["mean"], a["paper"] - b["paper"]
            if ours * theirs < 0:
                flags[i].append(f"{'above' if ours > 0 else 'below'} {b['row']} (paper: {'above' if theirs > 0 else 'below'})")
                flags[j].append(f"{'above' if ours < 0 else 'below'} {a['row']} (paper: {'above' if theirs < 0 else 'below'})")
    return ["; ".join(flags[i]) for i in table.index]


def markdown(table: pd.DataFrame, title: str) -> str:
    """Rows by method, columns by model; each cell 'ours ± std (paper)' and flags listed below."""
    models = model_order(list(table["model"].unique()))
    rows = sorted(table["row"].unique(), key=lambda r: (ROW_ORDER.index(r) if r in ROW_ORDER else len(ROW_ORDER), r))
    head = "| | " + " | ".join(model_title(m) for m in models) + " |"
    lines = [f"### {title}", "", head, "|" + " --- |" * (len(models) + 1)]
    for row in rows:
        cells = []
        for model in models:
            hit = table[(table["row"] == row) & (table["model"] == model)]
            if hit.empty:
                cells.append("-")
                continue
            r = hit.iloc[0]
            cell = f"{r['mean']:.2f} ± {r['std']:.2f}"
            if pd.notna(r["paper"]):
                cell += f" ({r['paper']:.2f})"
            if r["flag"]:
                cell += " ⚑"
            cells.append(cell)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    sparsities = ", ".join(f"{model_title(m)}: {table[(table['model'] == m) & (table['row'] == 'IMP')]['sparsity'].mean():.2%}"
                           for m in models if ((table["model"] == m) & (table["row"] == "IMP")).any())
    lines += ["", f"Mean test accuracy (%) ± std over seeds{_paper_note(table)}. Sparsity used: {sparsities}."]
    flagged = table[table["flag"] != ""]
    if len(flagged):
        lines += ["", "⚑ Ordering differs from the paper's:"]
        lines += [f"- {model_title(r['model'])}, {r['row']}: {r['flag']}" for _, r in flagged.iterrows()]
    return "\n".join(lines) + "\n"


def _paper_note(table: pd.DataFrame) -> str:
    """The footnote's words on the paper's numbers, only for what the table shows: a study of models or
    datasets the paper never ran has no number in parentheses and no ordering to differ from."""
    return "; the paper's number in parentheses" if table["paper"].notna().any() else (
        "; the paper printed no number for these rows and models")


def table3_markdown(table: pd.DataFrame, sparsity: float) -> str:
    """The grid of sources (rows) by targets (columns), both in the paper's order and by the paper's
    names, each cell 'ours (paper)'; the sparsity each target was compared at and the flags below."""
    sources, targets = set(table["source"]), set(table["target"])
    models = model_order(sorted(sources | targets))
    cells = {(r["source"], r["target"]): f"{r['mean']:.2f}" + (f" ({r['paper']:.2f})" if pd.notna(r["paper"]) else "")
             + (" ⚑" if r["flag"] else "") for _, r in table.iterrows()}
    targets = [m for m in models if m in targets]
    lines = [f"### Table 3 shape: sources (rows) by targets (columns) near {sparsity:.2%} sparsity", "",
             "| source | " + " | ".join(model_title(t) for t in targets) + " |",
             "|" + " --- |" * (len(targets) + 1)]
    for source in (m for m in models if m in sources):
        lines.append(f"| {model_title(source)} | " + " | ".join(cells.get((source, t), "-") for t in targets) + " |")
    used = table[table["source"] == table["target"]].set_index("target")["sparsity"]
    sparsities = ", ".join(f"{model_title(t)}: {used[t]:.2%}" for t in targets if t in used.index)
    lines += ["", f"Mean test accuracy (%) over seeds, IMP on the diagonal and the ETT of the default scheme "
              f"elsewhere{_paper_note(table)}. Sparsity used: {sparsities}."]
    flagged = table[table["flag"] != ""]
    if len(flagged):
        lines += ["", "⚑ A source's order against another, for the same target, differs from the paper's:"]
        lines += [f"- {model_title(r['target'])} from {model_title(r['source'])}: {r['flag']}"
                  for _, r in flagged.iterrows()]
    return "\n".join(lines) + "\n"


def table3(runs: pd.DataFrame, sparsity: float, paper: dict | None = None) -> pd.DataFrame:
    """Sources by targets at one sparsity: IMP on the diagonal, ETT (default scheme) elsewhere;
    with the paper's number for the same (source, target) where its Table 3 has one."""
    rows = []
    for target in model_order(list(runs["model"].unique())):
        level = nearest_level(runs, target, sparsity)
        here = runs[(runs["model"] == target) & (runs["level"] == level)]
        imp = here[here["method"] == "imp"]
        if len(imp):
            rows.append({"source": target, "target": target, "level": level, "sparsity": float(imp["sparsity"].mean()),
                         "mean": imp["test_acc"].mean() * 100})
        ett = here[(here["method"] == "ett") & (here["scheme"] == "default")]
        for source, group in ett.groupby("source"):
            rows.append({"source": source, "target": target, "level": level, "sparsity": float(group["sparsity"].mean()),
                         "mean": group["test_acc"].mean() * 100})
    printed = {}
    for grid in (paper or {}).get("grids", []):
        for source, values in grid["rows"].items():
            printed.update({(source, target): v for target, v in zip(grid["models"], values)})
    table = pd.DataFrame(rows, columns=["source", "target", "level", "sparsity", "mean"])
    table["paper"] = [printed.get((s, t)) for s, t in zip(table["source"], table["target"])]
    # Within each target, the sources' order against the paper's.
    table["flag"] = ordering_flags(table.rename(columns={"source": "row", "target": "model"}))
    return table


TABLE4_COLUMNS = ["source_dataset", "source_model", "target_dataset", "target_model", "scheme", "level", "sparsity",
                  "seeds", "mean", "std", "imp", "paper", "paper_imp"]


def table4(runs: pd.DataFrame, sparsity: float, paper: dict | None = None) -> pd.DataFrame:
    """At each target model's level nearest `sparsity`: every transfer (method `transfer`, source
    `<dataset>/<model>`) and, for the same source model, its ticket found on the target dataset
    (IMP for a direct transfer, the ETT of the transfer's scheme otherwise), each beside the target's
    IMP accuracy and the paper's two numbers where Table 4 has the row."""
    paper = paper or {}
    printed = {(sd, paper.get("source_model"), td, tm): (acc, imp) for sd, td, tm, acc, imp in paper.get("rows", [])}
    transfers = runs[runs["method"] == "transfer"]
    rows = []
    for target in model_order(list(transfers["model"].unique())):
        level = nearest_level(runs, target, sparsity)
        here = runs[(runs["model"] == target) & (runs["level"] == level)]
        imp = here[here["method"] == "imp"]
        imp_mean = float(imp["test_acc"].mean() * 100) if len(imp) else None
        cells = []
        for (source, scheme), group in here[here["method"] == "transfer"].groupby(["source", "scheme"]):
            source_dataset, source_model = source.split("/", 1)
            cells.append((source_dataset, source_model, scheme, group))
            same = imp if source_model == target else here[(here["method"] == "ett") & (here["source"] == source_model)
                                                           & (here["scheme"] == scheme)]
            if len(same):
                cells.append((same["dataset"].iloc[0], source_model, scheme, same))
        for source_dataset, source_model, scheme, group in cells:
            acc = group["test_acc"] * 100
            dataset = group["dataset"].iloc[0]
            acc_paper, imp_paper = printed.get((source_dataset, source_model, dataset, target), (None, None))
            rows.append({"source_dataset": source_dataset, "source_model": source_model, "target_dataset": dataset,
                         "target_model": target, "scheme": scheme, "level": level,
                         "sparsity": float(group["sparsity"].mean()), "seeds": int(group["seed"].nunique()),
                         "mean": float(acc.mean()), "std": float(acc.std(ddof=0)), "imp": imp_mean,
                         "paper": acc_paper, "paper_imp": imp_paper})
    table = pd.DataFrame(rows, columns=TABLE4_COLUMNS).drop_duplicates(
        ["source_dataset", "source_model", "target_dataset", "target_model", "scheme"])
    return table.reset_index(drop=True)


def table4_markdown(table: pd.DataFrame, sparsity: float) -> str:
    """One line per (source, target) as the paper lays Table 4 out, the paper's numbers in parentheses."""
    def cell(value: float | None, paper: float | None, std: float | None = None) -> str:
        if value is None or pd.isna(value):
            return "-"
        text = f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        return text + (f" ({paper:.2f})" if paper is not None and pd.notna(paper) else "")

    lines = [f"### Table 4 shape: dataset transfer, at the level nearest {sparsity:.2%} sparsity", "",
             "| source | target dataset | target model | scheme | sparsity | accuracy | IMP on target |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for _, r in table.iterrows():
        lines.append(f"| {model_title(r['source_model'])} {r['source_dataset']} | {r['target_dataset']} | "
                     f"{model_title(r['target_model'])} | {r['scheme']} | {r['sparsity']:.2%} | "
                     f"{cell(r['mean'], r['paper'], r['std'])} | {cell(r['imp'], r['paper_imp'])} |")
    lines += ["", "Mean test accuracy (%) ± std over seeds; the paper's number in parentheses (its Table 4 does "
              "not print the sparsity). Rows whose source dataset is the target's are the source model's own "
              "ticket there (IMP, or its ETT): the loss of transferring the dataset alone is the gap between "
              "the two rows of a source model."]
    return "\n".join(lines) + "\n"


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.tables", description="Write a table from runs.csv.")
    p.add_argument("table", choices=["table2", "table3", "table4", "table5"])
    p.add_argument("--runs", required=True)
    p.add_argument("--sparsity", type=float, required=True, help="the IMP sparsity to compare at (nearest level)")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--html", help="the table also as a page of its own, for Snakemake's report")
    args = p.parse_args(argv)
    runs = pd.read_csv(args.runs, keep_default_na=False)
    if args.table == "table2":
        table = table_at(runs, args.sparsity, printed_table2(paper_numbers()["table2"]))
        text = markdown(table, f"Table 2 shape: accuracy at the level nearest {args.sparsity:.2%} sparsity")
    elif args.table == "table4":
        table = table4(runs, args.sparsity, paper_numbers()["table4"])
        text = table4_markdown(table, args.sparsity)
    elif args.table == "table5":
        table = table_at(runs, args.sparsity, printed_table5(paper_numbers()["table5"]), scheme=None, labeler=width_label)
        text = markdown(table, f"Table 5 shape: every scheme's ETTs at the level nearest {args.sparsity:.2%} sparsity")
    else:
        table = table3(runs, args.sparsity, paper_numbers()["table3"])
        text = table3_markdown(table, args.sparsity)
    files.write_text(args.csv, table.to_csv(index=False))
    files.write_text(args.md, text)
    if args.html:
        files.write_text(args.html, convert(text, args.table))
    print(text)


if __name__ == "__main__":
    main()
