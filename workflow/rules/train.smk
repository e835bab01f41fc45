# Retraining of a ticket: one rule for every kind of ticket, with the target model's recipe (IMP's
# levels but the last retrain in imp.smk's rounds).


rule retrain:
    priority: RETRAIN_PRIORITY
    input:
        unpack(ticket_input),
        data="results/{dataset}/splits.pt",
    output:
        final=f"{RUN}/{{ticket}}/final.pt",
        metrics=f"{RUN}/{{ticket}}/metrics.csv",
        summary=f"{RUN}/{{ticket}}/summary.json",
    wildcard_constraints:
        ticket=RETRAIN_ALONE,
    params:
        code=CODE["train"],
        train=train_params,
        device=config["resources"]["device"],
    threads: config["resources"]["threads"]
    resources:
        **sized("train", gpus()),
    log:
        "logs/{dataset}/{model}/seed{seed}/{ticket}/retrain.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/{ticket}/retrain.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.train --model {wildcards.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
        " --ticket {input.ticket} --recipe '{params.train[recipe]}' --data '{params.train[data]}'"
        " --threads {threads} --device {params.device} {params.train[engine]} --out $(dirname {output.final})"
