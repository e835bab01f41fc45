# Dense training from the seeded initialisation: the rewind checkpoint every ticket restarts from,
# and the trained weights IMP's first round prunes.


rule dense:
    priority: CHAIN_PRIORITY
    input:
        data="results/{dataset}/splits.pt",
    output:
        rewind=f"{RUN}/dense/rewind.pt",
        final=f"{RUN}/dense/final.pt",
        metrics=f"{RUN}/dense/metrics.csv",
        summary=f"{RUN}/dense/summary.json",
    params:
        code=CODE["train"],
        train=train_params,
        device=config["resources"]["device"],
    threads: config["resources"]["threads"]
    resources:
        **sized("train", gpus()),
    log:
        "logs/{dataset}/{model}/seed{seed}/dense.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/dense.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.train --model {wildcards.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
        " --recipe '{params.train[recipe]}' --data '{params.train[data]}' --threads {threads}"
        " --device {params.device} {params.train[engine]} --out $(dirname {output.final})"
