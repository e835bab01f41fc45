# Check the dataset once, before any training job, record what was found, and decode it into the
# tensors (ImageNet: the file lists) that every later job loads instead of reading it again.


rule prepare_data:
    output:
        manifest="results/{dataset}/dataset.json",
        splits="results/{dataset}/splits.pt",
    params:
        code=CODE["data"],
        root=lambda w: study.dataset_section(config, w.dataset)["root"],
        download=lambda w: "--download" if study.dataset_section(config, w.dataset)["download"] else "",
    resources:
        **sized("other"),
    log:
        "logs/{dataset}/prepare_data.log",
    benchmark:
        "benchmarks/{dataset}/prepare_data.tsv"
    conda:
        "../../environment.yml"
    shell:
        "{{ slurm_job; python -m elth.data {wildcards.dataset} --root {params.root} {params.download}"
        " --splits {output.splits} -o {output.manifest}; }}"
        " 2>&1 | tee {log}"
