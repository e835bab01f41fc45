"""Linear mode connectivity in the report: every interpolation in one tidy table, Fig 7 and the
instability table, the last two drawn from the first alone.

`lmc_runs.csv` has one row per (ticket, seed, pair of noise seeds, alpha, BN mode), the rows each
`elth.lmc` job wrote. Fig 7 has one panel per model and level: test accuracy against alpha for
every ticket, the mean over seeds and noise pairs with one standard deviation as a band, solid
with BN statistics recomputed after interpolating and dashed with them interpolated. The table
gives each ticket's instability (the largest test error along the line above the mean of the two
ends' errors) in both modes, beside the largest drop the paper's text gives for Fig 7.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from elth import files  # noqa: E402
from elth.errors import ElthError, cli_errors  # noqa: E402
from elth.lmc import BN_MODES, COLUMNS, instability  # noqa: E402
from elth.report.figures import label, model_order, model_title, save, suptitle  # noqa: E402
from elth.report.html import convert  # noqa: E402
from elth.report.tables import paper_numbers  # noqa: E402

TICKET = ["dataset", "model", "level", "method", "source", "scheme"]
PAIR = [*TICKET, "seed", "noise_a", "noise_b"]
BN_STYLE = {"recomputed": "-", "interpolated": "--"}
BN_LEGEND = {"recomputed": "BN recomputed", "interpolated": "BN interpolated"}


def collect(paths: list[str], experiment: str) -> pd.DataFrame:
    """The interpolation CSVs of every LMC job as one table, with the study's name."""
    if not paths:
        raise ElthError("no interpolations to collect: the config has no `lmc` section")
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    table[["source", "scheme"]] = table[["source", "scheme"]].fillna("")
    table.insert(0, "experiment", experiment)
    return table[["experiment", *COLUMNS]].sort_values([*PAIR, "bn", "alpha"], kind="stable").reset_index(drop=True)


def ticket_label(row: pd.Series) -> str:
    """As Fig 3 names tickets ("IMP", "ETTs ← 20"), with the scheme when it is not the default."""
    name = label(row)
    return f"{name} ({row['scheme']})" if row["method"] == "ett" and row["scheme"] not in ("", "default") else name


