# Linear mode connectivity (Sec 4.4, Fig 7): two copies of a ticket retrained from its rewind
# weights under two data seeds (SGD noise), and the accuracy along the line between them. Any
# ticket the shared `retrain` rule serves (IMP, ETT, baseline) can be copied; the config's `lmc`
# section says which. A noise seed equal to the run's seed is the ticket's own retraining, so
# no copy is trained for it.


if ENGINE["tickets_per_job"] == 1:

    rule lmc_copy:
        input:
            data="results/{dataset}/splits.pt",
            ticket=f"{RUN}/{{ticket}}/ticket.pt",
        output:
            final=f"{RUN}/{{ticket}}/lmc/noise{{noise}}/final.pt",
            metrics=f"{RUN}/{{ticket}}/lmc/noise{{noise}}/metrics.csv",
            summary=f"{RUN}/{{ticket}}/lmc/noise{{noise}}/summary.json",
        wildcard_constraints:
            ticket=TICKETS,
            noise=r"\d+",
        params:
            code=CODE["train"],
            train=train_params,
            device=config["resources"]["device"],
        threads: config["resources"]["threads"]
        resources:
            **sized("train", gpus()),
        log:
            "logs/{dataset}/{model}/seed{seed}/{ticket}/lmc/noise{noise}/train.log",
        benchmark:
            "benchmarks/{dataset}/{model}/seed{seed}/{ticket}/lmc/noise{noise}/lmc_copy.tsv"
        conda:
            "../../environment.yml"
        shell:
            "exec > {log} 2>&1; slurm_job; "
            "python -m elth.train --model {wildcards.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
            " --data-seed {wildcards.noise} --ticket {input.ticket} --recipe '{params.train[recipe]}'"
            " --data '{params.train[data]}' --threads {threads} --device {params.device} {params.train[engine]}"
            " --out $(dirname {output.final})"

else:
    # With engine.tickets_per_job > 1, the copies of one model and level under one noise seed train
    # stacked in one job (as together.smk does for ETT and baseline tickets).
    for _model, _level, _group, _tickets in lmc_ticket_groups():
        _dirs = [f"results/{{dataset}}/{_model}/seed{{seed}}/{t}" for t in _tickets]
        _size = sized("train", gpus(), model=_model, runs=len(_tickets))

        rule:
            name:
                f"lmc_copies_{_model.replace('-', '_').replace('.', '_')}_level{_level}_{_group}"
            input:
                data="results/{dataset}/splits.pt",
                tickets=[f"{d}/ticket.pt" for d in _dirs],
            output:
                [f"{d}/lmc/noise{{noise}}/{name}" for d in _dirs for name in ("final.pt", "metrics.csv", "summary.json")],
            wildcard_constraints:
                noise=r"\d+",
            params:
                code=CODE["train"],
                train={"recipe": study.recipe_json(config, _model), "data": study.data_json(config), "engine": ENGINE_FLAGS},
                model=_model,
                pairs=" ".join(f"--ticket {d}/ticket.pt --out {d}/lmc/noise{{noise}}" for d in _dirs),
                device=config["resources"]["device"],
            threads: config["resources"]["threads"]
            resources:
                **_size,
            log:
                f"logs/{{dataset}}/{_model}/seed{{seed}}/lmc/level{_level}-group{_group}-noise{{noise}}.log",
            benchmark:
                f"benchmarks/{{dataset}}/{_model}/seed{{seed}}/lmc/level{_level}-group{_group}-noise{{noise}}.tsv"
            conda:
                "../../environment.yml"
            shell:
                "exec > {log} 2>&1; slurm_job; "
                "python -m elth.train --model {params.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
                " --data-seed {wildcards.noise} --recipe '{params.train[recipe]}' --data '{params.train[data]}'"
                " --threads {threads} --device {params.device} {params.train[engine]} {params.pairs}"


rule lmc:
    input:
        data="results/{dataset}/splits.pt",
        a=trained_copy("a"),
        b=trained_copy("b"),
    output:
        csv=f"{RUN}/{{ticket}}/lmc/noise{{a}}-{{b}}/interpolation.csv",
        json=f"{RUN}/{{ticket}}/lmc/noise{{a}}-{{b}}/instability.json",
    wildcard_constraints:
        ticket=TICKETS,
        a=r"\d+",
        b=r"\d+",
    params:
        code=CODE["lmc"],
        data=study.data_json(config),
        batch_size=lambda w: study.recipe(config, w.model)["batch_size"],
        alphas=lambda w: lmc_setting("alphas"),
        bn_batches=lambda w: lmc_setting("bn_batches"),
        train_eval=lambda w: lmc_setting("train_eval"),
        device=config["resources"]["device"],
    threads: config["resources"]["threads"]
    resources:
        **sized("train", gpus()),
    log:
        "logs/{dataset}/{model}/seed{seed}/{ticket}/lmc/noise{a}-{b}/lmc.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/{ticket}/lmc/noise{a}-{b}/lmc.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.lmc {input.a} {input.b} --noise-seeds {wildcards.a} {wildcards.b} --data '{params.data}'"
        " --alphas {params.alphas} --bn-batches {params.bn_batches} --batch-size {params.batch_size}"
        " --train-eval {params.train_eval} --threads {threads} --device {params.device}"
        " --csv {output.csv} --json {output.json}"
