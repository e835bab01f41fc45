# Aggregation of every run into one tidy table, and the figures drawn from that table alone.


rule aggregate:
    input:
        all_summaries(),
    output:
        runs=report("results/tables/runs.csv", caption="../report/runs.rst", category="Tables",
                    subcategory="Every run"),
        summary=report("results/tables/summary.csv", caption="../report/summary.rst", category="Tables",
                       subcategory="Every run"),
    params:
        code=CODE["report"],
        experiment=config["experiment"],
    resources:
        **sized("other"),
    log:
        "logs/aggregate.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.aggregate --experiment {params.experiment} -o {output.runs} --summary {output.summary}"
        " {input}"


# fig3: every model of the study; fig1 and fig6: the paper's panels (ResNet-32/56 and VGG-13/19;
# VGG-13/16/19), whose missing models the caption names; fig9-13: every ETT scheme, per target
# (rows) and source (panels).
rule figure:
    input:
        runs="results/tables/runs.csv",
    output:
        pdf="results/figures/{figure}.pdf",
        png=report("results/figures/{figure}.png", caption="../report/figure.rst", category="Figures"),
    wildcard_constraints:
        figure="fig1|fig3|fig6|fig9-13",
    params:
        code=CODE["report"],
    resources:
        **sized("other"),
    log:
        "logs/{figure}.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.figures {wildcards.figure} --runs {input.runs} --ett-scheme default"
        " --pdf {output.pdf} --png {output.png}"


# The paper's tables, measured, beside its numbers: table2 at one sparsity (73.79% in the paper,
# the nearest IMP level here), table3 as a grid of sources by targets (89.26% in the paper), and
# table5 with every ETT scheme as a row (the width schemes of App. B). table4 (dataset transfer)
# compares at 89.26% too: the paper does not print Table 4's sparsity, and level 10 is the level of
# the authors' scripts for its other tables.
rule table:
    input:
        runs="results/tables/runs.csv",
    output:
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
        html=report("results/tables/{table}.html", caption="../report/table.rst", category="Tables",
                    subcategory="The paper's tables"),
    wildcard_constraints:
        table="table2|table3|table4|table5",
    params:
        code=CODE["report"],
        sparsity=lambda w: {"table2": 0.7379, "table3": 0.8926, "table4": 0.8926, "table5": 0.8926}[w.table],
    resources:
        **sized("other"),
    log:
        "logs/{table}.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.tables {wildcards.table} --runs {input.runs} --sparsity {params.sparsity}"
        " --csv {output.csv} --md {output.md} --html {output.html}"


# Linear mode connectivity, with an `lmc` section: every interpolation in one tidy table, Fig 7
# (accuracy along the line between two trained copies, per ticket) and the instability table.
rule lmc_aggregate:
    input:
        lmc_results("interpolation.csv"),
    output:
        report("results/tables/lmc_runs.csv", caption="../report/lmc_runs.rst", category="Linear mode connectivity"),
    params:
        code=[CODE["report"], CODE["lmc"]],
        experiment=config["experiment"],
    resources:
        **sized("other"),
    log:
        "logs/lmc_aggregate.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.lmc aggregate --experiment {params.experiment} -o {output} {input}"


rule lmc_figure:
    input:
        runs="results/tables/lmc_runs.csv",
    output:
        pdf="results/figures/fig7.pdf",
        png=report("results/figures/fig7.png", caption="../report/fig7.rst", category="Linear mode connectivity"),
    params:
        code=[CODE["report"], CODE["lmc"]],
    resources:
        **sized("other"),
    log:
        "logs/fig7.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.lmc fig7 --runs {input.runs} --pdf {output.pdf} --png {output.png}"


rule lmc_table:
    input:
        runs="results/tables/lmc_runs.csv",
    output:
        csv="results/tables/lmc.csv",
        md="results/tables/lmc.md",
        html=report("results/tables/lmc.html", caption="../report/lmc.rst", category="Linear mode connectivity"),
    params:
        code=[CODE["report"], CODE["lmc"]],
    resources:
        **sized("other"),
    log:
        "logs/lmc_table.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.lmc table --runs {input.runs} --csv {output.csv} --md {output.md} --html {output.html}"


# Which of the paper's claims the runs support, each verdict with the comparisons behind it.
rule claims:
    input:
        runs="results/tables/runs.csv",
        lmc=["results/tables/lmc_runs.csv"] if LMC_TICKETS else [],
    output:
        csv="results/tables/claims.csv",
        md="results/tables/claims.md",
        html=report("results/tables/claims.html", caption="../report/claims.rst", category="Claims"),
    params:
        code=CODE["report"],
        lmc=lambda w, input: f"--lmc {input.lmc}" if input.lmc else "",
        near=config["claims"]["near_pp"],
        stable=config["claims"]["stable_pp"],
    resources:
        **sized("other"),
    log:
        "logs/claims.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.claims --runs {input.runs} {params.lmc}"
        " --near-pp {params.near} --stable-pp {params.stable}"
        " --csv {output.csv} --md {output.md} --html {output.html}"


# What each job cost (wall and CPU seconds, peak memory), one row per job of a rule that trains,
# scores or transforms, from the files their `benchmark:` directives write. Its inputs are the
# study's results, which exist once every job has run; the benchmark files are a param, so a job
# that ran before benchmarks were recorded is left out (and counted in the log), never rerun.
rule benchmarks:
    input:
        runs="results/tables/runs.csv",
        lmc=lmc_results("instability.json"),
        flops=flops_tables(),
    output:
        csv=report("results/tables/benchmarks.csv", caption="../report/benchmarks.rst", category="Costs"),
        html=report("results/tables/benchmarks.html", caption="../report/benchmarks.rst", category="Costs"),
    params:
        code=CODE["report"],
        groups=benchmark_groups(),
        files=benchmark_files(),
    resources:
        **sized("other"),
    log:
        "logs/benchmarks.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.benchmarks --groups '{params.groups}' -o {output.csv}"
        " --html {output.html} {params.files}"


rule report:
    input:
        runs="results/tables/runs.csv",
        claims="results/tables/claims.md",
        figures=["results/figures/fig3.png"] + (["results/figures/fig9-13.png"] if ETT else []),
        tables=["results/tables/table2.md", "results/tables/table3.md"] + (["results/tables/table4.md"] if TRANSFER else []),
        lmc=["results/figures/fig7.png", "results/tables/lmc.md"] if LMC_TICKETS else [],
    output:
        "results/report.md",
    params:
        code=CODE["report"],
    resources:
        **sized("other"),
    log:
        "logs/report.log",
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.report.markdown --runs {input.runs} --claims {input.claims} --figures {input.figures}"
        " --tables {input.tables}"
        " --lmc {input.lmc} -o {output}"
