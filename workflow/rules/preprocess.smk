# Validate the staged dataset against its config entry, then QC, normalise, select HVGs and run PCA.
# Every method rule reads this rule's output, so a bad dataset stops the run before any method.


rule preprocess:
    input:
        staged_h5ad,
    output:
        "results/{dataset}/preprocessed.h5ad",
    # Params are rerun triggers, so only what changes the output is here; the keys that are only
    # validated (coarse_label_key, annotation batches) are read from the config by the script, so
    # editing them does not redo every integration.
    params:
        entry=lambda wc: preprocess_entry(wc.dataset),
        settings=config["preprocess"],
        seed=seeds()[0],
    log:
        "results/logs/preprocess/{dataset}.log",
    benchmark:
        "results/benchmarks/preprocess/{dataset}.tsv"
    # Validation is cheap: run it for every dataset before any method job.
    priority: 50
    threads: 1
    resources:
        mem_mb=lambda wc: resources_for("preprocess", wc.dataset)["mem_mb"],
        runtime=lambda wc: resources_for("preprocess", wc.dataset)["runtime"],
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/preprocess.py"
