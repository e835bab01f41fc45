# Dataset transfer (Table 4): the IMP ticket of a source model at each level, found on the dataset
# `transfer.from` names (by the usual dense and imp rules under results/<from>/, with that dataset's
# options), re-labelled for the study's dataset, after an ETT when the target model differs. The
# shared `retrain` rule then trains it on the study's dataset with the target model's recipe.


rule transfer:
    input:
        ticket="results/{from_dataset}/{source}/seed{seed}/imp/level{level}/ticket.pt",
    output:
        ticket=f"{RUN}/transfer/from-{{from_dataset}}/{{source}}/{{scheme}}/level{{level}}/ticket.pt",
        info=f"{RUN}/transfer/from-{{from_dataset}}/{{source}}/{{scheme}}/level{{level}}/ticket.json",
    params:
        code=CODE["transfer"],
        plan=transfer_plan,
        to=lambda w: "" if w.source == w.model else f"--to {w.model} --spec '{transfer_spec(w)}'",
    resources:
        **sized("ticket"),
    log:
        "logs/{dataset}/{model}/seed{seed}/transfer/from-{from_dataset}/{source}/{scheme}/level{level}/transfer.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/transfer/from-{from_dataset}/{source}/{scheme}/"
        "level{level}/transfer.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.transfer {input.ticket} --from-dataset {wildcards.from_dataset} --source {wildcards.source}"
        " --dataset {wildcards.dataset} {params.to} --scheme {wildcards.scheme}"
        " --seed {wildcards.seed} --level {wildcards.level} -o {output.ticket}"
