# Cell-type annotation: train on the reference batches, predict the query batches
# (`datasets.<name>.annotation`), per method and seed; then one table for all.


rule annotate:
    input:
        unpack(annotation_inputs),
    output:
        predictions="results/{dataset}/annotation/{method}/seed{seed}.csv",
        scores="results/{dataset}/annotation/{method}/seed{seed}.scores.csv",
        info="results/{dataset}/annotation/{method}/seed{seed}.json",
        confusion="results/{dataset}/annotation/{method}/seed{seed}.confusion.png",
        # the run's outcome (scdiva.bench.core.outcomes); a failed run leaves header-only CSVs (runs.smk)
        run="results/{dataset}/annotation/{method}/seed{seed}.run.json",
    params:
        entry=lambda wc: dataset_config(wc.dataset),
        params=lambda wc: job_method_params("annotation", wc.method, wc.dataset, wc.seed),
        definition=lambda wc: method_definition(wc.method),
        # A GPU-capable method trains on the GPU its job is given (resources.gpu below), else on the CPU.
        accelerator=lambda wc: "gpu" if annotation_gpu(wc.method) else "cpu",
        timing_repeats=config["annotation"]["timing_repeats"],
    log:
        "results/logs/annotate/{dataset}.{method}.seed{seed}.log",
    benchmark:
        "results/benchmarks/annotate/{dataset}.{method}.seed{seed}.tsv"
    threads: lambda wc: resources_for(wc.method)["threads"]
    resources:
        mem_mb=lambda wc: resources_for(wc.method)["mem_mb"],
        runtime=lambda wc: resources_for(wc.method)["runtime"],
        gpu=lambda wc: annotation_gpu(wc.method),
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/annotate.py"


rule annotation_table:
    input:
        scores=expand("results/{dataset}/annotation/{method}/seed{seed}.scores.csv",
                      dataset=annotation_datasets(), method=annotation_methods(), seed=seeds()),
        records=lambda wc: task_run_records("annotation"),  # only completed runs reach the table
    output:
        summary="results/tables/annotation_scores.csv",
        by_seed="results/tables/annotation_scores_by_seed.csv",
    params:
        group_by=["dataset", "method", "metric"],
        run_id=RUN_ID,
    log:
        "results/logs/annotation_table/annotation_table.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/seed_table.py"


