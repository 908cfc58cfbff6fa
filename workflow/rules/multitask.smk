# Multi-task: ScDiVa trained with 1, 3 and 5 heads on the same cells, scored on held-out cells.


def multitask_settings():
    defaults = {"datasets": None, "head_counts": [1, 3, 5], "size": "tiny", "max_steps": 200,
                "batch_size": 64, "held_out_fraction": 0.2}
    return {**defaults, **config.get("multitask", {})}


def multitask_datasets():
    chosen = multitask_settings()["datasets"]
    return [d for d in dataset_names() if chosen is None or d in chosen]


rule multitask:
    input:
        "results/{dataset}/preprocessed.h5ad",
    output:
        scores="results/{dataset}/multitask/seed{seed}.scores.csv",
        info="results/{dataset}/multitask/seed{seed}.json",
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
        expand("results/{dataset}/multitask/seed{seed}.scores.csv", dataset=multitask_datasets(), seed=seeds()),
    output:
        summary="results/tables/multitask_scores.csv",
        by_seed="results/tables/multitask_scores_by_seed.csv",
    params:
        group_by=["dataset", "method", "n_tasks", "metric"],
    log:
        "results/logs/multitask_table/multitask_table.log",
    localrule: True
    script:
        "../scripts/seed_table.py"


# `rule all` builds the multi-task table when the config has a `multitask` section.
_final_outputs_before_multitask = final_outputs


def final_outputs():
    extra = ["results/tables/multitask_scores.csv"] if "multitask" in config and multitask_datasets() else []
    return _final_outputs_before_multitask() + extra
