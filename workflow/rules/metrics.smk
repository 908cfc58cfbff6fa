# scIB metrics (scib-metrics) per (dataset, method, seed), then the tables over all of them.


rule metrics:
    input:
        embedding="results/{dataset}/integration/{method}/seed{seed}.h5ad",
        preprocessed=preprocessed_h5ad,
    output:
        "results/{dataset}/integration/{method}/seed{seed}.metrics.csv",
    params:
        batch_key=lambda wc: dataset_config(wc.dataset)["batch_key"],
        label_key=lambda wc: dataset_config(wc.dataset)["label_key"],
        # JAX compiles the same kernels in every metrics job; a shared on-disk cache avoids repeats.
        jax_cache="resources/cache/jax",
    log:
        "results/logs/metrics/{dataset}.{method}.seed{seed}.log",
    benchmark:
        "results/benchmarks/metrics/{dataset}.{method}.seed{seed}.tsv"
    threads: lambda wc: resources_for("metrics")["threads"]
    resources:
        mem_mb=lambda wc: resources_for("metrics")["mem_mb"],
        runtime=lambda wc: resources_for("metrics")["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/metrics.py"


rule integration_tables:
    input:
        metrics_files,
    output:
        long=report(
            "results/tables/integration_scores.csv",
            caption="../report/integration_scores.rst",
            category="Tables",
        ),
        by_seed="results/tables/integration_scores_by_seed.csv",
        wide=expand("results/tables/{dataset}_integration_wide.csv", dataset=dataset_names()),
    log:
        "results/logs/integration_tables/integration_tables.log",
    benchmark:
        "results/benchmarks/integration_tables/integration_tables.tsv"
    threads: 1
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/integration_tables.py"
