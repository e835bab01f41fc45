# elth: the Elastic Lottery Ticket Hypothesis as a DAG of file-producing rules.
#   snakemake --cores 2 results/figures/fig3.pdf                      # the embedded demo (config.yaml)
#   snakemake --cores 8 --configfile config/paper/cifar10-resnet.yaml   # a paper study

include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/dense.smk"
include: "workflow/rules/imp.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/tables/runs.csv",
        "results/figures/fig3.pdf",
    default_target: True
