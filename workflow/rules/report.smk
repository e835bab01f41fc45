# Aggregation of every run into one tidy table, and the figures drawn from that table alone.


rule aggregate:
    input:
        all_summaries(),
    output:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
    params:
        experiment=config["experiment"],
    log:
        "logs/aggregate.log",
    shell:
        "{PY} -m elth.report.aggregate --experiment {params.experiment} -o {output.runs} --summary {output.summary}"
        " {input} > {log} 2>&1"


# fig3: every model of the study; fig1 and fig6: the paper's panels (ResNet-32/56 and VGG-13/19;
# VGG-13/16/19), whose missing models the caption names.
rule figure:
    input:
        runs="results/tables/runs.csv",
    output:
        pdf="results/figures/{figure}.pdf",
        png="results/figures/{figure}.png",
    wildcard_constraints:
        figure="fig1|fig3|fig6",
    log:
        "logs/{figure}.log",
    shell:
        "{PY} -m elth.report.figures {wildcards.figure} --runs {input.runs} --ett-scheme default"
        " --pdf {output.pdf} --png {output.png} > {log} 2>&1"
