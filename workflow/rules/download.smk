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
        lock_file=SHA256_LOCK,
        base_dir=str(REPO_ROOT),
    log:
        "results/logs/download/{dataset}.log",
    benchmark:
        "results/benchmarks/download/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/download.py"
