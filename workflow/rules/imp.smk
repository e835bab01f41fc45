# One IMP round per level: prune the previous level's trained weights and rewind.


rule imp_ticket:
    priority: CHAIN_PRIORITY
    input:
        unpack(imp_inputs),
    output:
        ticket=f"{RUN}/imp/level{{level}}/ticket.pt",
        info=f"{RUN}/imp/level{{level}}/ticket.json",
    params:
        code=CODE["imp"],
        previous=lambda w, input: f"--previous {input.previous}" if "previous" in input.keys() else "",
        fraction=config["pruning"]["fraction"],
        pruning_count=config["pruning"]["count"],  # "count" is a name Snakemake reserves
        unpruned=lambda w: " ".join(f"'{p}'" for p in study.unpruned(config, w.model)),
    resources:
        **sized("ticket"),
    log:
        "logs/{dataset}/{model}/seed{seed}/imp/level{level}/ticket.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/imp/level{level}/imp_ticket.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.imp --rewind {input.rewind} --trained {input.trained} {params.previous}"
        " --level {wildcards.level} --fraction {params.fraction} --count {params.pruning_count}"
        " --unpruned {params.unpruned}"
        " -o {output.ticket}"
