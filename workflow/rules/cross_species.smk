# Cross-species benchmark: config `cross_species` (scdiva.bench.tasks.cross_species): annotation trained on one
# species and applied to the other, and both species integrated with species as the batch.
# Off unless the config has a `cross_species.pairs` block; checked when the workflow is parsed.
# Its functions and parse-time checks: workflow/rules/cross_species_common.smk.


rule cross_species_prepare:
    input:
        unpack(cross_species_sources),
    output:
        "results/cross_species/{xs_pair}/prepared.h5ad",
    params:
        settings=lambda wc: cross_species_settings(),
        seed=lambda wc: seeds()[0],
    log:
        "results/logs/cross_species_prepare/{xs_pair}.log",
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species_prepare.py"


rule cross_species_annotation:
    input:
        "results/cross_species/{xs_pair}/prepared.h5ad",
    output:
        scores="results/cross_species/{xs_pair}/annotation/{xs_method}/ref-{xs_ref}.seed{seed}.scores.csv",
        predictions="results/cross_species/{xs_pair}/annotation/{xs_method}/ref-{xs_ref}.seed{seed}.predictions.csv",
        run="results/cross_species/{xs_pair}/annotation/{xs_method}/ref-{xs_ref}.seed{seed}.run.json",  # runs.smk
    params:
        settings=lambda wc: cross_species_settings(),
        task="annotation",
    log:
        "results/logs/cross_species_annotation/{xs_pair}.{xs_method}.{xs_ref}.seed{seed}.log",
    benchmark:
        "results/benchmarks/cross_species_annotation/{xs_pair}.{xs_method}.{xs_ref}.seed{seed}.tsv"
    threads: lambda wc: resources_for(wc.xs_method)["threads"]
    resources:
        mem_mb=lambda wc: resources_for(wc.xs_method)["mem_mb"],
        runtime=lambda wc: resources_for(wc.xs_method)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species.py"


rule cross_species_integration:
    input:
        "results/cross_species/{xs_pair}/prepared.h5ad",
    output:
        scores="results/cross_species/{xs_pair}/integration/{xs_method}/seed{seed}.scores.csv",
        embedding="results/cross_species/{xs_pair}/integration/{xs_method}/seed{seed}.h5ad",
        run="results/cross_species/{xs_pair}/integration/{xs_method}/seed{seed}.run.json",  # runs.smk
    params:
        settings=lambda wc: cross_species_settings(),
        task="integration",
    log:
        "results/logs/cross_species_integration/{xs_pair}.{xs_method}.seed{seed}.log",
    benchmark:
        "results/benchmarks/cross_species_integration/{xs_pair}.{xs_method}.seed{seed}.tsv"
    threads: lambda wc: resources_for(wc.xs_method)["threads"]
    resources:
        mem_mb=lambda wc: resources_for(wc.xs_method)["mem_mb"],
        runtime=lambda wc: resources_for(wc.xs_method)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species.py"


rule cross_species_table:
    input:
        scores=cross_species_score_files,
        records=lambda wc: task_run_records("cross_species"),  # only completed runs reach the table
    output:
        summary="results/tables/cross_species_scores.csv",
        by_seed="results/tables/cross_species_scores_by_seed.csv",
    params:
        group_by=["task", "reference", "query", "method", "metric"],
        run_id=RUN_ID,
    log:
        "results/logs/cross_species_table/cross_species_table.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/seed_table.py"


rule cross_species_section:
    input:
        table="results/tables/cross_species_scores.csv",
        predictions=lambda wc: [f"results/cross_species/{pair}/annotation/{m}/ref-{ref}.seed{seeds()[0]}.predictions.csv"
                                for pair, ref in cross_species_annotation_jobs()
                                for m in cross_species_settings()["annotation_methods"]],
        # every run's outcome: one that did not complete gets no figure, and the section names it
        records=lambda wc: task_run_records("cross_species"),
    output:
        "results/report/sections/cross_species.json",
    params:
        figure_dir="results/report/figures",
    log:
        "results/logs/cross_species_section/cross_species_section.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/cross_species_section.py"
