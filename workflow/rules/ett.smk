# Elastic Ticket Transformations: the IMP ticket of a source model at each level, mapped onto a
# target model by a named scheme. The shared `retrain` rule then trains it with the target's recipe.


rule ett:
    input:
        ticket="results/{dataset}/{source}/seed{seed}/imp/level{level}/ticket.pt",
    output:
        ticket=f"{RUN}/ett/from-{{source}}/{{scheme}}/level{{level}}/ticket.pt",
        info=f"{RUN}/ett/from-{{source}}/{{scheme}}/level{{level}}/ticket.json",
    params:
        code=CODE["ett"],
        spec=ett_spec,
        plan=ett_plan,
        random_start=ett_random_start,
    resources:
        **sized("ticket"),
    log:
        "logs/{dataset}/{model}/seed{seed}/ett/from-{source}/{scheme}/level{level}/ett.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/ett/from-{source}/{scheme}/level{level}/ett.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.transform {input.ticket} --source {wildcards.source} --dataset {wildcards.dataset}"
        " --to {wildcards.model} --spec '{params.spec}' --scheme {wildcards.scheme}"
        " --seed {wildcards.seed} --level {wildcards.level} {params.random_start}"
        " -o {output.ticket}"
