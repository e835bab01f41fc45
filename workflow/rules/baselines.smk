# Pruning baselines matched to the IMP ticket of each level: a mask at exactly its sparsity, on the
# same rewind weights (re-drawn for reinit). One job makes every method's ticket of a level (one
# process loads the model, the rewind weights and the data once); the shared `retrain` rule trains
# each. A change of one method's settings reruns the level's job, which rewrites every method's
# ticket, but retrains only that method's tickets: a retraining reads its ticket as `ancient`, beside
# the IMP ticket it matches and its method's settings file, so it reruns when one of those changes.
# (Snakemake checks no params of a job downstream of one that reruns, so the settings are a file
# made by a rule of their own, a small local job per model and method, and not a param.) Scoring is
# deterministic on the CPU; on a GPU, SNIP, GraSP and SynFlow may differ in the last bits between
# two runs, so a method whose ticket a rerun rewrote without a change of its settings keeps the
# retraining of the ticket before.


rule baseline_settings:
    output:
        "results/{dataset}/{model}/baselines/{method}.json",
    params:
        settings=baseline_settings,
    log:
        "logs/{dataset}/{model}/baselines/{method}.log",
    run:
        write_settings(output[0], params.settings, log[0])


if BASELINES:

    rule baselines:
        input:
            data="results/{dataset}/splits.pt",
            rewind=f"{RUN}/dense/rewind.pt",
            reference=f"{RUN}/imp/level{{level}}/ticket.pt",
        output:
            [f"{RUN}/baselines/{method}/level{{level}}/{name}" for method in BASELINES
             for name in ("ticket.pt", "ticket.json")],
        params:
            code=CODE["baseline"],
            data=lambda w: study.data_json(config, w.dataset),
            methods=" ".join(BASELINES),
            options=baselines_options,
            outs=lambda w, output: " ".join(f"-o {f}" for f in output if f.endswith(".pt")),
            device=config["resources"]["device"] if BASELINES_SCORE else "cpu",
        threads: config["resources"]["threads"]
        resources:
            **sized("ticket", gpus() if BASELINES_SCORE else 0),
        log:
            "logs/{dataset}/{model}/seed{seed}/baselines/level{level}/baselines.log",
        benchmark:
            "benchmarks/{dataset}/{model}/seed{seed}/baselines/level{level}/baselines.tsv"
        conda:
            "../../environment.yml"
        shell:
            "exec > {log} 2>&1; slurm_job; "
            "python -m elth.baseline {params.methods} --rewind {input.rewind} --reference {input.reference}"
            " --data '{params.data}' {params.options}"
            " --seed {wildcards.seed} --level {wildcards.level} --threads {threads} --device {params.device}"
            " {params.outs}"
