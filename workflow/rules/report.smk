# Aggregation of every run into one tidy table, and the figures drawn from that table alone.


rule aggregate:
    input:
        all_summaries(),
    output:
        "results/tables/runs.csv",
    params:
        experiment=config["experiment"],
    log:
        "logs/aggregate.log",
    shell:
        "{PY} -m elth.report.aggregate --experiment {params.experiment} -o {output} {input} > {log} 2>&1"


rule fig3:
    input:
        "results/tables/runs.csv",
    output:
        pdf="results/figures/fig3.pdf",
        png="results/figures/fig3.png",
    log:
        "logs/fig3.log",
    shell:
        "{PY} -m elth.report.figures fig3 --runs {input} --ett-scheme default --pdf {output.pdf} --png {output.png}"
        " > {log} 2>&1"
