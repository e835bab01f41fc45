"""The paper's accuracy-versus-sparsity figures, drawn from runs.csv alone.

Fig 3 has one panel per model: test accuracy against sparsity for every ticket-producing method
(IMP, ETTs from each source depth, the pruning baselines dashed), the mean over seeds with one
standard deviation as a band, and the dense accuracy as a horizontal line with its band. The
sparsity axis is logarithmic in the weights remaining, so IMP's levels are evenly spaced, and is
labelled in percent sparsity as the paper's figures are.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from elth import files  # noqa: E402
from elth.errors import ElthError, cli_errors  # noqa: E402
from elth.models.names import parse  # noqa: E402

METHOD_LABELS = {"dense": "Dense", "imp": "IMP", "reinit": "Reinit", "random": "Random", "magnitude": "Magnitude",
                 "snip": "SNIP", "grasp": "GraSP", "synflow": "SynFlow", "rigl": "RigL"}
# Drawn dashed: the methods the paper compares elastic tickets against.
BASELINES = {"reinit", "random", "magnitude", "snip", "grasp", "synflow", "rigl"}


def model_title(name: str) -> str:
    """'resnet20-w0.5' -> 'ResNet-20 (w0.5)', 'vgg13' -> 'VGG-13', as the paper names them; the families past
    the paper by what tells their members apart: 'imagenet-bottleneck-3-4-8-3' -> 'ResNet (Bottleneck
    3-4-8-3)', 'vit-d4-w64-p7' -> 'ViT-4 (w64, p7)' (4 encoder layers), 'vit-b16' -> 'ViT-B/16'."""
    if name == "vit-b16":
        return "ViT-B/16"
    if m := re.fullmatch(r"vit-d(\d+)-w(\d+)-p(\d+)(?:-h(\d+))?", name):
        return f"ViT-{m[1]} (w{m[2]}, p{m[3]}" + (f", h{m[4]})" if m[4] else ")")
    if m := re.fullmatch(r"imagenet-(resnet|bottleneck)-(\d+-\d+-\d+-\d+)", name):
        return f"ResNet ({'Bottleneck ' if m[1] == 'bottleneck' else ''}{m[2]})"
    m = re.fullmatch(r"(imagenet-)?(resnet|vgg|mlp)-?(\d+)(?:-(w[\d.]+|fc\d+))?", name)
    if not m:
        return name
    base = {"resnet": "ResNet", "vgg": "VGG", "mlp": "MLP"}[m[2]]
    return f"{base}-{m[3]}" + (f" ({m[4]})" if m[4] else "")


def depth_label(name: str) -> str:
    """What sets a model apart from the others of its study, for a legend ('ETTs <- 20'): its depth, or
    for a model named by its block config, the config ('3-4-8-3'); a ViT's is its encoder layers."""
    if name == "vit-b16":
        return "B/16"
    if m := re.fullmatch(r"vit-d(\d+)-.*", name):
        return f"{m[1]} layers"
    if m := re.fullmatch(r"imagenet-(?:resnet|bottleneck)-(\d+-\d+-\d+-\d+)", name):
        return m[1]
    digits = re.search(r"\d+", name)
    return digits[0] if digits else name


def label(row: pd.Series) -> str:
    if row["method"] == "ett":
        return f"ETTs ← {depth_label(row['source'])}"
    if row["method"] == "transfer":  # source is "<dataset>/<model>": the dataset is what differs
        dataset, _, model = row["source"].partition("/")
        return f"Transfer ← {dataset} {depth_label(model)}"
    stretched = re.fullmatch(r"rigl(\d+)x", row["method"])
    return f"RigL {stretched[1]}x" if stretched else METHOD_LABELS.get(row["method"], row["method"])


def model_order(models: list[str]) -> list[str]:
    """Panels by family, then depth, then width, as the paper lays them out."""
    def key(name: str) -> tuple:
        spec = parse(name)
        return (spec.family, [int(x) for x in re.findall(r"\d+", name)])
    return sorted(models, key=key)


# The paper's figures by the models they show (Fig 3 shows every model of its study).
FIGURES = {"fig1": ["resnet32", "resnet56", "vgg13", "vgg19"], "fig3": None, "fig6": ["vgg13", "vgg16", "vgg19"]}


