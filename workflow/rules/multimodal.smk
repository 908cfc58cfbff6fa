# Multi-modal (RNA + surface protein) benchmark: config `multimodal` (scdiva.bench.tasks.multimodal).
# Off unless the config has a `multimodal.datasets` block; checked when the workflow is parsed.
# Its functions and parse-time checks: workflow/rules/multimodal_common.smk.


rule multimodal_prepare:
    input:
        lambda wc: str(extra_source("multimodal", wc.mm_dataset)),
    output:
        "results/multimodal/{mm_dataset}/prepared.h5ad",
    params:
        entry=lambda wc: config["multimodal"]["datasets"][wc.mm_dataset],
        n_top_genes=lambda wc: multimodal_settings()["n_top_genes"],
        seed=lambda wc: seeds()[0],
    log:
        "results/logs/multimodal_prepare/{mm_dataset}.log",
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/multimodal_prepare.py"


rule multimodal:
    input:
        "results/multimodal/{mm_dataset}/prepared.h5ad",
    output:
        scores="results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.scores.csv",
        proteins="results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.proteins.csv",
        predicted="results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.predicted.csv",
        embedding="results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.h5ad",
        run="results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.run.json",  # outcome (runs.smk)
    params:
        settings=lambda wc: multimodal_settings(),
    log:
        "results/logs/multimodal/{mm_dataset}.{mm_method}.seed{seed}.log",
    benchmark:
        "results/benchmarks/multimodal/{mm_dataset}.{mm_method}.seed{seed}.tsv"
    threads: lambda wc: resources_for(wc.mm_method)["threads"]
    resources:
        mem_mb=lambda wc: resources_for(wc.mm_method)["mem_mb"],
        runtime=lambda wc: resources_for(wc.mm_method)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/multimodal.py"


rule multimodal_table:
    input:
        scores=expand("results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.scores.csv",
                      mm_dataset=multimodal_datasets(), mm_method=multimodal_settings()["methods"], seed=seeds()),
        records=lambda wc: task_run_records("multimodal"),  # only completed runs reach the table
    output:
        summary="results/tables/multimodal_scores.csv",
        by_seed="results/tables/multimodal_scores_by_seed.csv",
    params:
        group_by=["dataset", "method", "metric"],
        run_id=RUN_ID,
    log:
        "results/logs/multimodal_table/multimodal_table.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/seed_table.py"


rule multimodal_section:
    input:
        table="results/tables/multimodal_scores.csv",
        jobs=expand("results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.h5ad", mm_dataset=multimodal_datasets(),
                    mm_method=multimodal_settings()["methods"], seed=seeds()[:1]),
        predicted=expand("results/multimodal/{mm_dataset}/{mm_method}/seed{seed}.predicted.csv",
                         mm_dataset=multimodal_datasets(), mm_method=multimodal_settings()["methods"], seed=seeds()[:1]),
        prepared=expand("results/multimodal/{mm_dataset}/prepared.h5ad", mm_dataset=multimodal_datasets()),
        # every run's outcome: one that did not complete is in no figure, and the section names it
        records=lambda wc: task_run_records("multimodal"),
    output:
        "results/report/sections/multimodal.json",
    params:
        figure_dir="results/report/figures",
        datasets=lambda wc: multimodal_datasets(),
        methods=lambda wc: multimodal_settings()["methods"],
        seed=lambda wc: seeds()[0],
    log:
        "results/logs/multimodal_section/multimodal_section.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/multimodal_section.py"
