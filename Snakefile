# elth: the Elastic Lottery Ticket Hypothesis as a DAG of file-producing rules.
#   snakemake --cores 2                                               # the embedded demo (config.yaml)
#   snakemake --cores 8 --configfile=config/paper/cifar10-resnet.yaml   # a paper study
#   snakemake --cores 2 results/figures/fig3.pdf                      # one target and what it needs

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/dense.smk"
include: "workflow/rules/imp.smk"
include: "workflow/rules/ett.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/dst.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/together.smk"
include: "workflow/rules/lmc.smk"
include: "workflow/rules/report.smk"


# Rules that only read small files and draw, tabulate or count (the FLOPs tables, on the meta device),
# or write a method's settings, run where Snakemake runs (under SLURM, the login node): a job each
# would wait longer than it runs.
localrules:
    baseline_settings,
    aggregate,
    figure,
    table,
    lmc_aggregate,
    lmc_figure,
    lmc_table,
    claims,
    benchmarks,
    flops,
    report,


# The opening page of `snakemake --report report.html` (or .zip); each result's caption is beside it.
report: "workflow/report/workflow.rst"


# The default target lists every run as well as the table and figure: Snakemake rebuilds a missing
# file only for a target or for a job that has to run, so a deleted run (an IMP level, say) is
# redone, with what depends on it, when its summary is a target.
rule all:
    input:
        all_summaries(),
        "results/tables/runs.csv",
        "results/figures/fig3.pdf",
        ["results/figures/fig9-13.pdf"] if ETT else [],
        ["results/tables/table4.md"] if TRANSFER else [],
        "results/report.md",
        "results/tables/benchmarks.csv",
        report_pages(),
        lmc_targets(),
        flops_tables(),
    default_target: True
