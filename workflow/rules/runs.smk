# The record of every run's outcome (scdiva.bench.core.outcomes): every method job writes a .run.json beside
# its outputs (ok, not_applicable, failed, timeout, out_of_memory); runs_table gathers them into
# results/tables/runs.csv, and check_runs, the last job of `all`, fails the run when some run was not ok:
# it prints those runs with their logs and removes their outputs, so the next `snakemake` retries them.


rule runs_table:
    input:
        records=run_records,
        metrics_status=metrics_status_files,
    output:
        RUNS_TABLE,
    log:
        "results/logs/runs_table/runs_table.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/runs.py"


rule check_runs:
    input:
        runs=RUNS_TABLE,
        records=run_records,
        # after everything else `all` builds (the report included), so a failure costs nothing else
        done=lambda wc: [f for f in final_outputs() if f not in (RUNS_TABLE, RUNS_CHECKED)],
    output:
        RUNS_CHECKED,
    params:
        # a dataset's scoring outputs, removed when one of its embeddings could not be scored
        metrics_outputs=lambda wc: {d: [f"results/{d}/integration/metrics.csv",
                                        f"results/{d}/integration/metrics_status.csv"] for d in dataset_names()},
    log:
        "results/logs/check_runs/check_runs.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/runs.py"
