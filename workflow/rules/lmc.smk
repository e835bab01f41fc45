# Linear mode connectivity (Sec 4.4, Fig 7): two copies of a ticket retrained from its rewind
# weights under two data seeds (SGD noise), and the accuracy along the line between them. Any
# ticket the shared `retrain` rule serves (IMP, ETT, baseline) can be copied; the config's `lmc`
# section says which. A noise seed equal to the run's seed is the ticket's own retraining, so
# no copy is trained for it.


def lmc_setting(key):
    """A setting of the `lmc` section, read when a job needs it, so a study without the section
    never reads it."""
    if "lmc" not in config:
        raise WorkflowError("linear mode connectivity needs an `lmc` section in the config (see the schema)")
    return config["lmc"][key]


rule lmc_copy:
    input:
        data="results/{dataset}/dataset.json",
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
    shell:
        "exec > {log} 2>&1; {SLURM_JOB}; "
        "{PY} -m elth.train --model {wildcards.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
        " --data-seed {wildcards.noise} --ticket {input.ticket} --recipe '{params.train[recipe]}'"
        " --data '{params.train[data]}' --threads {threads} --device {params.device} {params.train[engine]}"
        " --out $(dirname {output.final})"


def trained_copy(end):
    """The input function of one end (`a` or `b`) of an interpolation: the ticket's own retraining
    when that end's noise seed is the run's seed (`retrain` trains under the run's seed as its data
    seed, so a copy would repeat it), else the copy `lmc_copy` trains under that noise seed."""

    def path(w):
        run = RUN.format(dataset=w.dataset, model=w.model, seed=w.seed)
        noise = w[end]
        if int(noise) == int(w.seed):
            return f"{run}/{w.ticket}/final.pt"
        return f"{run}/{w.ticket}/lmc/noise{noise}/final.pt"

    return path


rule lmc:
    input:
        data="results/{dataset}/dataset.json",
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
    shell:
        "exec > {log} 2>&1; {SLURM_JOB}; "
        "{PY} -m elth.lmc {input.a} {input.b} --noise-seeds {wildcards.a} {wildcards.b} --data '{params.data}'"
        " --alphas {params.alphas} --bn-batches {params.bn_batches} --batch-size {params.batch_size}"
        " --train-eval {params.train_eval} --threads {threads} --device {params.device}"
        " --csv {output.csv} --json {output.json}"