def labelled(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.assign(label=runs.apply(ticket_label, axis=1)) if len(runs) else runs.assign(label=[])


def instabilities(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (ticket, seed, noise pair, BN mode): the ends' mean accuracy, the lowest along
    the line, and the instability of the test error (elth.lmc's definition)."""
    rows = []
    for keys, curve in runs.groupby([*PAIR, "bn"], sort=True):
        errors = (1.0 - curve["test_acc"]).tolist()
        ends = curve[curve["alpha"].isin([0.0, 1.0])]["test_acc"]
        rows.append({**dict(zip([*PAIR, "bn"], keys)), "sparsity": curve["sparsity"].mean(), "end_acc": ends.mean(),
                     "min_acc": curve["test_acc"].min(), "instability": instability(curve["alpha"].tolist(), errors)})
    return pd.DataFrame(rows, columns=[*PAIR, "bn", "sparsity", "end_acc", "min_acc", "instability"])


def paper_drops() -> dict[tuple[str, str, str], float]:
    """The largest accuracy drops along the line that the paper's text gives (Sec 4.4, Fig 7), as
    {(dataset, model, ticket label without scheme): percentage points}. The text names no scheme
    (the authors' script transformed ResNet-20 by "Inter 12", ResNet-14 by the default), so the
    number stands beside every scheme's ETTs from that source."""
    drops = {}
    for entry in paper_numbers()["text"]:
        if "Fig 7" in entry["source"]:
            for key, value in entry["values"].items():
                method, _, source = key.partition("<-")
                drops[(entry["dataset"], entry["model"], label(pd.Series({"method": method, "source": source})))] = value
    return drops


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (model, level, ticket, BN mode): the mean and standard deviation over seeds and noise
    pairs of the instability, the ends' accuracy and the lowest accuracy on the line, in percent;
    `paper` is the paper's largest drop for the same ticket, where its text gives one."""
    per_pair = labelled(instabilities(runs))
    drops = paper_drops()
    rows = []
    for (dataset, model, level, name, bn), group in per_pair.groupby(["dataset", "model", "level", "label", "bn"]):
        rows.append({"model": model, "level": int(level), "sparsity": float(group["sparsity"].mean()), "ticket": name,
                     "bn": bn, "pairs": len(group), "end_acc": 100 * group["end_acc"].mean(),
                     "min_acc": 100 * group["min_acc"].mean(), "instability": 100 * group["instability"].mean(),
                     "instability_std": 100 * group["instability"].std(ddof=0),
                     "paper": drops.get((dataset, model, label(group.iloc[0])))})
    return pd.DataFrame(rows, columns=["model", "level", "sparsity", "ticket", "bn", "pairs", "end_acc", "min_acc",
                                       "instability", "instability_std", "paper"])


def _ticket_order(names) -> list[str]:
    return sorted(set(names), key=lambda n: (n != "IMP", not n.startswith("ETT"), n))


def markdown(summary: pd.DataFrame) -> str:
    """One row per ticket: the ends' accuracy, and the instability in both BN modes."""
    lines = ["### Linear mode connectivity: instability along the line between two trained copies", "",
             "| Model | Sparsity | Ticket | Accuracy at the ends (%) | Instability, BN recomputed (pp) "
             "| Instability, BN interpolated (pp) | Paper's largest drop (pp) |",
             "|" + " --- |" * 7]
    for model in model_order(list(summary["model"].unique())):
        here = summary[summary["model"] == model]
        for level in sorted(here["level"].unique()):
            at = here[here["level"] == level]
            for name in _ticket_order(at["ticket"]):
                rows = at[at["ticket"] == name].set_index("bn")
                cells = [f"{rows.loc[bn, 'instability']:.2f} ± {rows.loc[bn, 'instability_std']:.2f}"
                         if bn in rows.index else "-" for bn in ("recomputed", "interpolated")]
                first = rows.iloc[0]
                paper = f"{first['paper']:.2f}" if pd.notna(first["paper"]) else "-"
                lines.append(f"| {model_title(model)} | {first['sparsity']:.2%} | {name} | {first['end_acc']:.2f} | "
                             f"{cells[0]} | {cells[1]} | {paper} |")
    low, high = summary["pairs"].min(), summary["pairs"].max()
    pairs = f"{low}" if low == high else f"{low} to {high}"
    lines += ["", "Instability (Frankle et al. 2020): the largest test error along the line minus the mean of the "
              f"two ends' errors, in percentage points; mean ± std over seeds and noise pairs ({pairs} per ticket). "
              "The paper reports the largest accuracy drop it saw along the line."]
    return "\n".join(lines) + "\n"


def fig7(runs: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """One panel per (model, level): test accuracy against alpha per ticket, both BN modes."""
    if runs.empty:
        raise ElthError("no interpolations to draw")
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    runs = labelled(runs)
    names = _ticket_order(runs["label"])
    palette = dict(zip(names, sns.color_palette("tab10" if len(names) <= 10 else "tab20", n_colors=len(names))))
    panels = [(m, lv) for m in model_order(list(runs["model"].unique()))
              for lv in sorted(runs.loc[runs["model"] == m, "level"].unique())]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows + 1.0), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (model, level) in zip(axes.flat, panels):
        here = runs[(runs["model"] == model) & (runs["level"] == level)]
        for (name, bn), curve in here.groupby(["label", "bn"]):
            stats = (curve["test_acc"] * 100).groupby(curve["alpha"]).agg(["mean", lambda a: a.std(ddof=0)])
            stats.columns = ["mean", "sd"]
            ax.plot(stats.index, stats["mean"], color=palette[name], linestyle=BN_STYLE[bn], marker="o", markersize=3)
            ax.fill_between(stats.index, stats["mean"] - stats["sd"], stats["mean"] + stats["sd"],
                            color=palette[name], alpha=0.12, lw=0)
        # Tickets of one level differ slightly in sparsity (an ETT's is the stretched mask's): the
        # title names the IMP ticket's, or the range when there is none.
        imp = here.loc[here["method"] == "imp", "sparsity"]
        low, high = here["sparsity"].min(), here["sparsity"].max()
        sparsity = f"{imp.iloc[0]:.2%}" if len(imp) else (f"{low:.2%}" if low == high else f"{low:.2%}-{high:.2%}")
        ax.set_title(f"{model_title(model)}, {sparsity} sparse (level {level})")
        ax.set_xlabel("Interpolation α (0: copy a, 1: copy b)")
        ax.set_ylabel("Test accuracy (%)")
        ax.set_xlim(0, 1)
    handles = [plt.Line2D([], [], color=palette[n], marker="o", markersize=4, label=n) for n in names]
    handles += [plt.Line2D([], [], color="gray", linestyle=BN_STYLE[bn], label=BN_LEGEND[bn]) for bn in BN_MODES]
    ncol = min(len(handles), 3 * cols)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False)
    if title:
        suptitle(fig, title)
    fig.tight_layout(rect=(0, (0.04 + 0.035 * -(-len(handles) // ncol)) / rows ** 0.5, 1, 1))
    return fig


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.lmc", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    agg = sub.add_parser("aggregate", help="collect interpolation.csv files into lmc_runs.csv")
    agg.add_argument("interpolations", nargs="+")
    agg.add_argument("--experiment", required=True)
    agg.add_argument("-o", "--out", required=True)
    fig = sub.add_parser("fig7", help="draw Fig 7 from lmc_runs.csv")
    fig.add_argument("--runs", required=True)
    fig.add_argument("--pdf", required=True)
    fig.add_argument("--png", required=True)
    tab = sub.add_parser("table", help="the instability table from lmc_runs.csv")
    tab.add_argument("--runs", required=True)
    tab.add_argument("--csv", required=True)
    tab.add_argument("--md", required=True)
    tab.add_argument("--html", help="the table also as a page of its own, for Snakemake's report")
    args = p.parse_args(argv)
    if args.command == "aggregate":
        runs = collect(args.interpolations, args.experiment)
        files.write_text(args.out, runs.to_csv(index=False))
        print(f"{len(args.interpolations)} interpolations -> {args.out}")
        return
    runs = pd.read_csv(args.runs)
    runs[["source", "scheme"]] = runs[["source", "scheme"]].fillna("")
    if args.command == "fig7":
        pairs = runs.groupby(["seed", "noise_a", "noise_b"]).ngroups if len(runs) else 0
        title = f"{', '.join(sorted(set(runs['experiment'])))}: {', '.join(sorted(set(runs['dataset'])))}, " \
                f"{pairs} (seed, noise pair) combination(s)"
        save(fig7(runs, title), args.pdf, args.png)
        print(f"fig7 -> {args.pdf}, {args.png}")
    else:
        summary = table(runs)
        text = markdown(summary)
        files.write_text(args.csv, summary.to_csv(index=False))
        files.write_text(args.md, text)
        if args.html:
            files.write_text(args.html, convert(text, "lmc"))
        print(text)


if __name__ == "__main__":
    main()
