# Check the dataset once, before any training job, and record what was found.


rule prepare_data:
    output:
        "results/{dataset}/dataset.json",
    params:
        code=CODE["data"],
        root=lambda w: study.dataset_section(config, w.dataset)["root"],
        download=lambda w: "--download" if study.dataset_section(config, w.dataset)["download"] else "",
    resources:
        **sized("other"),
    log:
        "logs/{dataset}/prepare_data.log",
    shell:
        "{{ {SLURM_JOB}; {PY} -m elth.data {wildcards.dataset} --root {params.root} {params.download} -o {output}; }}"
        " 2>&1 | tee {log}"
