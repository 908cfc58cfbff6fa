# results/provenance.json: data, code, config, packages, hardware, seeds and times of this run, and
# its report section. Runs after every table, so `finished` is when the last table was written.
# RUN_ID (common.smk) is the `run_id` column of each results/tables/*_scores.csv; the files it records:
# provenance_inputs (common.smk).


rule provenance:
    input:
        datasets=expand(f"{STAGED_DIR}/{{dataset}}.h5ad", dataset=dataset_names()),
        tables=lambda wc: [path for path in final_outputs() if path.startswith("results/tables/")],
        sources=lambda wc: list(provenance_inputs().values()),
    output:
        record="results/provenance.json",
        section=PROVENANCE_SECTION,
    params:
        run_id=RUN_ID,
        start_commit=START_CODE["commit"],
        datasets=lambda wc: {d: f"{STAGED_DIR}/{d}.h5ad" for d in dataset_names()},
        inputs=provenance_inputs,
        repo=str(REPO_ROOT),
    log:
        "results/logs/provenance/provenance.log",
    localrule: True
    conda:
        "../../envs/scdiva.yaml"
    script:
        "../scripts/provenance.py"
