# Pruning baselines matched to the IMP ticket of each level: a mask at exactly its sparsity, on the
# same rewind weights (re-drawn for reinit). The shared `retrain` rule trains them.


rule baseline:
    input:
        data="results/{dataset}/splits.pt",
        rewind=f"{RUN}/dense/rewind.pt",
        reference=f"{RUN}/imp/level{{level}}/ticket.pt",
    output:
        ticket=f"{RUN}/baselines/{{method}}/level{{level}}/ticket.pt",
        info=f"{RUN}/baselines/{{method}}/level{{level}}/ticket.json",
    params:
        code=CODE["baseline"],
        data=lambda w: study.data_json(config, w.dataset),
        options=baseline_options,
        device=lambda w: config["resources"]["device"] if w.method in SCORED_BASELINES else "cpu",
    threads: config["resources"]["threads"]
    resources:
        **baseline_resources(),
    log:
        "logs/{dataset}/{model}/seed{seed}/baselines/{method}/level{level}/baseline.log",
    benchmark:
        "benchmarks/{dataset}/{model}/seed{seed}/baselines/{method}/level{level}/baseline.tsv"
    conda:
        "../../environment.yml"
    shell:
        "exec > {log} 2>&1; slurm_job; "
        "python -m elth.baseline {wildcards.method} --rewind {input.rewind} --reference {input.reference}"
        " --data '{params.data}' {params.options}"
        " --seed {wildcards.seed} --level {wildcards.level} --threads {threads} --device {params.device}"
        " -o {output.ticket}"
