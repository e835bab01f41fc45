# Check the dataset once, before any training job, and record what was found.


rule prepare_data:
    output:
        "results/{dataset}/dataset.json",
    params:
        code=CODE["data"],
        root=config["dataset"]["root"],
        download="--download" if config["dataset"]["download"] else "",
    log:
        "logs/{dataset}/prepare_data.log",
    shell:
        "{PY} -m elth.data {wildcards.dataset} --root {params.root} {params.download} -o {output} 2>&1 | tee {log}"
