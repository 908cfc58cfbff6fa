# scIB metrics (scib-metrics): one job per dataset scores every method and seed (the numba/JAX
# start-up dominates a metrics job, so it is paid once per dataset), then the tables over all.


rule metrics:
    input:
        embeddings=lambda wc: [f"results/{wc.dataset}/integration/{m}/seed{s}.h5ad" for m, s in method_seed_runs()],
        preprocessed=preprocessed_h5ad,
    output:
        scores="results/{dataset}/integration/metrics.csv",
        status="results/{dataset}/integration/metrics_status.csv",  # per embedding: ok / failed / skipped
    params:
        runs=lambda wc: [
            (m, s, f"results/{wc.dataset}/integration/{m}/seed{s}.h5ad") for m, s in method_seed_runs()
        ],
        batch_key=lambda wc: dataset_config(wc.dataset)["batch_key"],
        label_key=lambda wc: dataset_config(wc.dataset)["label_key"],
        # JAX compiles the same kernels in every metrics job; a shared on-disk cache avoids repeats.
        jax_cache="resources/cache/jax",
    log:
        "results/logs/metrics/{dataset}.log",
    benchmark:
        "results/benchmarks/metrics/{dataset}.tsv"
    threads: lambda wc: resources_for("metrics")["threads"]
    resources:
        mem_mb=lambda wc: resources_for("metrics", wc.dataset)["mem_mb"],
        runtime=lambda wc: resources_for("metrics", wc.dataset)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/metrics.py"


rule integration_tables:
    input:
        metrics=metrics_files,
        # only completed runs reach the tables: this task's run records and scoring verdicts
        records=lambda wc: task_run_records("integration"),
        metrics_status=metrics_status_files,
    output:
        long="results/tables/integration_scores.csv",
        by_seed="results/tables/integration_scores_by_seed.csv",
        wide=expand("results/tables/{dataset}_integration_wide.csv", dataset=dataset_names()),
    params:
        run_id=RUN_ID,
    log:
        "results/logs/integration_tables/integration_tables.log",
    benchmark:
        "results/benchmarks/integration_tables/integration_tables.tsv"
    threads: 1
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/integration_tables.py"
