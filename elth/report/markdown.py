"""results/report.md: what ran, on what data and device, and the figures and tables, in one page."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from elth import files
from elth.errors import cli_errors
from elth.report.figures import model_title


def report(runs: pd.DataFrame, figures: list[str], tables: list[str], out: str, lmc: list[str] | None = None,
           claims: str | None = None) -> str:
    """The page; `claims` (claims.md, the verdicts on the paper's claims) comes first, as the answer
    a reader looks for; `lmc` (Fig 7's image and the instability table) gets a section of its own,
    since its numbers come from the interpolations of lmc_runs.csv rather than from runs.csv."""
    here = Path(out).parent
    methods = runs.groupby("method").size().to_dict()
    lines = [
        f"# elth report: {', '.join(sorted(set(runs['experiment'])))}",
        "",
        f"- Dataset: {', '.join(sorted(set(runs['dataset'])))}",
        f"- Models: {', '.join(model_title(m) for m in sorted(set(runs['model'])))}",
        f"- Seeds: {', '.join(map(str, sorted(set(runs['seed']))))}",
        f"- Runs: {len(runs)} ({', '.join(f'{k} {v}' for k, v in sorted(methods.items()))})",
        f"- Devices: {', '.join(sorted(set(runs['device'])))}",
        f"- Training time: {runs['wall_s'].sum() / 60:.1f} minutes in all (sum over runs)",
        "",
        "Every number below comes from `tables/runs.csv`, one row per run that happened.",
        "",
    ]
    if claims:
        lines += ["## Claims", "", Path(claims).read_text().strip(), ""]
    lines += ["## Figures", ""]
    lines += [f"![{Path(f).stem}]({os.path.relpath(f, here)})" for f in figures]
    lines += ["", "## Tables", ""]
    for table in tables:
        lines += [Path(table).read_text().strip(), ""]
    if lmc:
        lines += ["## Linear mode connectivity (Fig 7)", "",
                  "Two copies of each ticket retrained under different SGD noise (data order and augmentation), "
                  "and the test accuracy along the line between them, from `tables/lmc_runs.csv`.", ""]
        for path in lmc:
            if path.endswith(".png"):
                lines += [f"![{Path(path).stem}]({os.path.relpath(path, here)})", ""]
            else:
                lines += [Path(path).read_text().strip(), ""]
    return "\n".join(lines) + "\n"


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.report.markdown", description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True)
    p.add_argument("--figures", nargs="*", default=[])
    p.add_argument("--tables", nargs="*", default=[])
    p.add_argument("--lmc", nargs="*", default=[], help="fig7.png and lmc.md, when the study measured them")
    p.add_argument("--claims", help="claims.md, the verdicts on the paper's claims")
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args(argv)
    runs = pd.read_csv(args.runs, keep_default_na=False)
    files.write_text(args.out, report(runs, args.figures, args.tables, args.out, args.lmc, args.claims))
    print(f"report -> {args.out}")


if __name__ == "__main__":
    main()
