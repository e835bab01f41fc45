# Dense training from the seeded initialisation: the rewind checkpoint every ticket restarts from,
# and, in the same process, IMP's first round: the trained weights pruned into level 1's ticket
# (`python -m elth.train --next-ticket`), as each IMP round prunes the next level's (imp.smk). A
# separate job for that pruning would pay a process's start for milliseconds of work. The cost:
# a change of the pruning settings (`imp_pruning_flags`) retrains the dense run as well, one run
# more than the change reruns anyway (every IMP level, and every ticket compared with them).


rule dense:
    priority: CHAIN_PRIORITY
    input:
        data="results/{dataset}/splits.pt",
    output:
        rewind=f"{RUN}/dense/rewind.pt",
        final=f"{RUN}/dense/final.pt",
        metrics=f"{RUN}/dense/metrics.csv",
        summary=f"{RUN}/dense/summary.json",
        **IMP_LEVEL1,
    params:
        code=CODE["train"],
        imp_code=CODE["imp"],
        train=train_params,
        next_ticket=dense_next_ticket,
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
        " {params.next_ticket}"