def missing(runs: pd.DataFrame, models: list[str]) -> list[str]:
    """What a reader should know is absent: requested models without runs, and curves with fewer
    seeds or levels than the study's other curves."""
    notes = [f"no runs for {model_title(m)}" for m in models if m not in set(runs["model"])]
    if runs.empty:
        return notes
    seeds = runs["seed"].nunique()
    # IMP runs every level; the other tickets only the compared ones (pruning.compare_at), which
    # are the levels any of them has.
    imp_levels = runs.loc[runs["method"] == "imp", "level"].nunique()
    compared = runs.loc[~runs["method"].isin(["dense", "imp"]), "level"].nunique()
    for keys, group in runs[runs["method"] != "dense"].groupby(["model", "method", "source", "scheme"]):
        name = f"{model_title(keys[0])} {label(pd.Series(dict(zip(['model', 'method', 'source', 'scheme'], keys))))}"
        levels = imp_levels if keys[1] == "imp" else compared
        if group["level"].nunique() < levels:
            notes.append(f"{name}: {group['level'].nunique()} of {levels} levels")
        short = group.groupby("level")["seed"].nunique()
        if (short < seeds).any():
            notes.append(f"{name}: fewer than {seeds} seeds at level(s) {', '.join(map(str, short[short < seeds].index))}")
    return notes


def _is_baseline(lab: str) -> bool:
    return lab in {METHOD_LABELS[b] for b in BASELINES} or lab.startswith("RigL")


def _draw(panels: list[tuple[str, pd.Series, pd.DataFrame]], title: str | None, notes: list[str]) -> plt.Figure:
    """A grid of accuracy-vs-sparsity panels, each (title, dense accuracies, curve rows with `label`)."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    curves = [c for _, _, c in panels if len(c)]
    every = pd.concat(curves)["label"].unique() if curves else []
    labels = sorted(every, key=lambda lab: (_is_baseline(lab), lab != "IMP", lab))
    palette = dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "tab20", n_colors=max(len(labels), 1))))
    dashes = {lab: (4, 2) if _is_baseline(lab) else "" for lab in labels}
    cols = min(4 if len(panels) > 6 else 3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows + 0.8), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (name, dense, here) in zip(axes.flat, panels):
        if len(dense):
            mean, sd = dense.mean() * 100.0, dense.std(ddof=0) * 100.0
            ax.axhline(mean, color="black", lw=1.2, label="Dense")
            ax.axhspan(mean - sd, mean + sd, color="black", alpha=0.08, lw=0)
        if len(here):
            here = here.assign(remaining=100.0 * (1.0 - here["sparsity"]), test_acc=here["test_acc"] * 100.0)
            # One x per (curve, level): the mean over seeds, since transformed tickets' sparsities differ slightly.
            here["x"] = here.groupby(["label", "level"])["remaining"].transform("mean")
            present = [lab for lab in labels if lab in set(here["label"])]
            sns.lineplot(data=here, x="x", y="test_acc", hue="label", style="label", hue_order=present,
                         style_order=present, palette=palette, dashes=dashes, markers={lab: "o" for lab in present},
                         markersize=5, errorbar="sd", err_kws={"alpha": 0.15}, ax=ax, legend=False)
            # Ticks at IMP's levels: transformed tickets' sparsities drift a little from them.
            reference = here[here["label"] == "IMP"] if (here["label"] == "IMP").any() else here
            ticks = sorted(reference["x"].unique(), reverse=True)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{100 - t:.1f}" for t in ticks], rotation=45, ha="right")
            ax.set_xlim(max(here["x"]) * 1.1, min(here["x"]) / 1.1)
        ax.set_title(name)
        ax.set_xlabel("Sparsity (%)")
        ax.set_ylabel("Test accuracy (%)")
    handles = [plt.Line2D([], [], color="black", lw=1.2, label="Dense")]
    handles += [plt.Line2D([], [], color=palette[lab], marker="o", markersize=4,
                           linestyle="--" if dashes[lab] else "-", label=lab) for lab in labels]
    ncol = min(len(handles), 6)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False)
    if title:
        suptitle(fig, title)
    bottom = (0.03 + 0.03 * -(-len(handles) // ncol)) / rows ** 0.5
    if notes:
        fig.text(0.5, 0.005, "Missing: " + "; ".join(notes), ha="center", va="bottom", fontsize=8, color="firebrick", wrap=True)
        bottom += 0.03
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def _labelled(runs: pd.DataFrame) -> pd.DataFrame:
    out = runs[runs["method"] != "dense"].copy()
    out["label"] = out.apply(label, axis=1) if len(out) else []
    return out


def fig3(runs: pd.DataFrame, title: str | None = None, ett_scheme: str = "default",
         models: list[str] | None = None) -> plt.Figure:
    """One panel per model (all of `runs`, or `models`); ETT curves are those of `ett_scheme`
    (other schemes have their own figures). Missing runs are named in the caption."""
    notes = missing(runs, models or [])
    if models is not None:
        runs = runs[runs["model"].isin(models)]
    if runs.empty:
        raise ElthError("no runs to draw" + (f": {'; '.join(notes)}" if notes else ""))
    sparse = _labelled(runs[(runs["method"] != "ett") | (runs["scheme"] == ett_scheme)])
    panels = [(model_title(m), runs[(runs["model"] == m) & (runs["method"] == "dense")]["test_acc"],
               sparse[sparse["model"] == m]) for m in model_order(list(runs["model"].unique()))]
    return _draw(panels, title, notes)


def schemes(runs: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Figs 9-13: one row per target, one panel per source; in each, the target's IMP and baselines
    and the ETT curves of every scheme from that source."""
    ett = runs[runs["method"] == "ett"]
    if ett.empty:
        raise ElthError("no ETT runs: figs 9-13 compare transformation schemes")
    others = _labelled(runs[runs["method"] != "ett"])
    transformed = ett.assign(label="ETT " + ett["scheme"])
    panels = []
    for target in model_order(list(ett["model"].unique())):
        for source in model_order(list(ett.loc[ett["model"] == target, "source"].unique())):
            curves = pd.concat([others[others["model"] == target],
                                transformed[(transformed["model"] == target) & (transformed["source"] == source)]])
            dense = runs[(runs["model"] == target) & (runs["method"] == "dense")]["test_acc"]
            panels.append((f"{model_title(target)} ← {model_title(source)}", dense, curves))
    return _draw(panels, title, missing(runs, []))


