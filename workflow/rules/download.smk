# Stage every configured dataset into resources/datasets/{dataset}.h5ad, verified by sha256.
# A local rule: it runs on the submit host, which (unlike many cluster nodes) can reach the internet.


localrules:
    download,


rule download:
    input:
        download_input,
    output:
        f"{STAGED_DIR}/{{dataset}}.h5ad",
    params:
        source=lambda wc: dataset_config(wc.dataset)["source"],
        sha256=lambda wc: dataset_config(wc.dataset).get("sha256"),
        format=lambda wc: dataset_config(wc.dataset).get("format", "auto"),
        metadata=lambda wc: dataset_config(wc.dataset).get("metadata"),
        lock_file=SHA256_LOCK,
        base_dir=str(REPO_ROOT),
    log:
        "results/logs/download/{dataset}.log",
    benchmark:
        "results/benchmarks/download/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc: resources_for("download", wc.dataset)["mem_mb"],
        runtime=lambda wc: resources_for("download", wc.dataset)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/download.py"
