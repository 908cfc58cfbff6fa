# The benchmark report, the only one: results/report/{index.html,report.md,tables/,figures/}.
# Extra sections (JSON, scdiva.bench.report.Section.to_json) come from report_section_files() in
# paper_common.smk; add a file there to add a section.


rule report:
    input:
        embeddings=report_embeddings,
        long="results/tables/integration_scores.csv",
        runs=RUNS_TABLE,  # the coverage matrix; only completed runs are ranked
        by_seed="results/tables/integration_scores_by_seed.csv",
        preprocessed=expand("results/{dataset}/preprocessed.h5ad", dataset=dataset_names()),
        sections=lambda wc: report_section_files(),
    output:
        html="results/report/index.html",
        markdown="results/report/report.md",
        results_figures=expand("results/report/figures/{dataset}_scib_results.png", dataset=dataset_names()),
        umaps=expand("results/report/figures/{dataset}_umap.png", dataset=dataset_names()),
        latex=expand("results/report/tables/{dataset}_integration.tex", dataset=dataset_names()),
        walltimes="results/report/tables/benchmark_walltimes.csv",
        runs="results/report/tables/runs.csv",
        walltime_chart="results/report/figures/benchmark_walltimes.png",
    params:
        datasets=lambda wc: {
            d: {
                "batch_key": dataset_config(d)["batch_key"],
                "label_key": dataset_config(d)["label_key"],
                "preprocessed": f"results/{d}/preprocessed.h5ad",
                "embeddings": {m: f"results/{d}/integration/{m}/seed{seeds()[0]}.h5ad" for m in method_names()},
                "role": dataset_config(d)["role"],
            }
            for d in dataset_names()
        },
        seed=seeds()[0],
        reference=config["integration"]["reference"],  # compared with every method, seed by seed
        models=model_method_names(),  # marked in-sample on development datasets
        bench_dir="results/benchmarks",
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc: resources_for("report")["mem_mb"],
        runtime=lambda wc: resources_for("report")["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/report.py"
