# RigL (Sec 4.6): dynamic sparse training of each model from its seeded initialisation, at the
# exact sparsity of each IMP level's ticket (same kept-weight count over the same layers), and the
# training-FLOPs comparison of IMP, elastic tickets and RigL for every transfer pair.


rule rigl:
    input:
        data="results/{dataset}/splits.pt",
        like=f"{RUN}/imp/level{{level}}/ticket.pt",
    output:
        final=f"{RUN}/dst/{{dst}}/level{{level}}/final.pt",
        metrics=f"{RUN}/dst/{{dst}}/level{{level}}/metrics.csv",
        summary=f"{RUN}/dst/{{dst}}/level{{level}}/summary.json",
    params:
        code=CODE["dst"],
        train=train_params,
        multiplier=rigl_multiplier,
        unpruned=lambda w: " ".join(study.unpruned(config, w.model)),
        rigl=RIGL,
        device=config["resources"]["device"],
    threads: config["resources"]["threads"]
    resources:
        **sized("train", gpus()),
    log:
        "logs/{dataset}/{model}/seed{seed}/dst/{dst}/level{level}/rigl.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/dst/{dst}/level{level}/rigl.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.dst --model {wildcards.model} --dataset {wildcards.dataset} --seed {wildcards.seed}"
        " --recipe '{params.train[recipe]}' --data '{params.train[data]}' --like {input.like}"
        " --unpruned {params.unpruned} --distribution {params.rigl[distribution]} --delta-t {params.rigl[delta_t]}"
        " --alpha {params.rigl[alpha]} --stop {params.rigl[stop]} --multiplier {params.multiplier}"
        " --threads {threads} --device {params.device} {params.train[engine]} --out $(dirname {output.final})"


rule flops:
    input:
        data="results/{dataset}/dataset.json".format(dataset=DATASET),
    output:
        md="results/tables/flops/{source}-to-{model}.md",
        html=report("results/tables/flops/{source}-to-{model}.html", caption="../report/flops.rst", category="Costs"),
    params:
        code=CODE["flops"],
        dataset=DATASET,
        recipe=lambda w: study.recipe(config, w.model),
        unpruned=lambda w: " ".join(study.unpruned(config, w.model)),
        subset=f"--train-subset {config['dataset']['train_subset']}" if config["dataset"]["train_subset"] else "",
        last_batch=config["dataset"].get("last_batch", "drop"),
        pruning=config["pruning"],
        rigl=RIGL,
        multipliers=" ".join(str(m) for m in RIGL["multipliers"]) if RIGL else "",
    resources:
        **sized("other"),
    log:
        "logs/tables/flops/{source}-to-{model}.log",
    benchmark:
        "benchmarks/tables/flops/{source}-to-{model}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.flops --source {wildcards.source} --target {wildcards.model} --dataset {params.dataset}"
        " --levels {params.pruning[levels]} --fraction {params.pruning[fraction]} --epochs {params.recipe[epochs]}"
        " --manifest {input.data} {params.subset} --batch-size {params.recipe[batch_size]} --rewind {params.recipe[rewind]}"
        " --last-batch {params.last_batch}"
        " --unpruned {params.unpruned} --distribution {params.rigl[distribution]} --delta-t {params.rigl[delta_t]}"
        " --stop {params.rigl[stop]} --multipliers {params.multipliers} -o {output.md} --html {output.html}"
