# IMP's rounds, one process each: the dense job prunes its run into level 1's ticket (dense.smk),
# and the retraining of level k, for every level but the last, prunes its trained weights into level k+1's
# ticket in the same job (`python -m elth.train --next-ticket`). A round fused the other way (level
# k's pruning with its own retraining) would make a level's ETTs and baselines wait for that
# retraining. A rule's outputs must follow from its wildcards, so there is one rule per level, made
# here; the last level retrains through the shared `retrain` rule.


for _level in FUSED_LEVELS:
    _dir, _next = f"{RUN}/imp/level{_level}", f"{RUN}/imp/level{_level + 1}"

    rule:
        name:
            f"imp_round_{_level}"
        priority: CHAIN_PRIORITY
        input:
            data="results/{dataset}/splits.pt",
            ticket=f"{_dir}/ticket.pt",
            rewind=f"{RUN}/dense/rewind.pt",
        output:
            final=f"{_dir}/final.pt",
            metrics=f"{_dir}/metrics.csv",
            summary=f"{_dir}/summary.json",
            next_ticket=f"{_next}/ticket.pt",
            next_info=f"{_next}/ticket.json",
        params:
            code=CODE["train"],
            imp_code=CODE["imp"],
            train=train_params,
            pruning=imp_pruning_flags,
            device=config["resources"]["device"],
        threads: config["resources"]["threads"]
        resources:
            **sized("train", gpus()),
        log:
            f"logs/{{dataset}}/{{model}}/seed{{seed}}/imp/level{_level}/imp_round.log",
        benchmark:
            f"benchmarks/{{dataset}}/{{model}}/seed{{seed}}/imp/level{_level}/imp_round.tsv"
        conda:
            "../../environment.yml"
        shell:
            "exec > {log} 2>&1; slurm_job; "
            "python -m elth.train --model {wildcards.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
            " --ticket {input.ticket} --recipe '{params.train[recipe]}' --data '{params.train[data]}'"
            " --threads {threads} --device {params.device} {params.train[engine]} --out $(dirname {output.final})"
            " --next-ticket {output.next_ticket} --rewind {input.rewind} {params.pruning}"
