# Multi-task: ScDiVa trained with 1, 3 and 5 heads on the same cells, scored on held-out cells.


rule multitask:
    input:
        "results/{dataset}/preprocessed.h5ad",
    output:
        scores="results/{dataset}/multitask/seed{seed}.scores.csv",
        info="results/{dataset}/multitask/seed{seed}.json",
        predictions="results/{dataset}/multitask/seed{seed}.predictions.csv",
    params:
        entry=lambda wc: dataset_config(wc.dataset),
        settings=multitask_settings(),
    log:
        "results/logs/multitask/{dataset}.seed{seed}.log",
    benchmark:
        "results/benchmarks/multitask/{dataset}.seed{seed}.tsv"
    threads: lambda wc: resources_for("scdiva")["threads"]
    resources:
        mem_mb=lambda wc: resources_for("scdiva")["mem_mb"],
        runtime=lambda wc: resources_for("scdiva")["runtime"],
        gpu=lambda wc: 1 if use_gpu() else 0,
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/multitask.py"


rule multitask_table:
    input:
        scores=expand("results/{dataset}/multitask/seed{seed}.scores.csv", dataset=multitask_datasets(),
                      seed=multitask_seeds()),
        predictions=expand("results/{dataset}/multitask/seed{seed}.predictions.csv", dataset=multitask_datasets(),
                           seed=multitask_seeds()),
    output:
        summary="results/tables/multitask_scores.csv",
        by_seed="results/tables/multitask_scores_by_seed.csv",
        comparison="results/tables/multitask_comparison.csv",
    params:
        group_by=["dataset", "method", "n_tasks", "metric"],
        n_boot=2000,
        run_id=RUN_ID,
    log:
        "results/logs/multitask_table/multitask_table.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/multitask_table.py"