def suptitle(fig: plt.Figure, title: str) -> None:
    """The figure's title, wrapped to its width: a one-panel figure is narrower than a study's name."""
    fig.suptitle(textwrap.fill(title, width=max(40, int(11 * fig.get_figwidth()))))


def save(fig: plt.Figure, *paths: str) -> None:
    """Write each format atomically (the DAG must never see a half-written figure)."""
    for path in paths:
        with files.atomic_path(path) as tmp:
            fig.savefig(tmp, format=os.path.splitext(path)[1][1:], dpi=150)
    plt.close(fig)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.figures", description="Draw a figure from runs.csv.")
    p.add_argument("figure", choices=sorted([*FIGURES, "fig9-13"]))
    p.add_argument("--runs", required=True, help="results/tables/runs.csv")
    p.add_argument("--pdf", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--ett-scheme", default="default", help="the ETT scheme whose curves fig3 shows")
    args = p.parse_args(argv)
    runs = pd.read_csv(args.runs, keep_default_na=False)
    experiment = ", ".join(sorted(set(runs["experiment"]))) if len(runs) else ""
    dataset = ", ".join(sorted(set(runs["dataset"]))) if len(runs) else ""
    title = f"{experiment}: {dataset}, {runs['seed'].nunique()} seed(s)"
    if args.figure == "fig9-13":
        save(schemes(runs, title), args.pdf, args.png)
    else:
        save(fig3(runs, title, args.ett_scheme, FIGURES[args.figure]), args.pdf, args.png)
    print(f"{args.figure}: {runs['model'].nunique()} panels -> {args.pdf}, {args.png}")


if __name__ == "__main__":
    main()
