# Aggregation of every run into one tidy table, and the figures drawn from that table alone.


rule aggregate:
    input:
        all_summaries(),
    output:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
    params:
        code=CODE["report"],
        experiment=config["experiment"],
    log:
        "logs/aggregate.log",
    shell:
        "{PY} -m elth.report.aggregate --experiment {params.experiment} -o {output.runs} --summary {output.summary}"
        " {input} > {log} 2>&1"


# fig3: every model of the study; fig1 and fig6: the paper's panels (ResNet-32/56 and VGG-13/19;
# VGG-13/16/19), whose missing models the caption names; fig9-13: every ETT scheme, per target
# (rows) and source (panels).
rule figure:
    input:
        runs="results/tables/runs.csv",
    output:
        pdf="results/figures/{figure}.pdf",
        png="results/figures/{figure}.png",
    wildcard_constraints:
        figure="fig1|fig3|fig6|fig9-13",
    params:
        code=CODE["report"],
    log:
        "logs/{figure}.log",
    shell:
        "{PY} -m elth.report.figures {wildcards.figure} --runs {input.runs} --ett-scheme default"
        " --pdf {output.pdf} --png {output.png} > {log} 2>&1"


# The paper's tables, measured, beside its numbers: table2 at one sparsity (73.79% in the paper,
# the nearest IMP level here), table3 as a grid of sources by targets (89.26% in the paper), and
# table5 with every ETT scheme as a row (the width schemes of App. B).
rule table:
    input:
        runs="results/tables/runs.csv",
    output:
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
    wildcard_constraints:
        table="table2|table3|table5",
    params:
        code=CODE["report"],
        sparsity=lambda w: {"table2": 0.7379, "table3": 0.8926, "table5": 0.8926}[w.table],
    log:
        "logs/{table}.log",
    shell:
        "{PY} -m elth.report.tables {wildcards.table} --runs {input.runs} --sparsity {params.sparsity}"
        " --csv {output.csv} --md {output.md} > {log} 2>&1"


rule report:
    input:
        runs="results/tables/runs.csv",
        figures=["results/figures/fig3.png"] + (["results/figures/fig9-13.png"] if ETT else []),
        tables=["results/tables/table2.md", "results/tables/table3.md"],
    output:
        "results/report.md",
    params:
        code=CODE["report"],
    log:
        "logs/report.log",
    shell:
        "{PY} -m elth.report.markdown --runs {input.runs} --figures {input.figures} --tables {input.tables}"
        " -o {output} > {log} 2>&1"
