# Retraining tickets together (engine.tickets_per_job > 1): the ETT and baseline tickets of one
# (model, seed, IMP level) in groups, each group one job that trains its tickets stacked into one
# module and writes every ticket's own files, the same files `retrain` writes for one. Rules are
# made per model and group, since a rule's outputs must follow from its wildcards; `retrain` then
# serves IMP's and transferred tickets only.

if ENGINE["tickets_per_job"] > 1:
    for _model in MODELS:
        for _group, _kinds in enumerate(ticket_groups(_model)):
            _dirs = [f"results/{{dataset}}/{_model}/seed{{seed}}/{kind}/level{{level}}" for kind in _kinds]
            _size = sized("train", gpus(), model=_model, runs=len(_kinds))

            rule:
                name:
                    f"retrain_together_{_model.replace('-', '_').replace('.', '_')}_{_group}"
                input:
                    data="results/{dataset}/splits.pt",
                    # A baseline's ticket is read as `ancient`, beside the IMP ticket and its method's
                    # settings file, as `retrain` reads it (common.smk's ticket_input).
                    tickets=[ancient(f"{d}/ticket.pt") if k.startswith("baselines") else f"{d}/ticket.pt"
                             for k, d in zip(_kinds, _dirs)],
                    reference=f"results/{{dataset}}/{_model}/seed{{seed}}/imp/level{{level}}/ticket.pt",
                    settings=[settings_file("{dataset}", _model, k.split("/")[1]) for k in _kinds
                              if k.startswith("baselines/")],
                output:
                    [f"{d}/{name}" for d in _dirs for name in ("final.pt", "metrics.csv", "summary.json")],
                params:
                    code=CODE["train"],
                    train={"recipe": study.recipe_json(config, _model), "data": study.data_json(config), "engine": ENGINE_FLAGS},
                    model=_model,
                    pairs=" ".join(f"--ticket {d}/ticket.pt --out {d}" for d in _dirs),
                    device=config["resources"]["device"],
                threads: config["resources"]["threads"]
                resources:
                    **_size,
                log:
                    f"logs/{{dataset}}/{_model}/seed{{seed}}/together/level{{level}}-group{_group}.log",
                benchmark:
                    f"benchmarks/{{dataset}}/{_model}/seed{{seed}}/together/level{{level}}-group{_group}.tsv"
                conda:
                    "../../environment.yml"
                shell:
                    "exec > {log} 2>&1; slurm_job; "
                    "python -m elth.train --model {params.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
                    " --recipe '{params.train[recipe]}' --data '{params.train[data]}' --threads {threads}"
                    " --device {params.device} {params.train[engine]} {params.pairs}"
